//! Events in parts: placement, each part's group selling its own tickets only.

use model::{Command, EventParts, Outcome, Placement, Row, Seat, SeatMap, Section};

use super::tests::{event, held, MapRows};
use super::*;

/// Four rows of five seats, the first two at 80.00, the last two at 40.00.
fn four_rows() -> SeatMap {
    let row = |name: &str| Row {
        name: name.into(),
        seats: (0..5).map(|n| Seat { number: (n + 1).to_string(), x: n as f32, y: 0.0 }).collect(),
    };
    SeatMap {
        sections: vec![
            Section { name: "Floor".into(), price_cents: 8_000, rows: vec![row("A"), row("B")] },
            Section { name: "Balcony".into(), price_cents: 4_000, rows: vec![row("C"), row("D")] },
        ],
    }
}

/// The group of event 1's part `part` of two: tickets 0..10 in part 0, 10..20 in part 1.
fn part(part: u32) -> MapRows {
    let mut rows = MapRows::default();
    let (first, end) = if part == 0 { (0, 10) } else { (10, 20) };
    let command = Command::CreateEventPart { event: event(1, 20), seat_map: four_rows(), part, first, end };
    assert!(matches!(apply(&command, 0, &mut rows).unwrap(), Outcome::EventCreated(_)));
    rows
}

fn hold(booking: u64, tickets: &[u32]) -> Command {
    let booking = model::BookingId { event: 1, nonce: booking };
    Command::Hold { booking, user: 1, tickets: tickets.to_vec(), ttl_ms: 60_000, fan_tickets_max: 0, idempotency: None }
}

fn hold_best(booking: u64, quantity: u32) -> Command {
    Command::HoldBest {
        booking: model::BookingId { event: 1, nonce: booking },
        user: 1,
        quantity,
        section: None,
        max_price_cents: None,
        ttl_ms: 60_000,
        fan_tickets_max: 0,
        idempotency: None,
    }
}

#[test]
fn parts_are_placed_in_groups_after_the_events_home() {
    let mut rows = MapRows::default();
    apply(&Command::PlaceEvent { groups: 4 }, 0, &mut rows).unwrap();
    let outcome = apply(&Command::PlaceEventParts { groups: 4, bounds: vec![0, 10, 20, 30] }, 0, &mut rows).unwrap();
    let expected = EventParts { event: 2, groups: vec![2, 3, 4], bounds: vec![0, 10, 20, 30] };
    assert_eq!(outcome, Outcome::PartsPlaced(expected.clone()));
    assert_eq!(read::<Placement, _>(&rows, &keys::placement(2)).unwrap(), Some(Placement { event: 2, group: 2 }));
    assert_eq!(read::<EventParts, _>(&rows, &keys::parts(2)).unwrap(), Some(expected));
    let wraps = apply(&Command::PlaceEventParts { groups: 4, bounds: vec![0, 1, 2] }, 0, &mut rows).unwrap();
    assert!(matches!(wraps, Outcome::PartsPlaced(p) if p.groups == vec![3, 4]));
}

#[test]
fn malformed_parts_are_refused_and_take_no_id() {
    let mut rows = MapRows::default();
    for bounds in [vec![0], vec![0, 5, 5], vec![1, 5], vec![0, 1, 2, 3, 4, 5]] {
        let outcome = apply(&Command::PlaceEventParts { groups: 4, bounds: bounds.clone() }, 0, &mut rows).unwrap();
        assert!(matches!(outcome, Outcome::Rejected(_)), "{bounds:?}: {outcome:?}");
    }
    assert!(rows.0.is_empty(), "nothing written");
}

#[test]
fn a_part_sells_its_own_tickets_only() {
    let mut rows = part(1);
    let before = rows.0.clone();
    let outcome = apply(&hold(1, &[9, 10]), 0, &mut rows).unwrap();
    assert!(matches!(&outcome, Outcome::Rejected(why) if why.contains("[9]")), "{outcome:?}");
    assert_eq!(rows.0, before, "a refused hold writes nothing");
    assert_eq!(held(apply(&hold(2, &[10, 19]), 0, &mut rows).unwrap()), vec![10, 19]);
}

#[test]
fn best_available_picks_within_the_part() {
    let mut first = part(0);
    let mut second = part(1);
    assert_eq!(held(apply(&hold_best(1, 2), 0, &mut first).unwrap()), vec![0, 1], "part 0 sells the floor");
    assert_eq!(held(apply(&hold_best(2, 2), 0, &mut second).unwrap()), vec![10, 11], "part 1 the balcony");
    assert_eq!(held(apply(&hold_best(3, 8), 0, &mut first).unwrap()), vec![2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(apply(&hold_best(4, 1), 0, &mut first).unwrap(), Outcome::NoSeats, "part 0 is sold out");
}

#[test]
fn only_part_zero_lists_the_event() {
    let first = part(0);
    let second = part(1);
    assert!(first.get(&keys::event(1)).unwrap().is_some());
    assert!(second.get(&keys::event(1)).unwrap().is_none(), "no second listing or search entry");
    assert!(second.get(&keys::seat_map(1)).unwrap().is_some());
    let mut again = second;
    let command = Command::CreateEventPart { event: event(1, 20), seat_map: four_rows(), part: 1, first: 10, end: 20 };
    assert!(matches!(apply(&command, 5, &mut again).unwrap(), Outcome::EventExists(_)), "a retry changes nothing");
}

#[test]
fn a_part_out_of_the_events_tickets_is_refused() {
    let mut rows = MapRows::default();
    for (first, end) in [(10, 10), (15, 21)] {
        let command = Command::CreateEventPart { event: event(1, 20), seat_map: four_rows(), part: 1, first, end };
        assert!(matches!(apply(&command, 0, &mut rows).unwrap(), Outcome::Rejected(_)));
    }
    assert!(rows.0.is_empty());
}

/// A waiting room opened at time 0, admitting fans for a minute.
fn room_settings() -> model::room::RoomSettings {
    model::room::RoomSettings { on_sale_at: 0, ..super::room_tests::settings(600, 100, 60_000) }
}

fn admitted(booking: u64, seq: u64, tickets: &[u32]) -> Command {
    let place = model::room::Place { class: 1, primary: 1, node: 1, seq };
    let admission = model::room::Admission { place, user: 1, expires_at: 60_000 };
    Command::Admitted { admission, hold: Box::new(hold(booking, tickets)) }
}

#[test]
fn every_part_of_an_event_keeps_its_room_and_checks_admissions() {
    let mut second = part(1);
    let configure = Command::RoomConfigure { event: 1, settings: room_settings(), draw_key: [7; 16] };
    assert!(matches!(apply(&configure, 0, &mut second).unwrap(), Outcome::RoomConfigured(_)));
    assert_eq!(apply(&hold(1, &[10]), 1, &mut second).unwrap(), Outcome::AdmissionRequired);
    // No watermark moves here: the event's own group keeps the line; the admission's word holds.
    assert_eq!(held(apply(&admitted(2, 1, &[10]), 1, &mut second).unwrap()), vec![10]);
    assert_eq!(apply(&admitted(3, 1, &[11]), 2, &mut second).unwrap(), Outcome::AdmissionSpent, "one booking a place");
    let late = apply(&admitted(4, 2, &[12]), 60_000, &mut second).unwrap();
    assert!(matches!(late, Outcome::AdmissionInvalid(_)), "an ended admission: {late:?}");
    // The event's own group still wants the watermark past the place.
    let mut first = part(0);
    assert!(matches!(apply(&configure, 0, &mut first).unwrap(), Outcome::RoomConfigured(_)));
    let early = apply(&admitted(5, 1, &[0]), 1, &mut first).unwrap();
    assert!(matches!(early, Outcome::AdmissionInvalid(ref why) if why.contains("not been admitted")), "{early:?}");
}

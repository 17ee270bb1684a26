//! The waiting room's rules, applied over a map of rows: configuring, reports, metered ticks,
//! the shopping limit, late admissions, holds under an admission, and the size of the room's rows
//! (and which of them the commands that come often touch).

use std::collections::VecDeque;

use model::room::{
    Admission, Pass, Place, RoomReport, RoomSettings, RoomState, CLASS_ONSALE, CLASS_PRESALE, REPORT_FRONT_MAX,
    REPORT_QUANTILES_MAX, ROOM_BUCKET_MS,
};
use model::{BookingId, Command, EventId, Millis, NodeId, Outcome};

use super::room::{SlotRow, REPORT_TEXT_BYTES_MAX, ROOM_NODES_MAX};
use super::tests::{event, map, MapRows};
use super::*;

const E: EventId = 1;
/// Bucket-aligned, so that ticks on whole seconds after it fall in predictable buckets.
const ONSALE: Millis = 1_000_000;
const KEY: [u8; 16] = [7; 16];
const SEATS: usize = 200;

pub fn settings(rate_per_min: u32, shopping_max: u32, admission_ms: u64) -> RoomSettings {
    RoomSettings {
        enabled: true,
        on_sale_at: ONSALE,
        rate_per_min,
        shopping_max,
        admission_ms,
        pow_bits: 0,
        paused: false,
        abandon_ms: 60_000,
    }
}

fn configure(rows: &mut MapRows, settings: &RoomSettings, draw_key: [u8; 16], at: Millis) -> Outcome {
    apply(&Command::RoomConfigure { event: E, settings: settings.clone(), draw_key }, at, rows).unwrap()
}

/// An event with a room configured at time 0.
fn with_room(settings: &RoomSettings) -> MapRows {
    let mut rows = MapRows::default();
    let created = apply(&Command::CreateEvent { event: event(E, SEATS), seat_map: map(SEATS) }, 0, &mut rows).unwrap();
    assert!(matches!(created, Outcome::EventCreated(_)));
    assert!(matches!(configure(&mut rows, settings, KEY, 0), Outcome::RoomConfigured(_)));
    rows
}

fn room(rows: &MapRows) -> RoomState {
    room::state(rows, E).unwrap().expect("the event has a room")
}

/// The largest place whose primary is `clock`: every place a node issued up to its clock.
fn complete_at(clock: Millis) -> Place {
    Place { class: CLASS_ONSALE, primary: clock, node: u16::MAX, seq: u64::MAX }
}

fn report(seq: u64, clock_ms: Millis, front: Vec<Place>, complete_to: Place) -> RoomReport {
    RoomReport {
        boot: 1,
        seq,
        clock_ms,
        live: front.len() as u64,
        connected: front.len() as u64,
        complete_to,
        front,
        quantiles: Vec::new(),
        abandoned: 0,
        endpoint: "10.0.0.1:4433".into(),
        cert_sha256: "ab".repeat(32),
        uncertainty_ms: 5,
    }
}

fn send(rows: &mut MapRows, node: NodeId, report: RoomReport, at: Millis) -> Outcome {
    apply(&Command::RoomReport { event: E, node, report }, at, rows).unwrap()
}

fn tick(rows: &mut MapRows, step: u64, at: Millis) -> Outcome {
    apply(&Command::RoomTick { event: E, step }, at, rows).unwrap()
}

/// How many a tick passed (it must apply).
fn passed(outcome: Outcome) -> u64 {
    match outcome {
        Outcome::RoomTicked { admitted, .. } => admitted,
        other => panic!("expected a tick, got {other:?}"),
    }
}

fn onsale_place(node: u16, seq: u64) -> Place {
    Place { class: CLASS_ONSALE, primary: ONSALE + seq, node, seq }
}

/// One node's line: its fans' places, ascending, and its report numbering.
struct Line {
    node: u16,
    places: VecDeque<Place>,
    seq: u64,
}

impl Line {
    fn new(node: u16, places: impl IntoIterator<Item = Place>) -> Line {
        let mut places: Vec<Place> = places.into_iter().collect();
        places.sort_unstable();
        Line { node, places: places.into(), seq: 0 }
    }

    /// The report a node sends at `clock`: its fans above the watermark, the first ones listed.
    fn report(&mut self, watermark: Option<Place>, clock: Millis) -> RoomReport {
        while self.places.front().is_some_and(|p| watermark.is_some_and(|w| *p <= w)) {
            self.places.pop_front();
        }
        self.seq += 1;
        let front: Vec<Place> = self.places.iter().take(REPORT_FRONT_MAX).copied().collect();
        let complete_to = if front.len() == self.places.len() { complete_at(clock) } else { *front.last().unwrap() };
        let live = self.places.len() as u64;
        let step = (self.places.len() / REPORT_QUANTILES_MAX).max(1);
        let quantiles = (0..REPORT_QUANTILES_MAX)
            .map(|q| (q + 1) * step - 1)
            .filter(|&i| i < self.places.len())
            .map(|i| (self.places[i], i as u64 + 1))
            .collect();
        RoomReport {
            live,
            connected: live,
            quantiles,
            endpoint: format!("10.0.0.{}:4433", self.node),
            ..report(self.seq, clock, front, complete_to)
        }
    }
}

/// Nodes reporting their lines to the room, and the leader's ticks.
struct Sim {
    rows: MapRows,
    lines: Vec<Line>,
    step: u64,
}

impl Sim {
    fn new(settings: &RoomSettings, lines: Vec<Line>) -> Sim {
        Sim { rows: with_room(settings), lines, step: 0 }
    }

    fn report_all(&mut self, at: Millis) {
        let watermark = room(&self.rows).watermark;
        for line in &mut self.lines {
            let report = line.report(watermark, at);
            let outcome = send(&mut self.rows, u64::from(line.node), report, at);
            assert_eq!(outcome, Outcome::RoomReported { at });
        }
    }

    fn tick(&mut self, at: Millis) -> u64 {
        self.step += 1;
        passed(tick(&mut self.rows, self.step, at))
    }

    /// Reports, then ticks, at `at`; how many the tick passed.
    fn second(&mut self, at: Millis) -> u64 {
        self.report_all(at);
        self.tick(at)
    }
}

/// A pseudo-random draw (a 64-bit LCG), so that nodes' pre-sale places interleave.
fn draw(n: u64) -> u64 {
    n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407)
}

fn presale_line(node: u16, fans: u64) -> Line {
    Line::new(
        node,
        (0..fans).map(|seq| Place { class: CLASS_PRESALE, primary: draw(seq * 8 + node as u64), node, seq }),
    )
}

#[test]
fn configure_creates_the_room_and_refuses_bad_settings() {
    let mut rows = with_room(&settings(600, 100, 60_000));
    let first = room(&rows);
    assert_eq!((first.step, first.watermark, first.segment_since, first.last_tick_at), (0, None, 0, 0));
    assert_eq!(first.draw_key, KEY);
    assert!(first.reports.is_empty() && first.passes.is_empty() && first.ends.is_empty());

    let before = rows.0.clone();
    assert!(matches!(configure(&mut rows, &settings(0, 100, 60_000), KEY, 5), Outcome::Rejected(_)));
    assert!(matches!(configure(&mut rows, &settings(600, 100, 1), KEY, 5), Outcome::Rejected(_)));
    let elsewhere = Command::RoomConfigure { event: 9, settings: settings(600, 100, 60_000), draw_key: KEY };
    assert_eq!(apply(&elsewhere, 5, &mut rows).unwrap(), Outcome::NoSuchEvent);
    assert_eq!(rows.0, before, "refused configures change nothing");

    // The same configure again leaves the same room (the segment does not restart).
    let again = configure(&mut rows, &settings(600, 100, 60_000), KEY, 50);
    assert_eq!(again, Outcome::RoomConfigured(first.clone()));
    assert_eq!(room(&rows), first);
}

#[test]
fn the_draw_key_and_the_on_sale_time_are_frozen_once_the_on_sale_passed() {
    let mut rows = with_room(&settings(600, 100, 60_000));
    let later = RoomSettings { on_sale_at: ONSALE + 60_000, ..settings(600, 100, 60_000) };
    let Outcome::RoomConfigured(moved) = configure(&mut rows, &later, [9; 16], 10) else { panic!("configured") };
    assert_eq!(moved.draw_key, KEY, "the first draw key stays");
    assert_eq!(moved.settings.on_sale_at, ONSALE + 60_000, "before the on-sale it may move");
    assert_eq!(moved.segment_since, 10, "a new on-sale time starts a new metering segment");

    let at = ONSALE + 60_000;
    let back = settings(600, 100, 60_000);
    let refused = configure(&mut rows, &back, KEY, at);
    assert_eq!(refused, Outcome::Rejected("the on-sale time cannot change once the on-sale has begun".into()));
    let faster = RoomSettings { rate_per_min: 1_200, ..later.clone() };
    let Outcome::RoomConfigured(changed) = configure(&mut rows, &faster, [3; 16], at) else { panic!("configured") };
    assert_eq!((changed.settings.rate_per_min, changed.draw_key), (1_200, KEY));
}

#[test]
fn a_replayed_report_changes_nothing() {
    let mut rows = with_room(&settings(600, 100, 60_000));
    let first = RoomReport { abandoned: 4, ..report(2, ONSALE, vec![onsale_place(1, 1)], complete_at(ONSALE)) };
    assert_eq!(send(&mut rows, 1, first.clone(), 10), Outcome::RoomReported { at: 10 });
    assert_eq!(room(&rows).abandoned_total, 4);
    let before = rows.0.clone();
    assert_eq!(send(&mut rows, 1, first.clone(), 20), Outcome::AlreadyApplied);
    assert_eq!(send(&mut rows, 1, RoomReport { seq: 1, ..first.clone() }, 20), Outcome::AlreadyApplied);
    assert_eq!(rows.0, before, "a replayed or older report changes nothing");

    // The same boot counts only what it abandoned since; a new boot counts from zero.
    send(&mut rows, 1, RoomReport { seq: 3, abandoned: 6, ..first.clone() }, 30);
    assert_eq!(room(&rows).abandoned_total, 6);
    send(&mut rows, 1, RoomReport { boot: 2, seq: 1, abandoned: 1, ..first.clone() }, 40);
    let kept = room(&rows);
    assert_eq!(kept.abandoned_total, 7);
    assert_eq!(kept.reports.len(), 1, "one report per node");
    assert_eq!((kept.reports[0].1, kept.reports[0].2.boot), (40, 2), "stamped with the entry's time");

    send(&mut rows, 0, RoomReport { seq: 1, ..first.clone() }, 50);
    let nodes: Vec<NodeId> = room(&rows).reports.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(nodes, vec![0, 1], "reports are kept by node");
}

#[test]
fn malformed_reports_are_refused() {
    let mut rows = with_room(&settings(600, 100, 60_000));
    let good = report(1, ONSALE, vec![onsale_place(1, 1), onsale_place(1, 2)], complete_at(ONSALE));
    let unsorted = RoomReport { front: vec![onsale_place(1, 2), onsale_place(1, 1)], ..good.clone() };
    let twice = RoomReport { front: vec![onsale_place(1, 1), onsale_place(1, 1)], ..good.clone() };
    let long =
        RoomReport { front: (0..=REPORT_FRONT_MAX as u64).map(|s| onsale_place(1, s)).collect(), ..good.clone() };
    let wordy = RoomReport { endpoint: "x".repeat(REPORT_TEXT_BYTES_MAX + 1), ..good.clone() };
    for bad in [unsorted, twice, long, wordy] {
        assert!(matches!(send(&mut rows, 1, bad, 10), Outcome::Rejected(_)));
    }
    for node in 0..ROOM_NODES_MAX as u64 {
        assert_eq!(send(&mut rows, node, good.clone(), 10), Outcome::RoomReported { at: 10 });
    }
    assert!(matches!(send(&mut rows, 1_000, good.clone(), 10), Outcome::Rejected(_)), "at most 64 nodes");
    let elsewhere = Command::RoomReport { event: 9, node: 1, report: good };
    assert_eq!(apply(&elsewhere, 10, &mut rows).unwrap(), Outcome::NoRoom);
}

#[test]
fn ticks_apply_in_order_once() {
    let mut rows = with_room(&settings(600, 100, 60_000));
    assert!(matches!(tick(&mut rows, 1, 10), Outcome::RoomTicked { .. }));
    assert_eq!(tick(&mut rows, 1, 20), Outcome::AlreadyApplied);
    assert_eq!(tick(&mut rows, 0, 20), Outcome::AlreadyApplied);
    assert_eq!(tick(&mut rows, 3, 20), Outcome::Rejected("tick out of order".into()));
    assert_eq!(room(&rows).step, 1);
    assert!(matches!(tick(&mut rows, 2, 30), Outcome::RoomTicked { .. }));
    assert_eq!((room(&rows).step, room(&rows).last_tick_at), (2, 30));
    assert_eq!(apply(&Command::RoomTick { event: 9, step: 1 }, 40, &mut rows).unwrap(), Outcome::NoRoom);
}

#[test]
fn a_tick_before_the_on_sale_or_in_a_paused_room_passes_nobody() {
    let mut sim = Sim::new(&settings(6_000, 1_000, 60_000), vec![presale_line(1, 100)]);
    // Before the on-sale: reports come, nobody passes.
    assert_eq!(sim.second(ONSALE - 1_000), 0);
    assert_eq!(room(&sim.rows).watermark, None);
    assert_eq!(sim.second(ONSALE + 1_000), 100, "after it, a second of 6,000/min");

    let paused = RoomSettings { paused: true, ..settings(6_000, 1_000, 60_000) };
    configure(&mut sim.rows, &paused, KEY, ONSALE + 1_500);
    let watermark = room(&sim.rows).watermark;
    sim.lines[0].places = presale_line(1, 300).places;
    assert_eq!(sim.second(ONSALE + 2_000), 0);
    assert_eq!(sim.second(ONSALE + 3_000), 0);
    assert_eq!(room(&sim.rows).watermark, watermark);
    assert_eq!(room(&sim.rows).segment_since, ONSALE + 3_000, "a paused room meters nothing");
}

/// A report built before the on-sale lacks the pre-sale fans its node takes until then: while
/// one is fresh nobody is passed (rather than pass that node's places uncounted), and once every
/// node reported after the on-sale the line moves.
#[test]
fn nobody_is_passed_while_a_report_built_before_the_on_sale_is_fresh() {
    let mut rows = with_room(&settings(6_000, 1_000, 60_000));
    let early = report(1, ONSALE - 1, vec![onsale_place(1, 1)], complete_at(ONSALE));
    send(&mut rows, 1, early, ONSALE + 500);
    let later = report(2, ONSALE + 100, vec![onsale_place(2, 1)], complete_at(ONSALE + 100));
    send(&mut rows, 2, later, ONSALE + 600);
    assert_eq!(passed(tick(&mut rows, 1, ONSALE + 1_000)), 0, "node 1's report may miss its last pre-sale joins");
    let again = report(2, ONSALE + 900, vec![onsale_place(1, 1)], complete_at(ONSALE + 900));
    send(&mut rows, 1, again, ONSALE + 1_100);
    assert_eq!(passed(tick(&mut rows, 2, ONSALE + 2_000)), 2, "every node reported after the on-sale");
}

#[test]
fn metering_admits_the_rate_every_minute() {
    let lines = (1..=3).map(|node| presale_line(node, 1_000)).collect();
    let mut sim = Sim::new(&settings(600, 10_000_000, 600_000), lines);
    let mut minutes = [0u64; 5];
    let mut watermark = None;
    for second in 1..=300u64 {
        let admitted = sim.second(ONSALE + second * 1_000);
        minutes[((second - 1) / 60) as usize] += admitted;
        let now = room(&sim.rows).watermark;
        assert!(now >= watermark, "the watermark never moves back");
        watermark = now;
    }
    for (minute, admitted) in minutes.iter().enumerate() {
        assert!((570..=630).contains(admitted), "minute {minute}: {admitted} admitted, not 600 ± 5 %");
        assert!((599..=601).contains(admitted), "minute {minute}: {admitted} admitted, not 600 ± 1");
    }
    let state = room(&sim.rows);
    assert_eq!(state.admitted_total, 3_000);
    assert_eq!(state.used.len(), 3, "every node's report counted");
    let rate = state.rate_achieved_per_min(ONSALE + 300_000).unwrap();
    assert!((580.0..=620.0).contains(&rate), "achieved {rate}/min");
}

#[test]
fn a_rate_change_applies_at_the_next_tick() {
    let mut sim = Sim::new(&settings(600, 10_000_000, 600_000), vec![presale_line(1, 1_000)]);
    assert_eq!(sim.second(ONSALE + 1_000), 10);
    assert_eq!(sim.second(ONSALE + 2_000), 10);
    configure(&mut sim.rows, &settings(1_200, 10_000_000, 600_000), KEY, ONSALE + 2_000);
    assert_eq!(sim.second(ONSALE + 3_000), 20);
    assert_eq!(sim.second(ONSALE + 4_000), 20);
}

#[test]
fn a_room_that_had_nobody_to_pass_catches_up_at_most_three_seconds() {
    let mut sim = Sim::new(&settings(600, 10_000_000, 600_000), vec![Line::new(1, [])]);
    for second in 1..=60 {
        assert_eq!(sim.second(ONSALE + second * 1_000), 0);
    }
    sim.lines[0].places = presale_line(1, 1_000).places;
    assert_eq!(sim.second(ONSALE + 61_000), 30, "3 s of 600/min, not the minute it could not use");
    assert_eq!(sim.second(ONSALE + 62_000), 10);
    assert_eq!(sim.second(ONSALE + 63_000), 10);
}

#[test]
fn reports_cap_the_watermark_where_they_are_complete() {
    let mut rows = with_room(&settings(60_000, 10_000, 600_000));
    let at = ONSALE + 1_000;
    let a: Vec<Place> = (0..10).map(|s| onsale_place(1, s * 2)).collect();
    let b: Vec<Place> = (0..10).map(|s| onsale_place(2, s * 2 + 1)).collect();
    // Node 1 lists five fans but has more behind them: it is complete only to its fifth.
    send(&mut rows, 1, report(1, at, a[..5].to_vec(), a[4]), at);
    send(&mut rows, 2, report(1, at, b.clone(), complete_at(at)), at);
    assert_eq!(passed(tick(&mut rows, 1, at)), 9, "up to node 1's fifth place: five of node 1, four of node 2");
    assert_eq!(room(&rows).watermark, Some(a[4]));
    // Node 1 reports the rest: the watermark goes on.
    send(&mut rows, 1, report(2, at + 1_000, a[5..].to_vec(), complete_at(at + 1_000)), at + 1_000);
    send(&mut rows, 2, report(2, at + 1_000, b[4..].to_vec(), complete_at(at + 1_000)), at + 1_000);
    assert_eq!(passed(tick(&mut rows, 2, at + 1_000)), 11);
    assert_eq!(room(&rows).watermark, Some(b[9]));
}

#[test]
fn a_stale_report_is_not_used() {
    let mut rows = with_room(&settings(60_000, 10_000, 600_000));
    let at = ONSALE + 1_000;
    let a: Vec<Place> = (0..5).map(|s| onsale_place(1, s * 2)).collect();
    let b: Vec<Place> = (0..5).map(|s| onsale_place(2, s * 2 + 1)).collect();
    send(&mut rows, 1, report(1, at, a.clone(), a[1]), at);
    send(&mut rows, 2, report(1, at + 1, b.clone(), complete_at(at)), at + 1);
    // 3,001 ms later node 1's report is stale: neither its places nor its cap count.
    assert_eq!(passed(tick(&mut rows, 1, at + 3_001)), 5);
    assert_eq!(room(&rows).watermark, Some(b[4]));
    assert_eq!(room(&rows).used, vec![(2, 1, 1)]);
    // Node 2's alone, at 3,000 ms, is still fresh (and has nothing more).
    assert_eq!(passed(tick(&mut rows, 2, at + 3_001)), 0);
    assert_eq!(room(&rows).used, vec![(2, 1, 1)]);
    send(&mut rows, 2, report(2, at + 1, vec![onsale_place(2, 11)], complete_at(at)), at + 1);
    assert_eq!(passed(tick(&mut rows, 3, at + 3_002)), 0, "older than 3 s");
    assert!(room(&rows).used.is_empty());
}

#[test]
fn the_watermark_never_moves_back() {
    let mut rows = with_room(&settings(60_000, 10_000, 600_000));
    let at = ONSALE + 1_000;
    let high: Vec<Place> = (10..15).map(|s| onsale_place(1, s)).collect();
    send(&mut rows, 1, report(1, at, high.clone(), complete_at(at)), at);
    assert_eq!(passed(tick(&mut rows, 1, at)), 5);
    // A later report lists places below the watermark (a node that lagged): they are not passed
    // again, and the watermark stays.
    let low: Vec<Place> = (0..5).map(|s| onsale_place(1, s)).collect();
    send(&mut rows, 1, report(2, at + 1_000, low, complete_at(at)), at + 1_000);
    assert_eq!(tick(&mut rows, 2, at + 1_000), Outcome::RoomTicked { admitted: 0, watermark: Some(high[4]) });
}

fn hold(booking: BookingId, user: u64, seat: u32) -> Command {
    Command::Hold { booking, user, tickets: vec![seat], ttl_ms: 60_000, fan_tickets_max: 0, idempotency: None }
}

fn admitted(place: Place, user: u64, expires_at: Millis, hold: Command) -> Command {
    Command::Admitted { admission: Admission { place, user, expires_at }, hold: Box::new(hold) }
}

fn booking(nonce: u64) -> BookingId {
    BookingId { event: E, nonce }
}

/// A room whose first tick (at `ONSALE + 1_000`) passed `fans` places of node 1, with an
/// admission of `admission_ms`; the places and the admissions' end.
fn admitted_room(fans: u64, shopping_max: u32, admission_ms: u64) -> (MapRows, Vec<Place>, Millis) {
    let mut rows = with_room(&settings(60_000, shopping_max, admission_ms));
    let at = ONSALE + 1_000;
    let places: Vec<Place> = (0..fans).map(|s| onsale_place(1, s)).collect();
    send(&mut rows, 1, report(1, at, places.clone(), complete_at(at)), at);
    passed(tick(&mut rows, 1, at));
    (rows, places, at + admission_ms)
}

#[test]
fn holds_on_a_room_event_need_a_valid_admission() {
    let (mut rows, places, expires) = admitted_room(3, 100, 60_000);
    let at = ONSALE + 2_000;
    assert_eq!(apply(&hold(booking(1), 1, 0), at, &mut rows).unwrap(), Outcome::AdmissionRequired);
    let best = Command::HoldBest {
        booking: booking(1),
        user: 1,
        quantity: 1,
        section: None,
        max_price_cents: None,
        ttl_ms: 60_000,
        fan_tickets_max: 0,
        idempotency: None,
    };
    assert_eq!(apply(&best, at, &mut rows).unwrap(), Outcome::AdmissionRequired);
    let invalid = |text: &str| Outcome::AdmissionInvalid(text.into());
    let theirs = admitted(places[0], 2, expires, hold(booking(1), 1, 0));
    assert_eq!(apply(&theirs, at, &mut rows).unwrap(), invalid("the admission is another fan's"));
    let ended = admitted(places[0], 1, expires, hold(booking(1), 1, 0));
    assert_eq!(apply(&ended, expires, &mut rows).unwrap(), invalid("the admission has ended"));
    let ahead = admitted(onsale_place(1, 99), 1, expires, hold(booking(1), 1, 0));
    assert_eq!(apply(&ahead, at, &mut rows).unwrap(), invalid("the place has not been admitted"));
    let not_a_hold = admitted(places[0], 1, expires, Command::Release { booking: booking(1), user: 1 });
    assert!(matches!(apply(&not_a_hold, at, &mut rows).unwrap(), Outcome::Rejected(_)));
    assert!(read::<model::Booking, _>(&rows, &keys::booking(booking(1))).unwrap().is_none(), "nothing was held");
    // With best available under an admission, the hold goes through.
    assert!(matches!(apply(&admitted(places[1], 1, expires, best), at, &mut rows).unwrap(), Outcome::Held(_)));
}

#[test]
fn one_booking_per_admitted_place_and_its_retry_is_fine() {
    let (mut rows, places, expires) = admitted_room(3, 100, 60_000);
    let at = ONSALE + 2_000;
    let first = apply(&admitted(places[0], 1, expires, hold(booking(1), 1, 0)), at, &mut rows).unwrap();
    assert!(matches!(first, Outcome::Held(_)));
    let slot: SlotRow = read(&rows, &keys::slot(E, &places[0])).unwrap().unwrap();
    assert_eq!((slot.booking, slot.ended), (booking(1), false));
    let retried = apply(&admitted(places[0], 1, expires, hold(booking(1), 1, 0)), at + 5, &mut rows).unwrap();
    assert_eq!(retried, first, "the same booking retried gets the same answer");
    let second = admitted(places[0], 1, expires, hold(booking(2), 1, 1));
    assert_eq!(apply(&second, at + 10, &mut rows).unwrap(), Outcome::AdmissionSpent);
    assert!(read::<model::Booking, _>(&rows, &keys::booking(booking(2))).unwrap().is_none());
}

#[test]
fn a_retry_under_another_booking_id_gets_its_idempotent_answer() {
    let (mut rows, places, expires) = admitted_room(3, 100, 60_000);
    let at = ONSALE + 2_000;
    let keyed = |nonce| Command::Hold {
        booking: booking(nonce),
        user: 1,
        tickets: vec![0],
        ttl_ms: 60_000,
        fan_tickets_max: 0,
        idempotency: Some(model::Idempotency { key: "k".into(), fingerprint: 1 }),
    };
    let first = apply(&admitted(places[0], 1, expires, keyed(1)), at, &mut rows).unwrap();
    assert!(matches!(first, Outcome::Held(_)));
    assert_eq!(apply(&admitted(places[0], 1, expires, keyed(2)), at + 1, &mut rows).unwrap(), first);
}

#[test]
fn a_disabled_room_lets_holds_through_as_usual() {
    let mut rows = with_room(&RoomSettings { enabled: false, ..settings(600, 100, 60_000) });
    assert!(matches!(apply(&hold(booking(1), 1, 0), ONSALE, &mut rows).unwrap(), Outcome::Held(_)));
    let unchecked = admitted(onsale_place(1, 1), 2, 0, hold(booking(2), 1, 1));
    assert!(matches!(apply(&unchecked, ONSALE, &mut rows).unwrap(), Outcome::Held(_)), "the admission is ignored");
    assert!(rows.scan(&keys::slot(E, &onsale_place(1, 1))[..9], 10).unwrap().is_empty(), "no place spent");
}

#[test]
fn a_release_ends_shopping_once() {
    let (mut rows, places, expires) = admitted_room(3, 100, 60_000);
    let at = ONSALE + 2_000;
    apply(&admitted(places[0], 1, expires, hold(booking(1), 1, 0)), at, &mut rows).unwrap();
    assert_eq!(room(&rows).shopping(at), 3);
    let release = Command::Release { booking: booking(1), user: 1 };
    assert!(matches!(apply(&release, at + 10, &mut rows).unwrap(), Outcome::Released(_)));
    let after = room(&rows);
    assert_eq!((after.done_total, after.shopping(at + 10)), (1, 2));
    assert!(read::<SlotRow, _>(&rows, &keys::slot(E, &places[0])).unwrap().unwrap().ended);
    let before = rows.0.clone();
    assert!(matches!(apply(&release, at + 20, &mut rows).unwrap(), Outcome::Released(_)));
    assert_eq!(rows.0, before, "releasing twice changes nothing more");
}

/// Fan 1 holds ticket 0 as booking 1 for `ttl_ms`.
fn fan_one_holds_for(ttl_ms: u64) -> Command {
    Command::Hold { booking: booking(1), user: 1, tickets: vec![0], ttl_ms, fan_tickets_max: 0, idempotency: None }
}

/// Fan 1 starts paying for booking 1, which extends its hold by up to two minutes.
fn fan_one_pays() -> Command {
    Command::StartPayment {
        booking: booking(1),
        user: 1,
        payment: "pi".into(),
        extension_ms: 120_000,
        idempotency: None,
    }
}

#[test]
fn a_payment_extends_shopping_and_its_confirmation_ends_it() {
    // The admission lasts 60 s; the hold 120 s from 1 s after it began; the payment extends it.
    let (mut rows, places, expires) = admitted_room(1, 100, 60_000);
    let at = ONSALE + 2_000;
    let long = fan_one_holds_for(120_000);
    apply(&admitted(places[0], 1, expires, long), at, &mut rows).unwrap();
    let slot: SlotRow = read(&rows, &keys::slot(E, &places[0])).unwrap().unwrap();
    assert_eq!(slot.bucket, (at + 120_000) / ROOM_BUCKET_MS, "the hold outlasts the admission");
    assert_ne!(slot.bucket, expires / ROOM_BUCKET_MS);
    assert_eq!(room(&rows).ends, vec![(slot.bucket, 1)], "the fan is counted once, until the hold ends");
    let start = fan_one_pays();
    let Outcome::PaymentPending(pending) = apply(&start, at + 30_000, &mut rows).unwrap() else { panic!("pending") };
    let extended = pending.held_until / ROOM_BUCKET_MS;
    assert_eq!(room(&rows).ends, vec![(extended, 1)]);
    assert_eq!(room(&rows).shopping(at + 70_000), 1, "still shopping past the first hold's end");
    let paid = Command::PaymentSucceeded { booking: booking(1), payment: "pi".into(), event: None };
    assert!(matches!(apply(&paid, at + 40_000, &mut rows).unwrap(), Outcome::Confirmed(_)));
    let done = room(&rows);
    assert_eq!((done.done_total, done.shopping(at + 40_000)), (1, 0));
}

#[test]
fn a_payment_does_not_bring_back_a_fan_whose_shopping_the_room_counts_as_ended() {
    // The admission lasts 60 s, the hold 120 s: the fan shops until the hold's bucket. A payment
    // started inside that bucket, the hold still on, finds the fan counted as done (ticks count
    // only later buckets, and may have admitted someone in its place): its extension must not
    // count the fan again.
    let (mut rows, places, expires) = admitted_room(1, 100, 60_000);
    let at = ONSALE + 2_000;
    let long = fan_one_holds_for(120_000);
    apply(&admitted(places[0], 1, expires, long), at, &mut rows).unwrap();
    let slot: SlotRow = read(&rows, &keys::slot(E, &places[0])).unwrap().unwrap();
    let paying_at = slot.bucket * ROOM_BUCKET_MS + 1;
    assert!(paying_at < at + 120_000, "the hold is still on when the payment starts");
    assert_eq!(room(&rows).shopping(paying_at), 0, "counted as done within its last bucket");
    let start = fan_one_pays();
    let Outcome::PaymentPending(_) = apply(&start, paying_at, &mut rows).unwrap() else { panic!("pending") };
    assert_eq!(room(&rows).shopping(paying_at + 30_000), 0, "the payment did not bring the fan back");
}

#[test]
fn a_hold_does_not_bring_back_a_fan_whose_shopping_the_room_counts_as_ended() {
    // The admission's last bucket: ticks count the fan as done, yet the admission still holds
    // for the rest of it. A hold made then must not count the fan again until it ends.
    let (mut rows, places, expires) = admitted_room(1, 100, 60_000);
    let at = (expires / ROOM_BUCKET_MS) * ROOM_BUCKET_MS;
    assert!(at < expires, "within the admission");
    assert_eq!(room(&rows).shopping(at), 0, "counted as done within its last bucket");
    let long = fan_one_holds_for(120_000);
    assert!(matches!(apply(&admitted(places[0], 1, expires, long), at, &mut rows).unwrap(), Outcome::Held(_)));
    assert_eq!(room(&rows).shopping(at + 30_000), 0, "the hold did not bring the fan back");
    let release = Command::Release { booking: booking(1), user: 1 };
    assert!(matches!(apply(&release, at + 40_000, &mut rows).unwrap(), Outcome::Released(_)));
    assert_eq!(room(&rows).shopping(at + 40_000), 0, "and its release takes nobody else's count");
}

#[test]
fn the_shopping_limit_stops_admissions_until_fans_are_done() {
    // 6,000/min: 100 a second, but at most 50 shopping; an admission lasts 10 minutes.
    let mut sim = Sim::new(&settings(6_000, 50, 600_000), vec![Line::new(1, (0..400).map(|s| onsale_place(1, s)))]);
    assert_eq!(sim.second(ONSALE + 1_000), 50);
    assert_eq!(sim.second(ONSALE + 2_000), 0);
    assert_eq!(room(&sim.rows).shopping(ONSALE + 2_000), 50);
    let expires = ONSALE + 1_000 + 600_000;
    for n in 0..3u64 {
        let under = admitted(onsale_place(1, n), 10 + n, expires, hold(booking(n + 1), 10 + n, n as u32));
        assert!(matches!(apply(&under, ONSALE + 2_500, &mut sim.rows).unwrap(), Outcome::Held(_)));
    }
    assert_eq!(sim.second(ONSALE + 3_000), 0, "holding fans still shop");
    for n in 0..3u64 {
        apply(&Command::Release { booking: booking(n + 1), user: 10 + n }, ONSALE + 3_500, &mut sim.rows).unwrap();
    }
    assert_eq!(sim.second(ONSALE + 4_000), 3, "three released bookings make room for three");
    assert_eq!(sim.second(ONSALE + 5_000), 0);
    assert_eq!(room(&sim.rows).shopping(ONSALE + 5_000), 50);
    // Ten minutes on, every admission so far has ended: fans come in again, up to the limit.
    let later = expires + ROOM_BUCKET_MS;
    assert_eq!(room(&sim.rows).shopping(later), 0);
    assert_eq!(sim.second(later), 50);
    assert_eq!(room(&sim.rows).shopping(later), 50);
    let state = room(&sim.rows);
    assert_eq!((state.admitted_total, state.done_total), (103, 3));
}

#[test]
fn a_late_admission_grants_at_most_the_headroom_and_answers_a_retry_alike() {
    let mut rows = with_room(&settings(600, 5, 60_000));
    let late = |node, seq, count| Command::RoomLateAdmit { event: E, node, boot: 1, seq, count };
    let at = ONSALE + 1_000;
    assert_eq!(apply(&late(1, 1, 3), at, &mut rows).unwrap(), Outcome::LateAdmitted { granted: 3, at });
    let before = rows.0.clone();
    assert_eq!(apply(&late(1, 1, 3), at + 5, &mut rows).unwrap(), Outcome::LateAdmitted { granted: 3, at: at + 5 });
    assert_eq!(apply(&late(1, 0, 3), at + 5, &mut rows).unwrap(), Outcome::LateAdmitted { granted: 0, at: at + 5 });
    assert_eq!(rows.0, before, "a retried late admission changes nothing");
    assert_eq!(apply(&late(1, 2, 10), at + 10, &mut rows).unwrap(), Outcome::LateAdmitted { granted: 2, at: at + 10 });
    assert_eq!(apply(&late(2, 1, 1), at + 10, &mut rows).unwrap(), Outcome::LateAdmitted { granted: 0, at: at + 10 });
    let state = room(&rows);
    assert_eq!((state.admitted_total, state.late_total, state.shopping(at + 10)), (5, 5, 5));
    assert_eq!(state.late, vec![(1, 1, 2, 2), (2, 1, 1, 0)]);

    let paused = RoomSettings { paused: true, shopping_max: 100, ..settings(600, 5, 60_000) };
    configure(&mut rows, &paused, KEY, at + 20);
    assert_eq!(apply(&late(1, 3, 1), at + 30, &mut rows).unwrap(), Outcome::LateAdmitted { granted: 0, at: at + 30 });
    let elsewhere = Command::RoomLateAdmit { event: 9, node: 1, boot: 1, seq: 1, count: 1 };
    assert_eq!(apply(&elsewhere, at, &mut rows).unwrap(), Outcome::NoRoom);
}

/// A room row decodes its head alone: holds read only that.
#[test]
fn a_hold_reads_the_rooms_enabled_flag_from_the_rows_head() {
    let mut sim = Sim::new(&settings(6_000, 100, 60_000), vec![presale_line(1, 50)]);
    sim.second(ONSALE + 1_000);
    assert!(!room(&sim.rows).reports.is_empty() && !room(&sim.rows).passes.is_empty());
    assert!(room::requires_admission(&sim.rows, E).unwrap());
    assert!(!room::requires_admission(&sim.rows, 9).unwrap());
    configure(&mut sim.rows, &RoomSettings { enabled: false, ..settings(6_000, 100, 60_000) }, KEY, ONSALE + 2_000);
    assert!(!room::requires_admission(&sim.rows, E).unwrap());
}

/// The encoded size of a value.
fn size<T: serde::Serialize>(value: &T) -> usize {
    encode(value).len()
}

/// The largest core row `nodes` reporting nodes can make, with an admission of `admission_ms`:
/// its fixed fields (no more than a room's without passes and reports, and its count of nodes),
/// the buckets of shopping ends an admission spans, and each node's entry in `used` and `late`.
fn core_bytes_max(nodes: usize, admission_ms: u64) -> usize {
    let empty = RoomState {
        event: E,
        settings: settings(1, 1, admission_ms),
        draw_key: KEY,
        step: 1,
        watermark: Some(onsale_place(1, 1)),
        segment_since: 0,
        segment_admitted: 0,
        admitted_total: 0,
        late_total: 0,
        done_total: 0,
        abandoned_total: 0,
        ends: Vec::new(),
        passes: Vec::new(),
        reports: Vec::new(),
        used: Vec::new(),
        last_tick_at: 0,
        late: Vec::new(),
    };
    let buckets = (admission_ms / ROOM_BUCKET_MS + 2) as usize;
    size(&empty)
        + size(&0u32)
        + buckets * size(&(0u64, 0u64))
        + nodes * (size(&(0u64, 0u64, 0u64)) + size(&(0u64, 0u64, 0u64, 0u32)))
}

/// A report of the most places, quantiles and text.
fn full_report(seq: u64) -> RoomReport {
    let place = onsale_place(1, 1);
    let text = "x".repeat(REPORT_TEXT_BYTES_MAX);
    RoomReport {
        front: vec![place; REPORT_FRONT_MAX],
        quantiles: vec![(place, 1); REPORT_QUANTILES_MAX],
        endpoint: text.clone(),
        cert_sha256: text,
        ..report(seq, 1, Vec::new(), place)
    }
}

/// The largest report row: a stamp and a report of the most places, quantiles and text.
fn report_bytes_max() -> usize {
    size(&(1u64, full_report(1)))
}

/// The largest passes row with an admission of `admission_ms` and a tick a second: an
/// admission's worth plus a bucket, the one before and the newest.
fn passes_bytes_max(admission_ms: u64) -> usize {
    let passes = ((admission_ms.max(room::PASSES_KEPT_MIN_MS) + ROOM_BUCKET_MS) / 1_000 + 2) as usize;
    size(&Vec::<Pass>::new()) + passes * size(&Pass { at: 0, watermark: onsale_place(1, 1), admitted_total: 0 })
}

/// The sizes of the room's rows: its core, its passes (0 without), and each node's report.
fn row_sizes(rows: &MapRows) -> (usize, usize, Vec<usize>) {
    let core = rows.0[&keys::room(E)].len();
    let passes = rows.0.get(&keys::room_passes(E)).map_or(0, Vec::len);
    let reports = rows.scan(&keys::room_reports(E), usize::MAX).unwrap().iter().map(|(_, v)| v.len()).collect();
    (core, passes, reports)
}

#[test]
fn room_state_does_not_grow_with_fans() {
    let admission_ms = 120_000;
    let mut sim = Sim::new(&settings(3_000, 10_000_000, admission_ms), (1..=3).map(|n| Line::new(n, [])).collect());
    let (core_max, passes_max, report_max) =
        (core_bytes_max(3, admission_ms), passes_bytes_max(admission_ms), report_bytes_max());
    assert!(core_max < 4_000, "three nodes' core row stays under 4 KB: {core_max}");
    assert!(passes_max < 10_000, "a two-minute admission's passes stay under 10 KB: {passes_max}");
    assert!(report_max < 50_000, "a report row stays under 50 KB: {report_max}");
    let (mut joined, mut sizes) = (0u64, Vec::new());
    for second in 1..=1_200u64 {
        let at = ONSALE + second * 1_000;
        // 100,000 fans join over the first 1,000 s, spread over the three nodes.
        for _ in 0..if joined < 100_000 { 100 } else { 0 } {
            let line = &mut sim.lines[(joined % 3) as usize];
            line.places.push_back(Place { class: CLASS_ONSALE, primary: at - 1, node: line.node, seq: joined });
            joined += 1;
        }
        sim.second(at);
        let (core, passes, reports) = row_sizes(&sim.rows);
        assert!(core <= core_max, "at {second} s the core row is {core} bytes, over {core_max}");
        assert!(passes <= passes_max, "at {second} s the passes row is {passes} bytes, over {passes_max}");
        assert_eq!(reports.len(), 3, "a report row per node");
        assert!(
            reports.iter().all(|&r| r <= report_max),
            "at {second} s a report row is over {report_max}: {reports:?}"
        );
        sizes.push(size(&room(&sim.rows)));
    }
    let state = room(&sim.rows);
    assert_eq!(joined, 100_000);
    assert_eq!(state.admitted_total, 60_000, "3,000 a minute for 20 minutes");
    assert!(state.reports.iter().all(|(_, _, r)| r.front.len() == REPORT_FRONT_MAX), "fronts stay full");
    let (two, twenty) = (sizes[119], sizes[1_199]);
    let grown = twenty.abs_diff(two) as f64 / two as f64;
    assert!(grown <= 0.10, "{two} bytes after 2 minutes, {twenty} after 20: {:.1} % apart", grown * 100.0);
}

/// Rows that record the keys read and the size of every value written.
struct Recorded<'a> {
    rows: &'a mut MapRows,
    read: std::cell::RefCell<Vec<Vec<u8>>>,
    written: Vec<(Vec<u8>, usize)>,
}

impl<'a> Recorded<'a> {
    fn new(rows: &'a mut MapRows) -> Recorded<'a> {
        Recorded { rows, read: Default::default(), written: Vec::new() }
    }

    /// Whether a key of a room's passes or reports row was read.
    fn read_passes_or_reports(&self) -> bool {
        self.read.borrow().iter().any(|k| k[0] == keys::room_passes(E)[0] || k[0] == keys::room_reports(E)[0])
    }

    fn written_max(&self) -> usize {
        self.written.iter().map(|(_, n)| *n).max().unwrap_or(0)
    }
}

impl Rows for Recorded<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Fault> {
        self.read.borrow_mut().push(key.to_vec());
        self.rows.get(key)
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.written.push((key.clone(), value.len()));
        self.rows.put(key, value);
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.written.push((key.clone(), 0));
        self.rows.delete(key);
    }
    fn scan(&self, prefix: &[u8], limit: usize) -> Result<Vec<RawRow>, Fault> {
        let found = self.rows.scan(prefix, limit)?;
        self.read.borrow_mut().extend(found.iter().map(|(k, _)| k.clone()));
        Ok(found)
    }
}

/// Most bytes a command under an admission may write to one row.
const HOT_ROW_BYTES_MAX: usize = 8 * 1024;

/// Applies `command` over `rows`, recording; asserts it wrote no row over
/// [`HOT_ROW_BYTES_MAX`] and read no passes or reports; its outcome, and whether it wrote the
/// room's core row.
fn small(rows: &mut MapRows, command: &Command, at: Millis) -> (Outcome, bool) {
    let mut recorded = Recorded::new(rows);
    let outcome = apply(command, at, &mut recorded).unwrap();
    let most = recorded.written_max();
    assert!(most <= HOT_ROW_BYTES_MAX, "{command:?} wrote a row of {most} bytes: {:?}", recorded.written);
    assert!(!recorded.read_passes_or_reports(), "{command:?} read passes or reports: {:?}", recorded.read.borrow());
    (outcome, recorded.written.iter().any(|(key, _)| *key == keys::room(E)))
}

/// With three full reports stored, the commands that come at the admission rate touch only small
/// rows: the core, and their own slot and booking rows.
#[test]
fn holds_releases_and_payments_under_an_admission_touch_only_small_rows() {
    let mut rows = with_room(&settings(60_000, 10_000, 600_000));
    let at = ONSALE + 1_000;
    for node in 1..=3u16 {
        let places: Vec<Place> =
            (0..REPORT_FRONT_MAX as u64).map(|s| onsale_place(node, s * 3 + u64::from(node))).collect();
        let complete_to = *places.last().unwrap();
        let full = RoomReport { front: places, complete_to, clock_ms: at, ..full_report(1) };
        assert_eq!(send(&mut rows, u64::from(node), full, at), Outcome::RoomReported { at });
    }
    assert_eq!(passed(tick(&mut rows, 1, at)), 1_000);
    let (_, passes, reports) = row_sizes(&rows);
    assert!(passes > 0 && reports.iter().all(|&r| r > 4 * HOT_ROW_BYTES_MAX), "the big rows are there: {reports:?}");

    let expires = at + 600_000;
    let hold_at = at + 500;
    assert_eq!(small(&mut rows, &hold(booking(1), 1, 0), hold_at), (Outcome::AdmissionRequired, false));
    let under = |n: u64| admitted(onsale_place(1, n * 3 + 1), 10 + n, expires, hold(booking(n), 10 + n, n as u32));
    for n in 1..=3 {
        let (held, core) = small(&mut rows, &under(n), hold_at);
        assert!(matches!(held, Outcome::Held(_)) && core, "held, and its fan counted in the core: {held:?}");
    }
    let (retried, core) = small(&mut rows, &under(1), hold_at + 1);
    assert!(matches!(retried, Outcome::Held(_)) && !core, "a retry is let through and counted once");
    let release = Command::Release { booking: booking(1), user: 11 };
    assert!(matches!(small(&mut rows, &release, hold_at + 10), (Outcome::Released(_), true)));
    let start = Command::StartPayment {
        booking: booking(2),
        user: 12,
        payment: "pi".into(),
        extension_ms: 120_000,
        idempotency: None,
    };
    // Its extension ends before the admission does: the fan's end stays where it was counted.
    assert!(matches!(small(&mut rows, &start, hold_at + 20), (Outcome::PaymentPending(_), false)));
    let paid = Command::PaymentSucceeded { booking: booking(2), payment: "pi".into(), event: None };
    assert!(matches!(small(&mut rows, &paid, hold_at + 30), (Outcome::Confirmed(_), true)));
    let state = room(&rows);
    assert_eq!((state.done_total, state.shopping(hold_at + 30)), (2, 998), "the core row kept count");
    assert_eq!(state.reports.len(), 3, "the reports are still there, untouched");
}

//! Remembering and forgetting, applied over a map of rows: a prune forgets what its window
//! left behind and nothing younger, at most its bound per command, and a key used again after
//! it was forgotten starts anew.

use model::{BookingId, Command, Idempotency, Millis, Outcome, IDEMPOTENCY_WINDOW_MIN_MS, PRUNE_RECORDS_HARD_MAX};

use super::tests::{event, map, MapRows};
use super::*;

const WINDOW_MS: u64 = 10_000;

fn setup(seats: usize) -> MapRows {
    let mut rows = MapRows::default();
    let created = apply(&Command::CreateEvent { event: event(1, seats), seat_map: map(seats) }, 0, &mut rows);
    assert!(matches!(created.unwrap(), Outcome::EventCreated(_)));
    rows
}

fn booking(nonce: u64) -> BookingId {
    BookingId { event: 1, nonce }
}

/// A hold of `ticket` by fan 1 under `key`, for a minute.
fn keyed(nonce: u64, ticket: u32, key: &str) -> Command {
    Command::Hold {
        booking: booking(nonce),
        user: 1,
        tickets: vec![ticket],
        ttl_ms: 60_000,
        fan_tickets_max: 0,
        idempotency: Some(Idempotency { key: key.into(), fingerprint: u64::from(ticket) }),
    }
}

fn prune(rows: &mut MapRows, at: Millis, records_max: u32) -> Outcome {
    apply(&Command::Prune { window_ms: WINDOW_MS, records_max }, at, rows).unwrap()
}

/// How many rows of a kind (by tag) there are.
fn count(rows: &MapRows, tag: u8) -> usize {
    rows.0.keys().filter(|k| k.first() == Some(&tag)).count()
}

fn held_id(outcome: &Outcome) -> BookingId {
    match outcome {
        Outcome::Held(booking) => booking.id,
        other => panic!("not held: {other:?}"),
    }
}

#[test]
fn a_prune_forgets_what_its_window_left_behind_and_nothing_younger() {
    let mut rows = setup(4);
    let old = apply(&keyed(1, 0, "old"), 1_000, &mut rows).unwrap();
    let young = apply(&keyed(2, 1, "young"), 5_000, &mut rows).unwrap();
    assert_eq!((count(&rows, b'k'), count(&rows, b'x')), (2, 2), "each record and its index row");

    // At 11,000 the window reaches back to 1,000: the first record is due, the second is not.
    assert_eq!(prune(&mut rows, 11_000, 100), Outcome::Pruned { records: 1, more: false });
    assert_eq!((count(&rows, b'k'), count(&rows, b'x')), (1, 1));
    // Within its window a retry (another booking id, as another gateway draws) gets the first answer.
    assert_eq!(apply(&keyed(9, 1, "young"), 11_000, &mut rows).unwrap(), young);
    // After its window a retry is a new request: a new booking (the first still holds ticket 0,
    // so the retry of the old one asks for a free ticket under the same key).
    let again = apply(&keyed(10, 2, "old"), 11_001, &mut rows).unwrap();
    assert_ne!(held_id(&again), held_id(&old));
    assert_eq!(held_id(&again), booking(10));
    // Nothing is due now: the young record stays until its own window has passed.
    assert_eq!(prune(&mut rows, 14_999, 100), Outcome::Pruned { records: 0, more: false });
    assert_eq!(apply(&keyed(11, 1, "young"), 14_999, &mut rows).unwrap(), young);
    assert_eq!(prune(&mut rows, 15_000, 100), Outcome::Pruned { records: 1, more: false });
    assert!(matches!(apply(&keyed(12, 3, "young"), 15_000, &mut rows).unwrap(), Outcome::Held(_)));
}

#[test]
fn a_backlog_goes_over_several_prunes_each_within_its_bound() {
    let mut rows = setup(30);
    for n in 0..25u32 {
        let outcome = apply(&keyed(u64::from(n) + 1, n, &format!("k{n}")), 1_000 + u64::from(n), &mut rows).unwrap();
        assert!(matches!(outcome, Outcome::Held(_)));
    }
    let at = 1_000 + 25 + WINDOW_MS;
    assert_eq!(prune(&mut rows, at, 10), Outcome::Pruned { records: 10, more: true });
    assert_eq!(count(&rows, b'k'), 15);
    // The records the bound left read as forgotten already: the prune's cutoff passed them.
    assert!(matches!(apply(&keyed(100, 29, "k24"), at, &mut rows).unwrap(), Outcome::Held(_)));
    assert_eq!(prune(&mut rows, at, 10), Outcome::Pruned { records: 10, more: true });
    // The last five, and the retry's own record is young: it stays.
    assert_eq!(prune(&mut rows, at, 10), Outcome::Pruned { records: 5, more: false });
    assert_eq!((count(&rows, b'k'), count(&rows, b'x')), (1, 1));
}

#[test]
fn a_key_used_again_after_it_was_forgotten_is_not_lost_to_its_old_index_row() {
    let mut rows = setup(4);
    apply(&keyed(1, 0, "k"), 1_000, &mut rows).unwrap();
    // A prune with a bound of one at 20,000 forgets through 10,000 but removes one other record
    // first (an older one), so the old "k" index row is still there when "k" comes again.
    rows.0.insert(keys::remembered(500, &keys::webhook("evt_0")), Vec::new());
    rows.0.insert(keys::webhook("evt_0"), encode(&500u64));
    assert_eq!(prune(&mut rows, 20_000, 1), Outcome::Pruned { records: 1, more: true });
    let second = apply(&keyed(2, 1, "k"), 20_000, &mut rows).unwrap();
    assert_eq!(held_id(&second), booking(2), "forgotten: a new request");
    // The old index row goes, and the record written anew stays with its own.
    assert_eq!(prune(&mut rows, 20_000, 10), Outcome::Pruned { records: 1, more: false });
    assert_eq!((count(&rows, b'k'), count(&rows, b'x')), (1, 1));
    assert_eq!(apply(&keyed(3, 1, "k"), 20_001, &mut rows).unwrap(), second);
}

#[test]
fn webhook_event_ids_are_forgotten_too() {
    let mut rows = setup(1);
    let hold = Command::Hold {
        booking: booking(1),
        user: 1,
        tickets: vec![0],
        ttl_ms: 60_000,
        fan_tickets_max: 0,
        idempotency: None,
    };
    apply(&hold, 0, &mut rows).unwrap();
    let failed = Command::PaymentFailed {
        booking: booking(1),
        payment: "pi_1".into(),
        reason: "declined".into(),
        event: Some("evt_1".into()),
    };
    assert!(matches!(apply(&failed, 1_000, &mut rows).unwrap(), Outcome::Updated(_)));
    assert_eq!(apply(&failed, 2_000, &mut rows).unwrap(), Outcome::AlreadyApplied);
    assert_eq!(prune(&mut rows, 11_000, 10), Outcome::Pruned { records: 1, more: false });
    assert_eq!((count(&rows, b'w'), count(&rows, b'x')), (0, 0));
    // Past its window a duplicate is applied as news again: the booking's own state decides.
    assert!(matches!(apply(&failed, 11_000, &mut rows).unwrap(), Outcome::Updated(_)));
}

#[test]
fn rows_written_before_the_index_are_left_alone_and_read_as_forgotten_after_a_prune() {
    let mut rows = setup(4);
    let first = apply(&keyed(1, 0, "legacy"), 1_000, &mut rows).unwrap();
    // As a row written before the index existed: the record without its index row.
    rows.0.retain(|k, _| k.first() != Some(&b'x'));
    assert_eq!(apply(&keyed(2, 0, "legacy"), 2_000, &mut rows).unwrap(), first, "still answered");
    assert_eq!(prune(&mut rows, 20_000, 10), Outcome::Pruned { records: 0, more: false });
    assert_eq!(count(&rows, b'k'), 1, "a prune never finds it");
    // Forgotten all the same: the prune's cutoff passed its stamp. Used again, it is indexed.
    assert_eq!(held_id(&apply(&keyed(3, 1, "legacy"), 20_000, &mut rows).unwrap()), booking(3));
    assert_eq!(count(&rows, b'x'), 1);
}

#[test]
fn a_prune_outside_its_limits_is_refused_without_changing_anything() {
    let mut rows = setup(1);
    apply(&keyed(1, 0, "k"), 0, &mut rows).unwrap();
    let before = rows.0.clone();
    let at = 10 * model::IDEMPOTENCY_WINDOW_HARD_MAX_MS;
    for (window_ms, records_max) in [
        (IDEMPOTENCY_WINDOW_MIN_MS - 1, 10),
        (model::IDEMPOTENCY_WINDOW_HARD_MAX_MS + 1, 10),
        (WINDOW_MS, 0),
        (WINDOW_MS, PRUNE_RECORDS_HARD_MAX + 1),
    ] {
        let outcome = apply(&Command::Prune { window_ms, records_max }, at, &mut rows).unwrap();
        assert!(matches!(outcome, Outcome::Rejected(_)), "{window_ms} {records_max}: {outcome:?}");
    }
    assert_eq!(rows.0, before);
}

#[test]
fn the_forgotten_stamp_never_moves_back() {
    let mut rows = setup(2);
    apply(&keyed(1, 0, "k"), 5_000, &mut rows).unwrap();
    prune(&mut rows, 20_000, 10);
    // A later prune with a longer window (another leader's setting) cuts earlier: the stamp stays.
    let longer = Command::Prune { window_ms: 19_000, records_max: 10 };
    assert_eq!(apply(&longer, 21_000, &mut rows).unwrap(), Outcome::Pruned { records: 0, more: false });
    assert_eq!(read::<Millis, _>(&rows, keys::FORGOTTEN).unwrap(), Some(10_000));
}

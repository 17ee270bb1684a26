//! The history checker: given every request of a chaos run with its answer (the history) and the
//! cluster's state read after the faults healed (the final state), it checks the invariants the
//! system promises and says which were broken, by which requests, bookings and tickets.
//!
//! What the system does, and so what the checks may rely on (`storage::ledger`, design rules 2-6):
//! - every change is a command in the event's group log, applied at a group time `at` that never
//!   decreases along the log; a booking's `created_at`, `confirmed_at` and `released_at` are the
//!   `at` of its hold, payment and release;
//! - a ticket is taken by a hold only if every ticket of the request is free at `at` (no row, or
//!   a hold that ended: `at >= until`); a sold ticket stays sold to its booking forever;
//! - a booking moves held -> confirmed or held -> released and never back ("held" and "expired"
//!   are one stored state read by clocks that disagree), keeping its fan, event, tickets and
//!   creation time; a release only deletes the booking's own rows;
//! - a payment confirms a held booking, late or not, only if no other booking holds or owns its
//!   tickets at `at`; paying a confirmed booking or releasing a released one answers it as is;
//! - a write answered 2xx was committed and applied before the answer left; the booking in any
//!   2xx answer is the stored booking at some moment between the request's start and its end
//!   (bookings are read linearizably); a 4xx changed nothing; `Unknown` may or may not have
//!   applied, so it is never taken as evidence, only resolved against the final state.
//!
//! The checks, and why a correct run never fails them:
//! 1. [`NO_DOUBLE_SALE`]: no two bookings are ever answered confirmed for one ticket, the final
//!    state has no two confirmed bookings sharing a ticket, and its ticket rows agree with its
//!    bookings (a sold row belongs to a confirmed booking listing the ticket, a held row to a
//!    held one, every ticket of a confirmed booking is sold to it). Sound: a sold row is never
//!    overwritten, and rows change only together with their booking.
//! 2. [`NO_LOST_WRITES`]: every booking a 2xx answer showed is in the final state with the fan,
//!    event, tickets (those the hold asked for) and creation time it showed; if it was answered
//!    confirmed it is confirmed at the same time, if released released at the same time. Sound:
//!    an answered change was committed, a committed entry is never undone, and confirmed and
//!    released are final states whose stamp never changes.
//! 3. [`NO_OVERLAPPING_HOLDS`]: per ticket, the group-time intervals during which bookings
//!    occupied it never overlap. A booking occupies its tickets during
//!    `[created_at, min(held_until, released_at))`, and during `[confirmed_at, forever)` if
//!    confirmed (one interval when the payment came before the hold ended). Every booking of
//!    the final state counts, and so does every booking an answer showed (merged with its final
//!    version: a release or payment seen anywhere counts; where versions disagree on a time,
//!    the one that occupies least is taken). Sound: apply takes a ticket only when it is free at `at`, which is exactly
//!    when no such interval of another booking covers `at`; intervals are half-open because a
//!    hold ending at `until` frees the ticket for a command stamped `until`.
//! 4. [`REAL_TIME_ORDER`]: if request X was answered before request Y was sent, both about one
//!    event, and Y's answer shows the stamp of Y's own change, then that stamp is at least the
//!    latest stamp X's answer showed; and no booking is confirmed or released before it was
//!    created. Sound: X's stamp was applied before X answered, Y's command entered the log
//!    after Y was sent, and group time does not decrease along the log. Y's stamp is Y's own
//!    for a payment (release) only when no other payment (release) of that booking that may
//!    have applied was sent before Y was answered: paying a confirmed booking answers the old
//!    confirmation, whose stamp may predate Y. Likewise for a hold only when no other hold was
//!    answered that booking and no unknown hold of the same fan, event and tickets was sent
//!    before (should holds ever be retried idempotently, the retry answers the first booking).
//! 5. [`NO_STALE_READS`]: if an answer showed booking B confirmed (released) and ended before
//!    another request about B started, that request's answer shows B confirmed (released) too,
//!    and no request about B answers 404 after an answer showed B. Sound: each answer is B's
//!    stored state at a moment inside its request, stored states only move forward, and a
//!    booking never vanishes.
//! 6. [`REPLICAS_AGREE`]: in each group every replica is at the same applied index (the runner
//!    waits for catch-up before it reads; a laggard is reported as such) and replicas at the
//!    same applied index have the same digest. Sound: apply is deterministic.
//! 7. [`UNKNOWN_RESOLVED`]: never fails; it resolves each `Unknown` write against the final
//!    state and counts the outcomes in [`Counts::unknown`].
//!
//! The waiting room's checks read the room's history ([`RoomRecord`]s; [`check_run`] adds them
//! to the checks above). The room keeps one admission watermark per event in the event's group:
//! every place at or below it is admitted, a tick moves it over places the nodes reported, in
//! place order, within the rate and the shopping limit, and it never moves back; an admission
//! token is a signature over (event, fan, place, end), the end fixed by when the watermark first
//! passed the place, so every node gives a place the same token; apply lets one booking be made
//! under one place.
//! 8. [`ROOM_WATERMARK_MONOTONIC`]: the watermarks the admin view showed through one node, in
//!    the order they were read, never decrease. Sound: the view is a linearizable read, the
//!    samples of one node are read one after another, and apply never moves the watermark back.
//! 9. [`ROOM_NO_DOUBLE_ADMISSION`]: every admission of one place carries the same token, and at
//!    most one booking is answered made under one place. Sound: see the token and apply above.
//! 10. [`ROOM_SHOPPING_MAX`]: no admin view showed more fans shopping than the room's limit.
//!    Sound: ticks and late admissions admit only within the headroom the limit leaves.
//! 11. [`ROOM_ORDER`]: of two fans who each waited on one stream from join to admission, the one
//!    with the smaller place, in line when the other was admitted, is admitted at most
//!    [`ROOM_ORDER_SLACK_MS`] after it, unless a fault touched its node while it waited (or
//!    [`ROOM_FAULT_GRACE_MS`] before). Sound: the watermark passing the larger place passed the
//!    smaller; the smaller place's node, in step and counted, sees that within a tick.
//! 12. [`ROOM_HOLDS_NEED_ADMISSION`]: no hold on the room's event succeeded without an admission
//!    token that an admission gave its fan. Sound: apply refuses a hold on an event whose room
//!    is on unless it comes with an admission.
//!
//! Real times are compared strictly (`end < start`): two events in one millisecond may have
//! happened in either order.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{
    Booking, Entry, FinalEvent, FinalState, FinalTicket, HoldAnswer, Op, Place, ReplicaDigest, Result as Answer,
    RoomRecord,
};
use crate::report::{Answers, Check, Counts, Report, Resolution, Violation};

pub const NO_DOUBLE_SALE: &str = "no_double_sale";
pub const NO_LOST_WRITES: &str = "no_lost_writes";
pub const NO_OVERLAPPING_HOLDS: &str = "no_overlapping_holds";
pub const REAL_TIME_ORDER: &str = "real_time_order";
pub const NO_STALE_READS: &str = "no_stale_reads";
pub const REPLICAS_AGREE: &str = "replicas_agree";
pub const UNKNOWN_RESOLVED: &str = "unknown_resolved";
pub const PAYMENTS_SETTLED: &str = "payments_settled";
pub const ROOM_WATERMARK_MONOTONIC: &str = "room_watermark_monotonic";
pub const ROOM_NO_DOUBLE_ADMISSION: &str = "room_no_double_admission";
pub const ROOM_SHOPPING_MAX: &str = "room_shopping_max";
pub const ROOM_ORDER: &str = "room_order";
pub const ROOM_HOLDS_NEED_ADMISSION: &str = "room_holds_need_admission";

/// How much later than a fan with a larger place a steady fan may be admitted: ticks come once a
/// second, and each node looks at the watermark ten times a second.
pub const ROOM_ORDER_SLACK_MS: u64 = 2_000;
/// How long after a fault a node it touched may still lag: a restarted node catches up, a
/// healed link carries the backlog.
pub const ROOM_FAULT_GRACE_MS: u64 = 5_000;

/// Every captured payment ends in a confirmed booking or a refund (design rule 6), and every
/// confirmed booking was paid for. The provider keeps one payment per booking.
fn payments_settled(f: &Facts) -> Check {
    let mut violations = Vec::new();
    let mut paid: HashMap<&str, &crate::history::FinalPayment> = HashMap::new();
    for payment in f.final_state.payments.iter().filter(|p| p.status == "succeeded") {
        paid.insert(payment.booking.as_str(), payment);
        let refunded = payment.amount_refunded >= payment.amount;
        let confirmed = f.finals.get(payment.booking.as_str()).is_some_and(|b| Stage::of(b) == Some(Stage::Confirmed));
        let problem = match (confirmed, refunded) {
            (true, true) => Some("was refunded, yet its booking is confirmed"),
            (false, false) => Some("was captured, yet its booking is not confirmed and nothing was refunded"),
            _ => None,
        };
        if let Some(problem) = problem {
            let message = format!("payment {} for booking {} {problem}", payment.id, payment.booking);
            violations.push(Violation::new(message).bookings([payment.booking.as_str()]));
        }
    }
    if !f.final_state.payments.is_empty() {
        for booking in f.finals.values().filter(|b| Stage::of(b) == Some(Stage::Confirmed)) {
            let kept = paid.get(booking.id.as_str()).is_some_and(|p| p.amount_refunded < p.amount);
            if !kept {
                let message = format!("booking {} is confirmed without a captured payment kept for it", booking.id);
                violations.push(Violation::new(message).bookings([booking.id.as_str()]));
            }
        }
    }
    Check::new(
        PAYMENTS_SETTLED,
        "every payment the provider captured ends in a confirmed booking or a refund, and every confirmed booking has a captured payment that was not refunded",
        violations,
    )
}

/// The end of an interval that never ends (a sold ticket).
const FOREVER: u64 = u64::MAX;

/// Checks a history against the final state; see the module doc for the rules.
pub fn check(history: &[Entry], final_state: &FinalState) -> Report {
    let facts = Facts::new(history, final_state);
    let checks = vec![
        no_double_sale(&facts),
        no_lost_writes(&facts),
        no_overlapping_holds(&facts),
        real_time_order(&facts),
        no_stale_reads(&facts),
        replicas_agree(&final_state.replicas),
        payments_settled(&facts),
        unknown_resolved(),
    ];
    Report { checks, counts: counts(&facts) }
}

/// Checks a run: the history against the final state as [`check`] does, and the waiting room's
/// history (its checks follow the others in the report; see the module doc).
pub fn check_run(history: &[Entry], room: &[RoomRecord], final_state: &FinalState) -> Report {
    let mut report = check(history, final_state);
    report.checks.extend(room_checks(history, room));
    report.counts.room = room_counts(room);
    report
}

/// The waiting room's checks, in report order.
pub fn room_checks(history: &[Entry], room: &[RoomRecord]) -> Vec<Check> {
    vec![
        room_watermark_monotonic(room),
        room_no_double_admission(room),
        room_shopping_max(room),
        room_order(room),
        room_holds_need_admission(history, room),
    ]
}

/// The input, indexed once for every check.
struct Facts<'a> {
    history: &'a [Entry],
    final_state: &'a FinalState,
    /// Every booking of the final state, by id.
    finals: HashMap<&'a str, &'a Booking>,
    /// Every 2xx answer and the booking it showed, in history order.
    seen: Vec<Seen<'a>>,
}

#[derive(Clone, Copy)]
struct Seen<'a> {
    entry: &'a Entry,
    booking: &'a Booking,
}

impl<'a> Facts<'a> {
    fn new(history: &'a [Entry], final_state: &'a FinalState) -> Self {
        let finals = final_state.events.iter().flat_map(|e| &e.bookings).map(|b| (b.id.as_str(), b)).collect();
        let seen = history
            .iter()
            .filter_map(|entry| match &entry.result {
                Answer::Ok { booking } => Some(Seen { entry, booking }),
                _ => None,
            })
            .collect();
        Facts { history, final_state, finals, seen }
    }
}

/// A booking's stored state; "held" and "expired" are one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Held,
    Confirmed,
    Released,
}

impl Stage {
    fn of(booking: &Booking) -> Option<Stage> {
        match booking.status.as_str() {
            // A booking waiting for its payment still holds its seats.
            "held" | "expired" | "paymentPending" => Some(Stage::Held),
            "confirmed" => Some(Stage::Confirmed),
            // Refunded (a payment captured after the seats went to others) ends like a release.
            "released" | "refunded" => Some(Stage::Released),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Held => "held",
            Stage::Confirmed => "confirmed",
            Stage::Released => "released",
        }
    }
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Hold { .. } => "hold",
        Op::Release { .. } => "release",
        Op::Pay { .. } => "pay",
        Op::ReadBooking { .. } => "read",
    }
}

/// The booking a request is about: the one it names, or for a hold the one it was answered.
fn target(entry: &Entry) -> Option<&str> {
    match (&entry.op, &entry.result) {
        (Op::Release { booking } | Op::Pay { booking, .. } | Op::ReadBooking { booking }, _) => Some(booking),
        (Op::Hold { .. }, Answer::Ok { booking }) => Some(&booking.id),
        (Op::Hold { .. }, _) => None,
    }
}

/// Names an entry in a message.
fn what(entry: &Entry) -> String {
    match &entry.op {
        Op::Hold { event, .. } => format!("entry {} (hold in event {event} by fan {})", entry.id, entry.fan),
        Op::Release { booking } => format!("entry {} (release of {booking})", entry.id),
        Op::Pay { booking, .. } => format!("entry {} (payment of {booking})", entry.id),
        Op::ReadBooking { booking } => format!("entry {} (read of {booking})", entry.id),
    }
}

fn sorted(tickets: &[u32]) -> Vec<u32> {
    let mut tickets = tickets.to_vec();
    tickets.sort_unstable();
    tickets
}

// 1. no_double_sale

fn no_double_sale(f: &Facts) -> Check {
    let mut violations = sold_twice_in_history(f);
    violations.extend(f.final_state.events.iter().flat_map(sold_twice_in_final));
    violations.extend(f.final_state.events.iter().flat_map(rows_disagree_with_bookings));
    Check::new(
        NO_DOUBLE_SALE,
        "no ticket is sold to two bookings: no two bookings answered confirmed share a ticket; in the final \
         state no two confirmed bookings share a ticket, a sold (held) ticket belongs to a confirmed (held) \
         booking that lists it, and every ticket of a confirmed booking is sold to it",
        violations,
    )
}

/// A sold ticket stays sold to its booking, so two bookings ever answered confirmed for one
/// ticket are a double sale, whenever they were answered.
fn sold_twice_in_history(f: &Facts) -> Vec<Violation> {
    let mut owners: BTreeMap<(u64, u32), BTreeMap<&str, u64>> = BTreeMap::new();
    for s in f.seen.iter().filter(|s| Stage::of(s.booking) == Some(Stage::Confirmed)) {
        for &ticket in &s.booking.tickets {
            owners.entry((s.booking.event, ticket)).or_default().entry(&s.booking.id).or_insert(s.entry.id);
        }
    }
    let twice = owners.into_iter().filter(|(_, owners)| owners.len() > 1);
    twice
        .map(|((event, ticket), owners)| {
            let list: Vec<String> = owners.iter().map(|(b, e)| format!("{b} (entry {e})")).collect();
            Violation::new(format!(
                "ticket {ticket} of event {event} was answered sold to {} bookings: {}",
                owners.len(),
                list.join(", ")
            ))
            .entries(owners.values().copied())
            .bookings(owners.keys().copied())
            .tickets(event, [ticket])
        })
        .collect()
}

fn sold_twice_in_final(event: &FinalEvent) -> Vec<Violation> {
    let mut owners: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for booking in event.bookings.iter().filter(|b| Stage::of(b) == Some(Stage::Confirmed)) {
        booking.tickets.iter().for_each(|&t| owners.entry(t).or_default().push(&booking.id));
    }
    owners
        .into_iter()
        .filter_map(|(ticket, mut owners)| {
            owners.sort_unstable();
            owners.dedup();
            (owners.len() > 1).then(|| {
                Violation::new(format!(
                    "ticket {ticket} of event {} is sold to {} confirmed bookings in the final state: {}",
                    event.event,
                    owners.len(),
                    owners.join(", ")
                ))
                .bookings(owners)
                .tickets(event.event, [ticket])
            })
        })
        .collect()
}

/// Rows and bookings change together in one apply, so they must agree.
fn rows_disagree_with_bookings(event: &FinalEvent) -> Vec<Violation> {
    let bookings: HashMap<&str, &Booking> = event.bookings.iter().map(|b| (b.id.as_str(), b)).collect();
    let rows: HashMap<u32, &FinalTicket> = event.tickets.iter().map(|r| (r.id, r)).collect();
    let mut violations: Vec<Violation> =
        event.tickets.iter().filter_map(|row| row_problem(event, row, &bookings)).collect();
    for booking in event.bookings.iter().filter(|b| Stage::of(b) == Some(Stage::Confirmed)) {
        for &ticket in &booking.tickets {
            let row = rows.get(&ticket);
            if row.is_some_and(|r| r.state == "sold" && r.booking == booking.id) {
                continue;
            }
            let row = match row {
                None => "free".to_string(),
                Some(r) if r.state == "sold" => format!("sold to booking {}", r.booking),
                Some(r) => format!("{} for booking {}", r.state, r.booking),
            };
            violations.push(
                Violation::new(format!(
                    "booking {} is confirmed but its ticket {ticket} of event {} is {row} in the final state",
                    booking.id, event.event
                ))
                .bookings([booking.id.as_str()])
                .tickets(event.event, [ticket]),
            );
        }
    }
    violations
}

fn row_problem(event: &FinalEvent, row: &FinalTicket, bookings: &HashMap<&str, &Booking>) -> Option<Violation> {
    let blame = |problem: String| {
        let message = format!("ticket {} of event {} {problem} in the final state", row.id, event.event);
        Some(Violation::new(message).bookings([row.booking.as_str()]).tickets(event.event, [row.id]))
    };
    let (want, verb) = match row.state.as_str() {
        "sold" => (Stage::Confirmed, "sold to"),
        "held" => (Stage::Held, "held for"),
        other => return blame(format!("is in state {other:?}, neither held nor sold,")),
    };
    let booking = &row.booking;
    match bookings.get(booking.as_str()) {
        None => blame(format!("is {verb} booking {booking}, which is not")),
        Some(b) if !b.tickets.contains(&row.id) => {
            blame(format!("is {verb} booking {booking}, which does not list it"))
        }
        Some(b) if Stage::of(b) != Some(want) => blame(format!("is {verb} booking {booking}, which is {}", b.status)),
        Some(_) => None,
    }
}

// 2. no_lost_writes

fn no_lost_writes(f: &Facts) -> Check {
    let mut reported = HashSet::new();
    let violations = f
        .seen
        .iter()
        .filter_map(|s| lost(f, s))
        // One violation per booking: its other answers would only repeat it.
        .filter(|v| reported.insert(v.bookings.clone()))
        .collect();
    Check::new(
        NO_LOST_WRITES,
        "every booking a 2xx answer showed is in the final state with the fan, event and tickets it showed (for \
         a hold: those asked for) and the same creation time; one answered confirmed (released) is confirmed \
         (released) there at the same group time",
        violations,
    )
}

fn lost(f: &Facts, s: &Seen) -> Option<Violation> {
    let seen = s.booking;
    let blame = |message: String| Some(Violation::new(message).entries([s.entry.id]).bookings([seen.id.as_str()]));
    let Some(fin) = f.finals.get(seen.id.as_str()) else {
        return blame(format!(
            "booking {} answered {} by {} is missing from the final state",
            seen.id,
            seen.status,
            what(s.entry)
        ));
    };
    if let Some(diff) = identity_differs(s, fin) {
        return blame(format!(
            "booking {} is not in the final state as {} answered it: {diff}",
            seen.id,
            what(s.entry)
        ));
    }
    let (want, seen_at, final_at) = match Stage::of(seen)? {
        Stage::Held => return None,
        Stage::Confirmed => (Stage::Confirmed, seen.confirmed_at_ms, fin.confirmed_at_ms),
        Stage::Released => (Stage::Released, seen.released_at_ms, fin.released_at_ms),
    };
    let name = want.name();
    if Stage::of(fin) != Some(want) {
        return blame(format!(
            "booking {} answered {name} by {} is {} in the final state",
            seen.id,
            what(s.entry),
            fin.status
        ));
    }
    // An answer that does not show the stamp cannot disagree with it.
    (seen_at.is_some() && seen_at != final_at).then(|| {
        let message = format!(
            "booking {} answered {name} at {} by {} is {name} at {} in the final state",
            seen.id,
            stamp(seen_at),
            what(s.entry),
            stamp(final_at)
        );
        Violation::new(message).entries([s.entry.id]).bookings([seen.id.as_str()])
    })
}

/// What differs between the final booking and what a request asked for or was answered.
fn identity_differs(s: &Seen, fin: &Booking) -> Option<String> {
    let seen = s.booking;
    let (fan, event, tickets) = match &s.entry.op {
        Op::Hold { event, tickets } => (s.entry.fan, *event, tickets),
        _ => (seen.fan, seen.event, &seen.tickets),
    };
    let mut diffs = Vec::new();
    if fin.fan != fan {
        diffs.push(format!("fan {} instead of {fan}", fin.fan));
    }
    if fin.event != event {
        diffs.push(format!("event {} instead of {event}", fin.event));
    }
    if sorted(&fin.tickets) != sorted(tickets) {
        diffs.push(format!("tickets {:?} instead of {:?}", fin.tickets, tickets));
    }
    if fin.created_at_ms != seen.created_at_ms {
        diffs.push(format!("created at {} instead of {}", fin.created_at_ms, seen.created_at_ms));
    }
    (!diffs.is_empty()).then(|| diffs.join(", "))
}

fn stamp(at: Option<u64>) -> String {
    at.map_or("no time".into(), |at| at.to_string())
}

// 3. no_overlapping_holds

fn no_overlapping_holds(f: &Facts) -> Check {
    let occupants = occupants(f);
    let mut spans: BTreeMap<(u64, u32), Vec<Span>> = BTreeMap::new();
    for (who, o) in occupants.iter().enumerate() {
        for (start, end) in o.intervals() {
            o.tickets.iter().for_each(|&t| spans.entry((o.event, t)).or_default().push(Span { start, end, who }));
        }
    }
    let violations =
        spans.into_iter().flat_map(|((event, ticket), spans)| overlaps(&occupants, event, ticket, spans)).collect();
    Check::new(
        NO_OVERLAPPING_HOLDS,
        "per ticket, the group-time intervals during which bookings occupy it never overlap; a booking occupies \
         its tickets during [created, min(held until, released)) and, if confirmed, [confirmed, forever); \
         bookings of the final state and of every 2xx answer count",
        violations,
    )
}

/// A booking as known from the final state and every answer that showed it.
struct Occupant<'a> {
    id: &'a str,
    event: u64,
    tickets: &'a [u32],
    created: u64,
    held_until: u64,
    confirmed: Option<u64>,
    released: Option<u64>,
    entries: Vec<u64>,
}

#[derive(Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
    who: usize,
}

impl<'a> Occupant<'a> {
    fn new(b: &'a Booking) -> Self {
        Occupant {
            id: &b.id,
            event: b.event,
            tickets: &b.tickets,
            created: b.created_at_ms,
            held_until: b.held_until_ms,
            confirmed: b.confirmed_at_ms,
            released: b.released_at_ms,
            entries: Vec::new(),
        }
    }

    /// Takes in another version: a payment or release seen anywhere happened. Versions of a
    /// correct run agree on every time; where they do not (that is [`NO_LOST_WRITES`]'s to
    /// report), the narrowest occupation is taken, so that no overlap is made up.
    fn merge(&mut self, b: &Booking) {
        self.created = self.created.max(b.created_at_ms);
        self.held_until = self.held_until.min(b.held_until_ms);
        self.confirmed = either(self.confirmed, b.confirmed_at_ms, u64::max);
        self.released = either(self.released, b.released_at_ms, u64::min);
    }

    /// The half-open group-time intervals during which the booking occupies its tickets.
    fn intervals(&self) -> Vec<(u64, u64)> {
        let hold_end = self.held_until.min(self.released.unwrap_or(FOREVER));
        let mut spans = match self.confirmed {
            Some(at) if at <= hold_end => vec![(self.created, FOREVER)],
            Some(at) => vec![(self.created, hold_end), (at, FOREVER)],
            None => vec![(self.created, hold_end)],
        };
        spans.retain(|(start, end)| start < end);
        spans
    }
}

/// Both times combined by `pick`, or the one there is.
fn either(a: Option<u64>, b: Option<u64>, pick: fn(u64, u64) -> u64) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// Every booking of the final state and of the history, each once, in a stable order.
fn occupants<'a>(f: &Facts<'a>) -> Vec<Occupant<'a>> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_id: HashMap<&str, Occupant> = HashMap::new();
    let versions = f.final_state.events.iter().flat_map(|e| &e.bookings).map(|b| (b, None));
    for (b, entry) in versions.chain(f.seen.iter().map(|s| (s.booking, Some(s.entry.id)))) {
        let occupant = by_id.entry(&b.id).or_insert_with(|| {
            order.push(&b.id);
            Occupant::new(b)
        });
        occupant.merge(b);
        occupant.entries.extend(entry);
    }
    order.into_iter().filter_map(|id| by_id.remove(id)).collect()
}

/// Sweeps one ticket's intervals by start: an interval overlaps an earlier one exactly when it
/// starts before the furthest end so far.
fn overlaps(occupants: &[Occupant], event: u64, ticket: u32, mut spans: Vec<Span>) -> Vec<Violation> {
    spans.sort_by_key(|s| (s.start, s.end, s.who));
    let mut violations = Vec::new();
    let mut furthest: Option<Span> = None;
    for span in spans {
        if let Some(open) = furthest.filter(|o| span.start < o.end && span.who != o.who) {
            let (a, b) = (&occupants[open.who], &occupants[span.who]);
            let message = format!(
                "ticket {ticket} of event {event} was occupied by two bookings at once: {} during {} and {} during \
                 {} (group time)",
                a.id,
                interval(open),
                b.id,
                interval(span)
            );
            let entries = a.entries.iter().chain(&b.entries).copied();
            violations.push(Violation::new(message).entries(entries).bookings([a.id, b.id]).tickets(event, [ticket]));
        }
        if furthest.is_none_or(|o| span.end > o.end) {
            furthest = Some(span);
        }
    }
    violations
}

fn interval(span: Span) -> String {
    match span.end {
        FOREVER => format!("[{}, forever)", span.start),
        end => format!("[{}, {end})", span.start),
    }
}

// 4. real_time_order

fn real_time_order(f: &Facts) -> Check {
    let mut violations = stamps_out_of_real_time_order(f);
    violations.extend(bookings_stamped_backwards(f));
    Check::new(
        REAL_TIME_ORDER,
        "if request x was answered before request y was sent, both about one event, and y's answer shows the \
         stamp of y's own change (a hold's creation, a payment's confirmation, a release's release, when no \
         other request may have made that change), that stamp is not before the latest stamp x's answer showed; no \
         booking is confirmed or released before its creation",
        violations,
    )
}

/// A group time an answer showed, and the real time that bounds it.
#[derive(Clone, Copy)]
struct Stamped<'a> {
    real: u64,
    group: u64,
    entry: &'a Entry,
}

fn stamps_out_of_real_time_order(f: &Facts) -> Vec<Violation> {
    let rivals = Rivals::new(f);
    let parts: BTreeMap<u64, u32> = f.final_state.events.iter().map(|e| (e.event, e.parts)).collect();
    // Per group time, an event's or one of its parts': (answers by when they ended, own changes
    // by when they were sent). The groups of an event in parts each keep their own time.
    let mut events: BTreeMap<(u64, u32), (Vec<Stamped>, Vec<Stamped>)> = BTreeMap::new();
    for s in &f.seen {
        let event = s.booking.event;
        let part = match s.booking.id.parse::<model::BookingId>() {
            Ok(id) => model::part_of_booking(id, parts.get(&event).copied().unwrap_or(1)),
            Err(_) => 0,
        };
        let (before, after) = events.entry((event, part)).or_default();
        before.push(Stamped { real: s.entry.end_ms, group: latest_stamp(s.booking), entry: s.entry });
        if let Some(group) = own_stamp(s, &rivals) {
            after.push(Stamped { real: s.entry.start_ms, group, entry: s.entry });
        }
    }
    events.into_iter().flat_map(|((event, part), (before, after))| went_backwards(event, part, before, after)).collect()
}

fn went_backwards<'a>(
    event: u64,
    part: u32,
    mut before: Vec<Stamped<'a>>,
    mut after: Vec<Stamped<'a>>,
) -> Vec<Violation> {
    before.sort_by_key(|s| (s.real, s.entry.id));
    after.sort_by_key(|s| (s.real, s.entry.id));
    let mut latest: Option<Stamped> = None;
    let mut next = before.iter().peekable();
    let mut violations = Vec::new();
    for y in after {
        while let Some(x) = next.next_if(|x| x.real < y.real) {
            if latest.is_none_or(|l| x.group > l.group) {
                latest = Some(*x);
            }
        }
        let Some(x) = latest.filter(|x| x.group > y.group) else { continue };
        let message = format!(
            "{} was sent at {} ms, after {} was answered at {} ms, yet its group time {} is before {} in event \
             {event}'s group (its part {part}): time went backwards or an acknowledged write was ordered after a \
             later one",
            what(y.entry),
            y.real,
            what(x.entry),
            x.real,
            y.group,
            x.group
        );
        let bookings = [target(x.entry), target(y.entry)].into_iter().flatten();
        violations.push(Violation::new(message).entries([x.entry.id, y.entry.id]).bookings(bookings));
    }
    violations
}

/// The latest group time an answer shows: the state it read was at least that late.
fn latest_stamp(b: &Booking) -> u64 {
    [b.confirmed_at_ms, b.released_at_ms].into_iter().flatten().fold(b.created_at_ms, u64::max)
}

/// The stamp of the change a write made itself, when the answer is sure to show it.
fn own_stamp(s: &Seen, rivals: &Rivals) -> Option<u64> {
    let b = s.booking;
    match &s.entry.op {
        Op::Hold { .. } => rivals.hold_alone(s).then_some(b.created_at_ms),
        Op::Pay { booking, .. } if rivals.alone(&rivals.pays, booking, s.entry) => b.confirmed_at_ms,
        Op::Release { booking } if rivals.alone(&rivals.releases, booking, s.entry) => b.released_at_ms,
        _ => None,
    }
}

/// Who else may have made a booking's change.
struct Rivals<'a> {
    /// How many holds were answered each booking (more than one only if ids were reused).
    holds: HashMap<&'a str, usize>,
    /// When unknown holds were sent, by fan, event and tickets: if holds were ever retried
    /// idempotently, a retry would be answered the booking its unknown first try made.
    unknown_holds: HashMap<(u64, u64, Vec<u32>), Vec<u64>>,
    /// Payments and releases that may have applied (answered 2xx or unknown), by booking.
    pays: HashMap<&'a str, Vec<&'a Entry>>,
    releases: HashMap<&'a str, Vec<&'a Entry>>,
}

impl<'a> Rivals<'a> {
    fn new(f: &Facts<'a>) -> Self {
        let mut rivals = Rivals {
            holds: HashMap::new(),
            unknown_holds: HashMap::new(),
            pays: HashMap::new(),
            releases: HashMap::new(),
        };
        for entry in f.history.iter().filter(|e| !matches!(e.result, Answer::Fail { .. })) {
            match (&entry.op, &entry.result) {
                (Op::Hold { .. }, Answer::Ok { booking }) => *rivals.holds.entry(&booking.id).or_default() += 1,
                (Op::Hold { event, tickets }, _) => {
                    rivals.unknown_holds.entry((entry.fan, *event, sorted(tickets))).or_default().push(entry.start_ms)
                }
                (Op::Pay { booking, .. }, _) => rivals.pays.entry(booking).or_default().push(entry),
                (Op::Release { booking }, _) => rivals.releases.entry(booking).or_default().push(entry),
                _ => {}
            }
        }
        rivals
    }

    /// Whether an answered hold's booking can only have been made by it.
    fn hold_alone(&self, s: &Seen) -> bool {
        let Op::Hold { event, tickets } = &s.entry.op else { return false };
        let key = (s.entry.fan, *event, sorted(tickets));
        let unknown_before =
            self.unknown_holds.get(&key).is_some_and(|starts| starts.iter().any(|&t| t <= s.entry.end_ms));
        self.holds.get(s.booking.id.as_str()) == Some(&1) && !unknown_before
    }

    /// Whether no other such request of the booking was sent before `entry` was answered.
    fn alone(&self, of: &HashMap<&str, Vec<&Entry>>, booking: &str, entry: &Entry) -> bool {
        of.get(booking).is_none_or(|others| others.iter().all(|o| o.id == entry.id || o.start_ms > entry.end_ms))
    }
}

/// A payment or release is applied after its booking's hold in the log, so never before it.
fn bookings_stamped_backwards(f: &Facts) -> Vec<Violation> {
    let finals = f.final_state.events.iter().flat_map(|e| &e.bookings).map(|b| (b, None));
    let versions = finals.chain(f.seen.iter().map(|s| (s.booking, Some(s.entry.id))));
    let mut reported = HashSet::new();
    let mut violations = Vec::new();
    for (b, entry) in versions {
        let changes = [("confirmed", b.confirmed_at_ms), ("released", b.released_at_ms)];
        let Some((change, at)) =
            changes.into_iter().find_map(|(c, at)| at.filter(|&at| at < b.created_at_ms).map(|at| (c, at)))
        else {
            continue;
        };
        if reported.insert(b.id.as_str()) {
            let source = entry.map_or("in the final state".to_string(), |e| format!("as entry {e} answered it"));
            let message = format!(
                "booking {} is {change} at {at}, before it was created at {} ({source})",
                b.id, b.created_at_ms
            );
            violations.push(Violation::new(message).entries(entry).bookings([b.id.as_str()]));
        }
    }
    violations
}

// 5. no_stale_reads

fn no_stale_reads(f: &Facts) -> Check {
    let mut looks: BTreeMap<&str, Vec<Look>> = BTreeMap::new();
    for entry in f.history {
        let shown = match &entry.result {
            Answer::Ok { booking } => Shown::Found(Stage::of(booking)),
            Answer::Fail { status: 404, .. } if !matches!(entry.op, Op::Hold { .. }) => Shown::NotFound,
            _ => continue,
        };
        if let Some(id) = target(entry) {
            looks.entry(id).or_default().push(Look { entry, shown });
        }
    }
    let violations = looks.into_iter().flat_map(|(id, looks)| stale_looks(id, &looks)).collect();
    Check::new(
        NO_STALE_READS,
        "a booking's stored state only moves held -> confirmed or held -> released: once an answer showed it \
         confirmed (released), every request about it sent after that answer shows it confirmed (released), \
         and once an answer showed it, none sent after answers 404",
        violations,
    )
}

/// What an answer about a booking showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// A 2xx with the booking, in this stage (`None` if its status is not one we know).
    Found(Option<Stage>),
    /// A 404: there is no such booking.
    NotFound,
}

impl Shown {
    fn name(self) -> &'static str {
        match self {
            Shown::Found(Some(stage)) => stage.name(),
            Shown::Found(None) => "with an unknown status",
            Shown::NotFound => "as not found (404)",
        }
    }
}

struct Look<'a> {
    entry: &'a Entry,
    shown: Shown,
}

/// Sweeps one booking's answers by when they ended against its requests by when they started.
fn stale_looks(id: &str, looks: &[Look]) -> Vec<Violation> {
    let mut ended: Vec<&Look> = looks.iter().filter(|l| l.shown != Shown::NotFound).collect();
    ended.sort_by_key(|l| (l.entry.end_ms, l.entry.id));
    let mut started: Vec<&Look> = looks.iter().collect();
    started.sort_by_key(|l| (l.entry.start_ms, l.entry.id));
    let mut next = ended.into_iter().peekable();
    // The first answers, by when they ended, that showed the booking at all, confirmed, released.
    let (mut found, mut confirmed, mut released) = (None, None, None);
    let mut violations = Vec::new();
    for later in started {
        while let Some(earlier) = next.next_if(|e| e.entry.end_ms < later.entry.start_ms) {
            found = found.or(Some(earlier));
            match earlier.shown {
                Shown::Found(Some(Stage::Confirmed)) => confirmed = confirmed.or(Some(earlier)),
                Shown::Found(Some(Stage::Released)) => released = released.or(Some(earlier)),
                _ => {}
            }
        }
        let stale = match later.shown {
            Shown::Found(None) => None,
            Shown::Found(stage) => [confirmed, released].into_iter().flatten().find(|e| e.shown != Shown::Found(stage)),
            Shown::NotFound => found,
        };
        if let Some(earlier) = stale {
            violations.push(went_back(id, earlier, later));
        }
    }
    violations
}

fn went_back(id: &str, earlier: &Look, later: &Look) -> Violation {
    let message = format!(
        "{} was sent at {} ms, after {} was answered at {} ms showing booking {id} {}, yet it shows it {}: a read \
         went back in time",
        what(later.entry),
        later.entry.start_ms,
        what(earlier.entry),
        earlier.entry.end_ms,
        earlier.shown.name(),
        later.shown.name()
    );
    Violation::new(message).entries([earlier.entry.id, later.entry.id]).bookings([id])
}

// 6. replicas_agree

fn replicas_agree(replicas: &[ReplicaDigest]) -> Check {
    let mut groups: BTreeMap<u32, Vec<&ReplicaDigest>> = BTreeMap::new();
    replicas.iter().for_each(|r| groups.entry(r.group).or_default().push(r));
    let mut violations = Vec::new();
    for (group, replicas) in groups {
        violations.extend(lagging(group, &replicas));
        violations.extend(diverged(group, &replicas));
    }
    Check::new(
        REPLICAS_AGREE,
        "in each group every replica is at the same applied index (the runner reads after catch-up), and \
         replicas at the same applied index have the same digest",
        violations,
    )
}

fn lagging(group: u32, replicas: &[&ReplicaDigest]) -> Option<Violation> {
    let mut at: Vec<(u64, u64)> = replicas.iter().map(|r| (r.applied_index, r.node)).collect();
    at.sort_unstable();
    if at.first().map(|a| a.0) == at.last().map(|a| a.0) {
        return None;
    }
    let list: Vec<String> = at.iter().map(|(index, node)| format!("node {node} at {index}")).collect();
    Some(Violation::new(format!(
        "group {group}'s replicas are at different applied indexes ({}): one did not catch up before the final \
         state was read",
        list.join(", ")
    )))
}

fn diverged(group: u32, replicas: &[&ReplicaDigest]) -> Vec<Violation> {
    let mut digests: BTreeMap<u64, BTreeMap<&str, Vec<u64>>> = BTreeMap::new();
    for r in replicas {
        digests.entry(r.applied_index).or_default().entry(&r.digest).or_default().push(r.node);
    }
    let split = digests.into_iter().filter(|(_, by_digest)| by_digest.len() > 1);
    split
        .map(|(index, by_digest)| {
            let list: Vec<String> =
                by_digest.iter().map(|(digest, nodes)| format!("nodes {nodes:?} have {digest}")).collect();
            Violation::new(format!("group {group}'s replicas disagree at applied index {index}: {}", list.join(", ")))
        })
        .collect()
}

// 7. unknown_resolved

fn unknown_resolved() -> Check {
    Check::new(
        UNKNOWN_RESOLVED,
        "counts only: an unknown hold applied if the final state has an otherwise unexplained booking of its \
         fan, event and tickets (one per booking); an unknown payment (release) applied if its booking is \
         confirmed (released) and no other payment (release) of it may have done it, did not if it is not or \
         another was answered before it was sent; otherwise unresolvable",
        Vec::new(),
    )
}

fn counts(f: &Facts) -> Counts {
    let mut requests: BTreeMap<String, Answers> = BTreeMap::new();
    for entry in f.history {
        let answers = requests.entry(op_name(&entry.op).into()).or_default();
        match entry.result {
            Answer::Ok { .. } => answers.ok += 1,
            Answer::Fail { .. } => answers.fail += 1,
            Answer::Unknown { .. } => answers.unknown += 1,
        }
    }
    let rivals = Rivals::new(f);
    let unknown = [
        ("hold", unknown_holds(f)),
        ("pay", unknown_changes(f, &rivals.pays, Stage::Confirmed)),
        ("release", unknown_changes(f, &rivals.releases, Stage::Released)),
    ];
    Counts { requests, unknown: unknown.into_iter().map(|(op, r)| (op.into(), r)).collect(), room: BTreeMap::new() }
}

/// Matches unknown holds with final bookings of the same fan, event and tickets that no
/// answered hold explains (several holds of one stamp share `created_at`, so ids, not times,
/// tell the bookings apart).
fn unknown_holds(f: &Facts) -> Resolution {
    let answered: HashSet<&str> =
        f.seen.iter().filter(|s| matches!(s.entry.op, Op::Hold { .. })).map(|s| s.booking.id.as_str()).collect();
    let mut unexplained: HashMap<(u64, u64, Vec<u32>), u64> = HashMap::new();
    for b in f.final_state.events.iter().flat_map(|e| &e.bookings).filter(|b| !answered.contains(b.id.as_str())) {
        *unexplained.entry((b.event, b.fan, sorted(&b.tickets))).or_default() += 1;
    }
    let mut resolution = Resolution::default();
    for entry in f.history.iter().filter(|e| matches!(e.result, Answer::Unknown { .. })) {
        let Op::Hold { event, tickets } = &entry.op else { continue };
        match unexplained.get_mut(&(*event, entry.fan, sorted(tickets))) {
            Some(left) if *left > 0 => {
                *left -= 1;
                resolution.applied += 1;
            }
            _ => resolution.not_applied += 1,
        }
    }
    resolution
}

/// Resolves unknown payments (`change` confirmed) or releases (released).
fn unknown_changes(f: &Facts, requests: &HashMap<&str, Vec<&Entry>>, change: Stage) -> Resolution {
    let mut resolution = Resolution::default();
    for (booking, entries) in requests {
        for &entry in entries.iter().filter(|e| matches!(e.result, Answer::Unknown { .. })) {
            let Some(fin) = f.finals.get(booking) else {
                resolution.unresolvable += 1;
                continue;
            };
            let others: Vec<&&Entry> = entries.iter().filter(|o| o.id != entry.id).collect();
            let done_before = others.iter().any(|o| matches!(o.result, Answer::Ok { .. }) && o.end_ms < entry.start_ms);
            if Stage::of(fin) != Some(change) || done_before {
                resolution.not_applied += 1;
            } else if !others.is_empty() {
                // An unknown request may apply long after it was given up on, so any other
                // request that may have applied may have made the change instead.
                resolution.unresolvable += 1;
            } else {
                resolution.applied += 1;
            }
        }
    }
    resolution
}

// 8-12. the waiting room

/// A place as messages name it.
fn place_text(place: &Place) -> String {
    format!("(class {}, {}, node {}, seq {})", place.class, place.primary, place.node, place.seq)
}

fn watermark_text(watermark: &Option<Place>) -> String {
    watermark.as_ref().map_or_else(|| "none".to_string(), place_text)
}

/// Per node, the watermark samples in the order they were read never decrease (no watermark
/// after one is a decrease too).
pub fn room_watermark_monotonic(room: &[RoomRecord]) -> Check {
    let mut by_node: BTreeMap<u64, Vec<(u64, Option<Place>)>> = BTreeMap::new();
    for record in room {
        if let RoomRecord::Sample { node, at_ms, watermark, .. } = record {
            by_node.entry(*node).or_default().push((*at_ms, *watermark));
        }
    }
    let mut violations = Vec::new();
    for (node, mut samples) in by_node {
        samples.sort_by_key(|(at, _)| *at);
        let mut highest: Option<(u64, Option<Place>)> = None;
        for (at, watermark) in samples {
            match highest {
                Some((high_at, high)) if watermark < high => violations.push(Violation::new(format!(
                    "node {node} showed the watermark {} at {at} ms, below {} it showed at {high_at} ms: the \
                     watermark moved back",
                    watermark_text(&watermark),
                    watermark_text(&high)
                ))),
                Some((_, high)) if watermark == high => {}
                _ => highest = Some((at, watermark)),
            }
        }
    }
    Check::new(
        ROOM_WATERMARK_MONOTONIC,
        "the room's watermark, as the admin view showed it through one node, sample after sample, never \
         decreases (places compare by class, primary, node, seq)",
        violations,
    )
}

/// Per place, one admission token, and at most one booking answered made under it.
pub fn room_no_double_admission(room: &[RoomRecord]) -> Check {
    let mut tokens: BTreeMap<Place, BTreeMap<&str, (u64, u64, u64)>> = BTreeMap::new();
    let mut bookings: BTreeMap<Place, BTreeMap<&str, u64>> = BTreeMap::new();
    for record in room {
        match record {
            RoomRecord::Admission { fan, place, token, node, at_ms, .. } => {
                tokens.entry(*place).or_default().entry(token).or_insert((*fan, *node, *at_ms));
            }
            RoomRecord::Hold { entry, place: Some(place), answer: HoldAnswer::Ok { booking }, .. } => {
                bookings.entry(*place).or_default().entry(booking).or_insert(*entry);
            }
            _ => {}
        }
    }
    let mut violations: Vec<Violation> = tokens
        .into_iter()
        .filter(|(_, tokens)| tokens.len() > 1)
        .map(|(place, tokens)| {
            let list: Vec<String> =
                tokens.values().map(|(fan, node, at)| format!("fan {fan} at node {node} at {at} ms")).collect();
            Violation::new(format!(
                "place {} was admitted with {} different tokens: {}",
                place_text(&place),
                tokens.len(),
                list.join(", ")
            ))
        })
        .collect();
    violations.extend(bookings.into_iter().filter(|(_, made)| made.len() > 1).map(|(place, made)| {
        let list: Vec<String> = made.iter().map(|(b, e)| format!("{b} (entry {e})")).collect();
        Violation::new(format!(
            "place {} made {} bookings under its admission: {}",
            place_text(&place),
            made.len(),
            list.join(", ")
        ))
        .entries(made.values().copied())
        .bookings(made.keys().copied())
    }));
    Check::new(
        ROOM_NO_DOUBLE_ADMISSION,
        "every admission of one place carries the same token, and at most one booking is answered made under \
         one place",
        violations,
    )
}

/// No admin view showed more fans shopping than the room's limit.
pub fn room_shopping_max(room: &[RoomRecord]) -> Check {
    let violations = room
        .iter()
        .filter_map(|record| match record {
            RoomRecord::Sample { node, at_ms, shopping, shopping_max, .. } if shopping > shopping_max => {
                Some(Violation::new(format!(
                    "node {node} showed {shopping} fans shopping at {at_ms} ms, over the room's limit of \
                     {shopping_max}"
                )))
            }
            _ => None,
        })
        .collect();
    Check::new(ROOM_SHOPPING_MAX, "every admin view of the room shows at most shoppingMax fans shopping", violations)
}

/// A steady admission: one whose fan waited on one stream from its ticket on.
#[derive(Debug, Clone, Copy)]
struct Steady {
    fan: u64,
    place: Place,
    node: u64,
    since_ms: u64,
    at_ms: u64,
}

/// A fault's nodes and the span it (and the lag it leaves) may delay them.
struct Disturbance<'a> {
    nodes: &'a [u64],
    from_ms: u64,
    until_ms: u64,
}

fn disturbances(room: &[RoomRecord]) -> Vec<Disturbance<'_>> {
    room.iter()
        .filter_map(|record| match record {
            RoomRecord::Fault { nodes, start_ms, end_ms, .. } => {
                Some(Disturbance { nodes, from_ms: *start_ms, until_ms: end_ms + ROOM_FAULT_GRACE_MS })
            }
            _ => None,
        })
        .collect()
}

/// Steady admissions (the first of each place), and of them those no fault touched.
fn steady_admissions(room: &[RoomRecord]) -> (Vec<Steady>, Vec<Steady>) {
    let mut first: BTreeMap<Place, Steady> = BTreeMap::new();
    for record in room {
        if let RoomRecord::Admission { fan, place, node, at_ms, steady: true, since_ms, .. } = record {
            let steady = Steady { fan: *fan, place: *place, node: *node, since_ms: *since_ms, at_ms: *at_ms };
            first
                .entry(*place)
                .and_modify(|s| {
                    if steady.at_ms < s.at_ms {
                        *s = steady
                    }
                })
                .or_insert(steady);
        }
    }
    let all: Vec<Steady> = first.into_values().collect();
    let faults = disturbances(room);
    let untouched = all
        .iter()
        .copied()
        .filter(|a| {
            !faults.iter().any(|f| f.nodes.contains(&a.node) && f.from_ms <= a.at_ms && f.until_ms >= a.since_ms)
        })
        .collect();
    (all, untouched)
}

/// Among steady fans: none with a smaller place, in line when one with a larger place was
/// admitted, is admitted more than [`ROOM_ORDER_SLACK_MS`] after it, unless a fault touched its
/// node meanwhile.
pub fn room_order(room: &[RoomRecord]) -> Check {
    let (mut all, mut checked) = steady_admissions(room);
    // Larger places first: each fan is compared with the admissions of every larger place.
    all.sort_by_key(|a| std::cmp::Reverse(a.place));
    checked.sort_by_key(|a| std::cmp::Reverse(a.place));
    let mut larger: BTreeMap<(u64, usize), Steady> = BTreeMap::new();
    let mut next = all.iter().enumerate().peekable();
    let mut violations = Vec::new();
    for a in &checked {
        while let Some((i, b)) = next.next_if(|(_, b)| b.place > a.place) {
            larger.insert((b.at_ms, i), *b);
        }
        let Some(latest_ok) = a.at_ms.checked_sub(ROOM_ORDER_SLACK_MS + 1) else { continue };
        if a.since_ms >= latest_ok {
            continue;
        }
        let Some((_, b)) = larger.range((a.since_ms + 1, 0)..=(latest_ok, usize::MAX)).next() else { continue };
        violations.push(Violation::new(format!(
            "fan {} at place {} (node {}, in line since {} ms) was admitted at {} ms, {} ms after fan {} at the \
             larger place {} was admitted at {} ms: the room admitted out of order",
            a.fan,
            place_text(&a.place),
            a.node,
            a.since_ms,
            a.at_ms,
            a.at_ms - b.at_ms,
            b.fan,
            place_text(&b.place),
            b.at_ms
        )));
    }
    Check::new(
        ROOM_ORDER,
        "of fans who each waited on one stream from join to admission, one with a smaller place, in line when one \
         with a larger place was admitted, is admitted at most 2 s after it (ticks are once a second), unless a \
         fault touched its node while it waited or up to 5 s before",
        violations,
    )
}

/// No hold on the room's event succeeded without a token an admission gave its fan.
pub fn room_holds_need_admission(history: &[Entry], room: &[RoomRecord]) -> Check {
    let given: HashSet<(u64, &str)> = room
        .iter()
        .filter_map(|record| match record {
            RoomRecord::Admission { fan, token, .. } => Some((*fan, token.as_str())),
            _ => None,
        })
        .collect();
    let mut recorded = HashSet::new();
    let mut violations = Vec::new();
    for record in room {
        let RoomRecord::Hold { entry, fan, event, token, answer, .. } = record else { continue };
        recorded.insert(*entry);
        let HoldAnswer::Ok { booking } = answer else { continue };
        let problem = match token {
            None => "without an admission token",
            Some(token) if !given.contains(&(*fan, token.as_str())) => "under a token no admission gave its fan",
            Some(_) => continue,
        };
        let message = format!("hold entry {entry} by fan {fan} on event {event} made booking {booking} {problem}");
        violations.push(Violation::new(message).entries([*entry]).bookings([booking.as_str()]));
    }
    let event = room.iter().find_map(|record| match record {
        RoomRecord::Room { event, .. } => Some(*event),
        _ => None,
    });
    for entry in history.iter().filter(|e| !recorded.contains(&e.id)) {
        let (Op::Hold { event: held, .. }, Answer::Ok { booking }) = (&entry.op, &entry.result) else { continue };
        if Some(*held) == event {
            let message = format!(
                "{} made booking {} on the room's event, and the room's history has no admission for it",
                what(entry),
                booking.id
            );
            violations.push(Violation::new(message).entries([entry.id]).bookings([booking.id.as_str()]));
        }
    }
    Check::new(
        ROOM_HOLDS_NEED_ADMISSION,
        "no hold on the room's event succeeded without an admission token that an admission gave its fan",
        violations,
    )
}

/// What the room's history holds, for the report.
fn room_counts(room: &[RoomRecord]) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for record in room {
        let kind = match record {
            RoomRecord::Room { .. } => continue,
            RoomRecord::Ticket { .. } => "tickets",
            RoomRecord::Resume { .. } => "resumes",
            RoomRecord::Admission { .. } => "admissions",
            RoomRecord::Hold { answer: HoldAnswer::Ok { .. }, .. } => "holds ok",
            RoomRecord::Hold { .. } => "holds refused or unknown",
            RoomRecord::Sample { .. } => "samples",
            RoomRecord::Fault { .. } => continue,
        };
        *counts.entry(kind.into()).or_default() += 1;
    }
    if !counts.is_empty() {
        let (all, checked) = steady_admissions(room);
        counts.insert("steady admissions".into(), all.len() as u64);
        counts.insert("order checked".into(), checked.len() as u64);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Verdict;

    const EVENT: u64 = 7;

    fn place(primary: u64, seq: u64) -> Place {
        Place { class: 1, primary, node: 1, seq }
    }

    fn sample(node: u64, at_ms: u64, watermark: Option<Place>, shopping: u64) -> RoomRecord {
        RoomRecord::Sample { node, at_ms, watermark, shopping, shopping_max: 40 }
    }

    fn admission(fan: u64, place: Place, token: &str, node: u64, since_ms: u64, at_ms: u64) -> RoomRecord {
        RoomRecord::Admission { fan, place, token: token.into(), node, at_ms, steady: true, since_ms }
    }

    fn hold(entry: u64, fan: u64, token: Option<&str>, place: Option<Place>, booking: &str) -> RoomRecord {
        RoomRecord::Hold {
            entry,
            fan,
            event: EVENT,
            token: token.map(String::from),
            place,
            start_ms: 0,
            end_ms: 1,
            answer: HoldAnswer::Ok { booking: booking.into() },
        }
    }

    fn fault(nodes: Vec<u64>, start_ms: u64, end_ms: u64) -> RoomRecord {
        RoomRecord::Fault { kind: "pause".into(), nodes, start_ms, end_ms }
    }

    /// Two fans admitted in place order a tick apart, each holding once under its own token,
    /// with watermarks that only rise and shopping under the limit.
    fn clean_room() -> Vec<RoomRecord> {
        vec![
            RoomRecord::Room {
                event: EVENT,
                rate_per_min: 1_200,
                shopping_max: 40,
                admission_ms: 15_000,
                abandon_ms: 5_000,
                on_sale_ms: 1_000,
            },
            RoomRecord::Ticket { fan: 1, place: place(100, 1), node: 1, at_ms: 500, presale: false },
            RoomRecord::Ticket { fan: 2, place: place(200, 1), node: 2, at_ms: 600, presale: false },
            sample(1, 900, None, 0),
            sample(2, 950, None, 0),
            admission(1, place(100, 1), "a1.one", 1, 500, 2_000),
            sample(1, 2_100, Some(place(100, 1)), 1),
            admission(2, place(200, 1), "a1.two", 2, 600, 3_000),
            sample(2, 3_100, Some(place(200, 1)), 2),
            sample(1, 3_200, Some(place(200, 1)), 2),
            hold(10, 1, Some("a1.one"), Some(place(100, 1)), "7-01"),
            hold(11, 2, Some("a1.two"), Some(place(200, 1)), "7-02"),
        ]
    }

    fn verdict(check: &Check) -> Verdict {
        check.verdict
    }

    fn booking_entry(id: u64, fan: u64, event: u64, booking: &str) -> Entry {
        let booking = Booking {
            id: booking.into(),
            event,
            fan,
            tickets: vec![1],
            status: "held".into(),
            created_at_ms: 10,
            held_until_ms: 3_010,
            confirmed_at_ms: None,
            released_at_ms: None,
        };
        Entry {
            id,
            fan,
            op: Op::Hold { event, tickets: vec![1] },
            start_ms: 0,
            end_ms: 1,
            result: Answer::Ok { booking },
        }
    }

    #[test]
    fn a_clean_room_history_passes_every_room_check() {
        let history = vec![booking_entry(10, 1, EVENT, "7-01"), booking_entry(11, 2, EVENT, "7-02")];
        let checks = room_checks(&history, &clean_room());
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                ROOM_WATERMARK_MONOTONIC,
                ROOM_NO_DOUBLE_ADMISSION,
                ROOM_SHOPPING_MAX,
                ROOM_ORDER,
                ROOM_HOLDS_NEED_ADMISSION
            ]
        );
        for check in &checks {
            assert_eq!(verdict(check), Verdict::Pass, "{check}");
        }
        let counts = room_counts(&clean_room());
        assert_eq!(counts["admissions"], 2);
        assert_eq!(counts["order checked"], 2);
        assert_eq!(counts["holds ok"], 2);
    }

    /// A hold of ticket `ticket` of event 9 answered with booking `booking` made at group time
    /// `created_at_ms`, sent at `start_ms` and answered 1 ms later.
    fn hold_of_event_nine(id: u64, booking: &str, ticket: u32, created_at_ms: u64, start_ms: u64) -> Entry {
        let mut entry = booking_entry(id, id, 9, booking);
        entry.op = Op::Hold { event: 9, tickets: vec![ticket] };
        entry.start_ms = start_ms;
        entry.end_ms = start_ms + 1;
        if let Answer::Ok { booking } = &mut entry.result {
            booking.tickets = vec![ticket];
            booking.created_at_ms = created_at_ms;
            booking.held_until_ms = created_at_ms + 3_000;
        }
        entry
    }

    #[test]
    fn the_parts_of_an_event_keep_their_own_group_times() {
        // Part 1's group runs 40 s ahead of part 0's: a hold there, then one in part 0.
        let history = vec![
            hold_of_event_nine(1, "9-1000000000000001", 30, 50_000, 0),
            hold_of_event_nine(2, "9-0000000000000002", 3, 10_000, 10),
        ];
        let final_event = |parts| FinalEvent { event: 9, parts, tickets: vec![], bookings: vec![] };
        let one_clock = FinalState { events: vec![final_event(1)], replicas: vec![], payments: vec![] };
        let check = real_time_order(&Facts::new(&history, &one_clock));
        assert_eq!(check.violations.len(), 1, "one group time for the event: it went back. {check}");
        let two_clocks = FinalState { events: vec![final_event(2)], replicas: vec![], payments: vec![] };
        let check = real_time_order(&Facts::new(&history, &two_clocks));
        assert_eq!(check.verdict, Verdict::Pass, "each part's group keeps its own time. {check}");
    }

    #[test]
    fn a_run_reports_the_room_checks_after_the_others() {
        let final_state = FinalState { events: vec![], replicas: vec![], payments: vec![] };
        let report = check_run(&[], &clean_room(), &final_state);
        assert_eq!(report.checks.len(), 13);
        assert!(report.ok(), "{report}");
        assert_eq!(report.checks[8].name, ROOM_WATERMARK_MONOTONIC);
        assert_eq!(report.counts.room["samples"], 5);
        assert!(check(&[], &final_state).counts.room.is_empty(), "no room, no room counts");
    }

    #[test]
    fn a_watermark_going_back_on_one_node_is_caught() {
        let mut room = clean_room();
        room.push(sample(1, 4_000, Some(place(150, 1)), 2));
        let check = room_watermark_monotonic(&room);
        assert_eq!(check.violations.len(), 1, "{check}");
        assert!(check.violations[0].message.contains("node 1 showed the watermark (class 1, 150"), "{check}");
        // Another node showing an older watermark is no decrease: it is read through another node.
        let mut room = clean_room();
        room.push(sample(3, 4_000, Some(place(150, 1)), 2));
        assert_eq!(room_watermark_monotonic(&room).verdict, Verdict::Pass);
        // No watermark after one is a decrease.
        let mut room = clean_room();
        room.push(sample(2, 5_000, None, 0));
        assert_eq!(room_watermark_monotonic(&room).verdict, Verdict::Fail);
    }

    #[test]
    fn a_place_admitted_with_two_tokens_is_caught() {
        let mut room = clean_room();
        // The same token again (another node, a resume) is one admission.
        room.push(admission(1, place(100, 1), "a1.one", 3, 2_500, 2_600));
        assert_eq!(room_no_double_admission(&room).verdict, Verdict::Pass);
        room.push(admission(1, place(100, 1), "a1.other", 2, 2_500, 2_700));
        let check = room_no_double_admission(&room);
        assert_eq!(check.violations.len(), 1, "{check}");
        assert!(check.violations[0].message.contains("admitted with 2 different tokens"), "{check}");
    }

    #[test]
    fn two_bookings_under_one_place_are_caught() {
        let mut room = clean_room();
        room.push(hold(12, 1, Some("a1.one"), Some(place(100, 1)), "7-03"));
        let check = room_no_double_admission(&room);
        assert_eq!(check.violations.len(), 1, "{check}");
        assert_eq!(check.violations[0].bookings, ["7-01", "7-03"]);
        assert_eq!(check.violations[0].entries, [10, 12]);
    }

    #[test]
    fn shopping_over_the_max_is_caught() {
        let mut room = clean_room();
        room.push(sample(2, 4_000, Some(place(200, 1)), 40));
        assert_eq!(room_shopping_max(&room).verdict, Verdict::Pass, "at the limit is within it");
        room.push(sample(3, 4_100, Some(place(200, 1)), 41));
        let check = room_shopping_max(&room);
        assert_eq!(check.violations.len(), 1, "{check}");
        assert!(check.violations[0].message.contains("41 fans shopping"), "{check}");
    }

    #[test]
    fn an_order_inversion_is_caught_unless_a_fault_touched_the_fans_node() {
        // Fan 3 waits from 700 ms at a place before fan 2's, and is admitted 2.5 s after fan 2.
        let mut room = clean_room();
        room.push(admission(3, place(150, 1), "a1.three", 1, 700, 5_500));
        let check = room_order(&room);
        assert_eq!(check.violations.len(), 1, "{check}");
        assert!(check.violations[0].message.contains("fan 3 at place (class 1, 150"), "{check}");
        assert!(check.violations[0].message.contains("fan 2 at the larger place"), "{check}");
        // Within the slack it is in order.
        let mut room = clean_room();
        room.push(admission(3, place(150, 1), "a1.three", 1, 700, 5_000));
        assert_eq!(room_order(&room).verdict, Verdict::Pass);
        // A fan who joined after the larger place was admitted was not passed over.
        let mut room = clean_room();
        room.push(admission(3, place(150, 1), "a1.three", 1, 3_000, 9_000));
        assert_eq!(room_order(&room).verdict, Verdict::Pass);
        // A fan who dropped and resumed is not steady.
        let mut room = clean_room();
        room.push(RoomRecord::Admission {
            fan: 3,
            place: place(150, 1),
            token: "a1.three".into(),
            node: 1,
            at_ms: 9_000,
            steady: false,
            since_ms: 700,
        });
        assert_eq!(room_order(&room).verdict, Verdict::Pass);
        // A fault on the fan's node while it waited, or shortly before, excuses it; one elsewhere does not.
        for (nodes, excused) in [(vec![1], true), (vec![1, 2, 3], true), (vec![2, 3], false)] {
            let mut room = clean_room();
            room.push(admission(3, place(150, 1), "a1.three", 1, 700, 5_500));
            room.push(fault(nodes.clone(), 100, 400));
            let verdict = if excused { Verdict::Pass } else { Verdict::Fail };
            assert_eq!(room_order(&room).verdict, verdict, "a fault on nodes {nodes:?}");
        }
        let mut room = clean_room();
        room.push(admission(3, place(150, 1), "a1.three", 1, 20_000, 40_000));
        room.push(admission(4, place(300, 1), "a1.four", 2, 20_000, 30_000));
        room.push(fault(vec![1], 100, 400));
        assert_eq!(room_order(&room).verdict, Verdict::Fail, "a fault long before the wait excuses nothing");
    }

    #[test]
    fn holds_without_admission_are_caught() {
        let mut room = clean_room();
        room.push(RoomRecord::Hold {
            entry: 12,
            fan: 3,
            event: EVENT,
            token: None,
            place: None,
            start_ms: 0,
            end_ms: 1,
            answer: HoldAnswer::Fail { status: 403 },
        });
        let history = vec![booking_entry(10, 1, EVENT, "7-01"), booking_entry(20, 5, EVENT + 1, "8-01")];
        assert_eq!(room_holds_need_admission(&history, &room).verdict, Verdict::Pass, "refused, or another event");
        room.push(hold(13, 3, None, None, "7-04"));
        room.push(hold(14, 2, Some("a1.one"), Some(place(100, 1)), "7-05"));
        let history = [history, vec![booking_entry(15, 4, EVENT, "7-06")]].concat();
        let check = room_holds_need_admission(&history, &room);
        let messages: Vec<&str> = check.violations.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(messages.len(), 3, "{check}");
        assert!(messages[0].contains("entry 13") && messages[0].contains("without an admission token"));
        assert!(messages[1].contains("entry 14") && messages[1].contains("no admission gave its fan"));
        assert!(messages[2].contains("entry 15") && messages[2].contains("has no admission for it"));
    }
}

//! The history checker against hand-made runs: correct histories (written step by step, and a
//! long random one with many concurrent fans) pass every check, and each kind of fault is caught
//! by the check that owns it, with a message that names what broke.
//!
//! Histories come from [`Sim`], a small copy of the ledger's rules (`storage::ledger`) that
//! records each request with its real-time span and answer, and builds the final state. Faults
//! are made by letting it break a rule (`broken`) or by editing its output.

use std::collections::{BTreeMap, BTreeSet};

use chaos::checker::{
    check, NO_DOUBLE_SALE, NO_LOST_WRITES, NO_OVERLAPPING_HOLDS, NO_STALE_READS, PAYMENTS_SETTLED, REAL_TIME_ORDER,
    REPLICAS_AGREE, UNKNOWN_RESOLVED,
};
use chaos::history::{Booking, Entry, FinalEvent, FinalState, FinalTicket, Op, ReplicaDigest, Result as Answer};
use chaos::report::{Report, Verdict};

const TTL: u64 = 500;
const GROUPS: u32 = 4;

/// What becomes of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Applied (if the rules allow) and answered.
    Answered,
    /// Applied, but the runner got no answer.
    AppliedUnknown,
    /// Never applied, and the runner got no answer.
    DroppedUnknown,
}
use Fate::*;

/// A ticket row: the booking, and until when it is held (`None`: sold).
type Row = (String, Option<u64>);

#[derive(Default)]
struct Sim {
    entries: Vec<Entry>,
    bookings: Vec<Booking>,
    rows: BTreeMap<(u64, u32), Row>,
    last_at: BTreeMap<u64, u64>,
    nonce: u64,
    /// Lets the next commands break the rules: take taken tickets, stamp back in time.
    broken: bool,
}

impl Sim {
    fn record(&mut self, fan: u64, op: Op, (start_ms, end_ms): (u64, u64), result: Answer) -> u64 {
        let id = self.entries.len() as u64 + 1;
        self.entries.push(Entry { id, fan, op, start_ms, end_ms, result });
        id
    }

    /// Group time only moves forward, unless the sim is broken.
    fn stamp(&mut self, event: u64, at: u64) -> u64 {
        let last = self.last_at.entry(event).or_default();
        assert!(self.broken || at >= *last, "the test stamps event {event} back in time: {at} < {last}");
        *last = at.max(*last);
        at
    }

    fn free(&self, event: u64, ticket: u32, at: u64, own: &str) -> bool {
        match self.rows.get(&(event, ticket)) {
            None => true,
            Some((booking, _)) if booking == own => true,
            Some((_, until)) => until.is_some_and(|until| at >= until),
        }
    }

    fn find(&self, id: &str) -> Option<usize> {
        self.bookings.iter().position(|b| b.id == id)
    }

    /// The booking as an answer at group time `at` shows it.
    fn view(&self, index: usize, at: u64) -> Booking {
        let mut b = self.bookings[index].clone();
        if b.status == "held" && at >= b.held_until_ms {
            b.status = "expired".into();
        }
        b
    }

    fn answer(fate: Fate, answer: Answer) -> Answer {
        match fate {
            Answered => answer,
            _ => Answer::Unknown { reason: "timeout".into() },
        }
    }

    fn hold(&mut self, fan: u64, event: u64, tickets: &[u32], at: u64, span: (u64, u64), fate: Fate) -> Option<String> {
        let op = Op::Hold { event, tickets: tickets.to_vec() };
        if fate == DroppedUnknown {
            self.record(fan, op, span, Self::answer(fate, fail(503)));
            return None;
        }
        let at = self.stamp(event, at);
        let taken: Vec<u32> = tickets.iter().copied().filter(|&t| !self.free(event, t, at, "")).collect();
        if !taken.is_empty() && !self.broken {
            self.record(fan, op, span, Self::answer(fate, Answer::Fail { status: 409, tickets: taken }));
            return None;
        }
        self.nonce += 1;
        let id = format!("{event}-{:016x}", self.nonce);
        for &t in tickets {
            self.rows.insert((event, t), (id.clone(), Some(at + TTL)));
        }
        self.bookings.push(Booking {
            id: id.clone(),
            event,
            fan,
            tickets: tickets.to_vec(),
            status: "held".into(),
            created_at_ms: at,
            held_until_ms: at + TTL,
            confirmed_at_ms: None,
            released_at_ms: None,
        });
        let shown = self.view(self.bookings.len() - 1, at);
        self.record(fan, op, span, Self::answer(fate, Answer::Ok { booking: shown }));
        Some(id)
    }

    fn pay(&mut self, fan: u64, id: &str, at: u64, span: (u64, u64), fate: Fate) -> u64 {
        let op = Op::Pay { booking: id.into(), card: "4242424242424242".into() };
        let answer = if fate == DroppedUnknown { fail(503) } else { self.confirm(fan, id, at) };
        self.record(fan, op, span, Self::answer(fate, answer))
    }

    fn confirm(&mut self, fan: u64, id: &str, at: u64) -> Answer {
        let Some(index) = self.find(id).filter(|&i| self.bookings[i].fan == fan) else { return fail(404) };
        let event = self.bookings[index].event;
        let at = self.stamp(event, at);
        match self.bookings[index].status.as_str() {
            "confirmed" => return Answer::Ok { booking: self.view(index, at) },
            "released" => return fail(409),
            _ => {}
        }
        let tickets = self.bookings[index].tickets.clone();
        let lost: Vec<u32> = tickets.iter().copied().filter(|&t| !self.free(event, t, at, id)).collect();
        if !lost.is_empty() && !self.broken {
            return Answer::Fail { status: 409, tickets: lost };
        }
        tickets.iter().for_each(|&t| _ = self.rows.insert((event, t), (id.into(), None)));
        let b = &mut self.bookings[index];
        b.status = "confirmed".into();
        b.confirmed_at_ms = Some(at);
        Answer::Ok { booking: self.view(index, at) }
    }

    fn release(&mut self, fan: u64, id: &str, at: u64, span: (u64, u64), fate: Fate) -> u64 {
        let op = Op::Release { booking: id.into() };
        let answer = if fate == DroppedUnknown { fail(503) } else { self.free_booking(fan, id, at) };
        self.record(fan, op, span, Self::answer(fate, answer))
    }

    fn free_booking(&mut self, fan: u64, id: &str, at: u64) -> Answer {
        let Some(index) = self.find(id).filter(|&i| self.bookings[i].fan == fan) else { return fail(404) };
        let event = self.bookings[index].event;
        let at = self.stamp(event, at);
        match self.bookings[index].status.as_str() {
            "released" => return Answer::Ok { booking: self.view(index, at) },
            "confirmed" => return fail(409),
            _ => {}
        }
        self.rows.retain(|(e, _), (booking, until)| !(*e == event && booking == id && until.is_some()));
        let b = &mut self.bookings[index];
        b.status = "released".into();
        b.released_at_ms = Some(at);
        Answer::Ok { booking: self.view(index, at) }
    }

    /// A linearizable read at group time `at` (reads stamp nothing).
    fn read(&mut self, fan: u64, id: &str, at: u64, span: (u64, u64)) -> u64 {
        let answer = match self.find(id) {
            Some(index) => Answer::Ok { booking: self.view(index, at) },
            None => fail(404),
        };
        self.record(fan, Op::ReadBooking { booking: id.into() }, span, answer)
    }

    fn final_state(&self) -> FinalState {
        let events: BTreeSet<u64> = self.bookings.iter().map(|b| b.event).collect();
        let events = events.into_iter().map(|event| self.final_event(event)).collect();
        let replicas = (1..=GROUPS)
            .flat_map(|group| {
                (1..=3).map(move |node| ReplicaDigest {
                    group,
                    node,
                    applied_index: 100 + group as u64,
                    digest: format!("digest-{group}"),
                })
            })
            .collect();
        FinalState { events, replicas, payments: vec![] }
    }

    fn final_event(&self, event: u64) -> FinalEvent {
        let now = self.last_at.get(&event).copied().unwrap_or_default();
        let tickets = self
            .rows
            .iter()
            .filter(|((e, _), _)| *e == event)
            .map(|((_, id), (booking, until))| FinalTicket {
                id: *id,
                state: if until.is_some() { "held" } else { "sold" }.into(),
                booking: booking.clone(),
                until_ms: *until,
            })
            .collect();
        let bookings =
            (0..self.bookings.len()).filter(|&i| self.bookings[i].event == event).map(|i| self.view(i, now)).collect();
        FinalEvent { event, parts: 1, tickets, bookings }
    }

    fn run(&self) -> Report {
        check(&self.entries, &self.final_state())
    }
}

fn fail(status: u16) -> Answer {
    Answer::Fail { status, tickets: vec![] }
}

fn all_pass(report: &Report) {
    assert!(report.ok(), "expected every check to pass:\n{report}");
    assert_eq!(report.checks.len(), 8);
    assert!(report.checks.iter().all(|c| c.verdict == Verdict::Pass && c.violations.is_empty()));
}

/// Asserts that exactly `name` failed, and that one of its messages contains every `words`.
fn only_fails(report: &Report, name: &str, words: &[&str]) {
    assert_eq!(report.failed(), vec![name], "expected only {name} to fail:\n{report}");
    let check = report.check(name).unwrap();
    assert!(
        check.violations.iter().any(|v| words.iter().all(|w| v.message.contains(w))),
        "no violation of {name} mentions {words:?}:\n{report}"
    );
}

/// A run with the whole life of bookings: holds, refusals, payments (on time, repeated, late and
/// confirmed, late and refused), releases (on time, of an ended hold, repeated), expiries, reads,
/// unknown answers of every kind, two events whose groups keep very different time.
fn clean_run() -> (Sim, Ids) {
    let mut sim = Sim::default();
    let t0 = 1_000;
    // Event 1: group time close to real time.
    let a = sim.hold(1, 1, &[0, 1], t0, (0, 10), Answered).unwrap();
    assert!(sim.hold(2, 1, &[1, 2], t0 + 5, (2, 12), Answered).is_none(), "all or nothing: 409");
    let c = sim.hold(3, 1, &[2], t0 + 10, (11, 20), Answered).unwrap();
    let e = sim.hold(5, 1, &[3], t0 + 20, (15, 25), Answered).unwrap();
    let g = sim.hold(6, 1, &[4], t0 + 30, (22, 30), Answered).unwrap();
    sim.pay(1, &a, t0 + 100, (90, 110), Answered);
    sim.read(1, &a, t0 + 120, (115, 125));
    sim.release(6, &g, t0 + 130, (126, 135), Answered);
    sim.release(6, &g, t0 + 140, (136, 145), Answered);
    sim.read(6, &g, t0 + 150, (146, 150));
    // Ticket 4 is free again at once; ticket 2's hold ends at t0 + 510 exactly.
    let h = sim.hold(7, 1, &[4], t0 + 150, (147, 155), Answered).unwrap();
    let d = sim.hold(4, 1, &[2], t0 + 10 + TTL, (600, 610), Answered).unwrap();
    // Fan 3 pays late: the ticket is fan 4's now, so 409, and the repeat is refused alike.
    sim.pay(3, &c, t0 + 600, (700, 710), Answered);
    sim.pay(3, &c, t0 + 610, (711, 720), Answered);
    // Fan 5 pays late, but nobody took ticket 3: confirmed.
    sim.pay(5, &e, t0 + 700, (721, 730), Answered);
    // Fan 3 releases the ended hold: released, and fan 4 keeps the ticket.
    sim.release(3, &c, t0 + 710, (731, 740), Answered);
    sim.read(4, &d, t0 + 720, (741, 745));
    // A repeated payment answers the first confirmation, stamped before the holds in between.
    sim.pay(1, &a, t0 + 730, (746, 750), Answered);
    // Unknowns: a hold that applied and one that did not; a payment that applied, retried and
    // answered with the old stamp; a payment that did not apply; a release that applied.
    let applied = sim.hold(8, 1, &[5], t0 + 740, (751, 900), AppliedUnknown).unwrap();
    sim.hold(9, 1, &[6], t0 + 741, (752, 901), DroppedUnknown);
    sim.pay(7, &h, t0 + 750, (760, 905), AppliedUnknown);
    sim.hold(10, 1, &[7], t0 + 800, (906, 910), Answered).unwrap();
    sim.pay(7, &h, t0 + 810, (911, 920), Answered);
    sim.pay(4, &d, t0 + 820, (921, 1_100), DroppedUnknown);
    sim.release(4, &d, t0 + 830, (1_101, 1_300), AppliedUnknown);
    sim.read(4, &d, t0 + 840, (1_301, 1_310));
    // Event 2: its group's clock runs an hour ahead; reads and 404s of a made-up booking.
    let hour = 3_600_000;
    let x = sim.hold(11, 2, &[0, 1, 2], hour, (20, 40), Answered).unwrap();
    let y = sim.hold(12, 2, &[3], hour + 1, (30, 45), Answered).unwrap();
    sim.pay(11, &x, hour + 10, (50, 60), Answered);
    sim.read(12, &y, hour + 600, (70, 80));
    sim.read(12, "2-00000000000000ff", hour + 601, (81, 82));
    let ids = Ids { a, c, d, e, h, x, applied };
    (sim, ids)
}

struct Ids {
    a: String,
    c: String,
    d: String,
    e: String,
    h: String,
    x: String,
    applied: String,
}

#[test]
fn a_clean_run_with_every_kind_of_request_passes_every_check() {
    let (sim, ids) = clean_run();
    let report = sim.run();
    all_pass(&report);
    let final_state = sim.final_state();
    let status = |id: &str| {
        final_state.events.iter().flat_map(|e| &e.bookings).find(|b| b.id == id).map(|b| b.status.clone()).unwrap()
    };
    // The run did what it says: a late payment confirmed, one was refused, a hold ended.
    assert_eq!(status(&ids.a), "confirmed");
    assert_eq!(status(&ids.e), "confirmed");
    assert_eq!(status(&ids.c), "released");
    assert_eq!(status(&ids.d), "released");
    assert_eq!(status(&ids.h), "confirmed");
    assert_eq!(status(&ids.x), "confirmed");
    assert_eq!(status(&ids.applied), "held");
    assert!(sim.entries.iter().any(|e| matches!(e.result, Answer::Fail { status: 409, .. })));
}

#[test]
fn counts_sort_requests_and_resolve_unknown_writes() {
    let (sim, _) = clean_run();
    let counts = sim.run().counts;
    let hold = counts.requests["hold"];
    assert_eq!((hold.ok, hold.fail, hold.unknown), (9, 1, 2));
    let pay = counts.requests["pay"];
    assert_eq!((pay.ok, pay.fail, pay.unknown), (5, 2, 2));
    let read = counts.requests["read"];
    assert_eq!((read.ok, read.fail, read.unknown), (5, 1, 0));
    let hold = counts.unknown["hold"];
    assert_eq!((hold.applied, hold.not_applied, hold.unresolvable), (1, 1, 0));
    // The applied payment was answered again later: either may have confirmed it.
    let pay = counts.unknown["pay"];
    assert_eq!((pay.applied, pay.not_applied, pay.unresolvable), (0, 1, 1));
    let release = counts.unknown["release"];
    assert_eq!((release.applied, release.not_applied, release.unresolvable), (1, 0, 0));
    assert_eq!(sim.run().check(UNKNOWN_RESOLVED).unwrap().verdict, Verdict::Pass);
}

/// A tiny deterministic generator (xorshift), so that the random run is the same every time.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn fate(&mut self) -> Fate {
        match self.below(20) {
            0 => AppliedUnknown,
            1 => DroppedUnknown,
            _ => Answered,
        }
    }
}

/// Many fans on a few events, requests overlapping in real time, each applied at a moment
/// inside its span; each group's clock is skewed and jumps (a new leader), never back.
fn random_run(seed: u64, requests: usize, broken: bool) -> Sim {
    let mut rng = Rng(seed);
    let mut sim = Sim { broken, ..Sim::default() };
    let mut known: Vec<(u64, String)> = Vec::new();
    let mut skew: BTreeMap<u64, u64> = (1..=4).map(|e| (e, e * 1_000_000)).collect();
    let mut now = 1_000;
    for _ in 0..requests {
        now += rng.below(4);
        let span = (now - rng.below(40), now + rng.below(40));
        let pick = rng.below(10);
        // Fans act on their recent bookings mostly, and now and then on an old one.
        let window = if rng.below(5) == 0 { known.len() } else { known.len().min(60) } as u64;
        let target = (pick >= 4 && window > 0).then(|| known[known.len() - 1 - rng.below(window) as usize].clone());
        let event = match &target {
            Some((_, id)) => id.split('-').next().unwrap().parse().unwrap(),
            None => 1 + rng.below(4),
        };
        let skew = skew.get_mut(&event).unwrap();
        if rng.below(100) == 0 {
            // A new leader whose clock is behind or ahead: time stands still or leaps.
            *skew = (*skew + 400).saturating_sub(rng.below(800));
        }
        let at = (now + *skew).max(sim.last_at.get(&event).copied().unwrap_or_default());
        let Some((fan, id)) = target else {
            let fan = 1 + rng.below(50);
            let tickets: BTreeSet<u32> = (0..1 + rng.below(3)).map(|_| rng.below(150) as u32).collect();
            let tickets: Vec<u32> = tickets.into_iter().collect();
            let fate = rng.fate();
            if let Some(id) = sim.hold(fan, event, &tickets, at, span, fate).filter(|_| fate == Answered) {
                known.push((fan, id));
            }
            continue;
        };
        match pick {
            4..=6 => _ = sim.pay(fan, &id, at, span, rng.fate()),
            7 => _ = sim.release(fan, &id, at, span, rng.fate()),
            _ => _ = sim.read(fan, &id, at, span),
        }
    }
    sim
}

#[test]
fn a_long_random_run_with_many_concurrent_fans_passes_every_check() {
    for seed in [7, 99, 2024] {
        let sim = random_run(seed, 4_000, false);
        let report = sim.run();
        all_pass(&report);
        // The run exercised what it is meant to: expiries taken over, late payments both ways.
        let late = sim.bookings.iter().filter(|b| b.confirmed_at_ms.is_some_and(|c| c >= b.held_until_ms));
        assert!(late.count() > 5, "few late payments confirmed");
        assert!(sim.bookings.iter().filter(|b| b.status == "released").count() > 20);
        let refused = sim.entries.iter().filter(|e| matches!(e.op, Op::Pay { .. }));
        assert!(refused.filter(|e| matches!(e.result, Answer::Fail { status: 409, .. })).count() > 20);
        let unknown = report.counts.unknown["hold"];
        assert!(unknown.applied > 10 && unknown.not_applied > 10, "{unknown:?}");
    }
}

#[test]
fn a_double_sale_is_caught() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0, 1], 1_000, (0, 10), Answered).unwrap();
    sim.pay(1, &a, 1_010, (11, 20), Answered);
    sim.broken = true;
    let b = sim.hold(2, 1, &[1, 2], 1_020, (21, 30), Answered).unwrap();
    sim.pay(2, &b, 1_030, (31, 40), Answered);
    let report = sim.run();
    let check = report.check(NO_DOUBLE_SALE).unwrap();
    assert_eq!(check.verdict, Verdict::Fail, "{report}");
    let history = check.violations.iter().find(|v| v.message.contains("answered sold to 2 bookings")).unwrap();
    assert_eq!(history.bookings, vec![a.clone(), b.clone()]);
    assert_eq!((history.event, history.tickets.clone()), (Some(1), vec![1]));
    assert_eq!(history.entries, vec![2, 4]);
    assert!(check.violations.iter().any(|v| v.message.contains("sold to 2 confirmed bookings in the final state")));
    // The row went to the second sale, so the first booking's ticket is not sold to it.
    assert!(check.violations.iter().any(|v| v.message.contains(&format!("booking {a} is confirmed but its ticket 1"))));
    // Holding a sold ticket is also an overlap.
    assert_eq!(report.check(NO_OVERLAPPING_HOLDS).unwrap().verdict, Verdict::Fail);
}

#[test]
fn a_double_sale_seen_only_in_the_final_state_is_caught() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0], 1_000, (0, 10), Answered).unwrap();
    sim.pay(1, &a, 1_010, (11, 20), Answered);
    let b = sim.hold(2, 1, &[1], 1_020, (21, 30), Answered).unwrap();
    let mut final_state = sim.final_state();
    // The second booking shows up confirmed for the first one's ticket, and holds a row it
    // does not list.
    let second = &mut final_state.events[0].bookings[1];
    (second.status, second.confirmed_at_ms, second.tickets) = ("confirmed".into(), Some(1_030), vec![0]);
    let report = check(&sim.entries, &final_state);
    let check = report.check(NO_DOUBLE_SALE).unwrap();
    let messages: Vec<&str> = check.violations.iter().map(|v| v.message.as_str()).collect();
    assert!(
        messages.contains(
            &format!("ticket 0 of event 1 is sold to 2 confirmed bookings in the final state: {a}, {b}").as_str()
        ),
        "{messages:?}"
    );
    assert!(
        messages.contains(
            &format!("ticket 1 of event 1 is held for booking {b}, which does not list it in the final state").as_str()
        ),
        "{messages:?}"
    );
}

#[test]
fn a_lost_confirmation_is_caught() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0], 1_000, (0, 10), Answered).unwrap();
    let paid = sim.pay(1, &a, 1_010, (11, 20), Answered);
    // The cluster forgot the payment: the booking is held again, and so is its ticket.
    sim.bookings[0].status = "held".into();
    sim.bookings[0].confirmed_at_ms = None;
    sim.rows.insert((1, 0), (a.clone(), Some(1_500)));
    let report = sim.run();
    only_fails(&report, NO_LOST_WRITES, &[&a, "answered confirmed", "is held in the final state"]);
    let violation = &report.check(NO_LOST_WRITES).unwrap().violations[0];
    assert_eq!((violation.entries.clone(), violation.bookings.clone()), (vec![paid], vec![a]));
}

#[test]
fn a_lost_hold_is_caught() {
    let mut sim = Sim::default();
    sim.hold(1, 1, &[0], 1_000, (0, 10), Answered).unwrap();
    let b = sim.hold(2, 1, &[1, 2], 1_001, (5, 15), Answered).unwrap();
    sim.bookings.retain(|x| x.id != b);
    sim.rows.retain(|_, (booking, _)| *booking != b);
    let report = sim.run();
    only_fails(&report, NO_LOST_WRITES, &[&b, "entry 2 (hold in event 1 by fan 2)", "missing from the final state"]);
}

#[test]
fn a_hold_kept_with_other_tickets_or_fan_is_caught() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0, 1], 1_000, (0, 10), Answered).unwrap();
    let mut final_state = sim.final_state();
    let kept = &mut final_state.events[0].bookings[0];
    (kept.fan, kept.tickets) = (9, vec![0]);
    final_state.events[0].tickets.retain(|t| t.id == 0);
    let report = check(&sim.entries, &final_state);
    only_fails(&report, NO_LOST_WRITES, &[&a, "fan 9 instead of 1", "tickets [0] instead of [0, 1]"]);
}

#[test]
fn a_lost_release_is_caught() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0], 1_000, (0, 10), Answered).unwrap();
    sim.release(1, &a, 1_010, (11, 20), Answered);
    sim.bookings[0].status = "held".into();
    sim.bookings[0].released_at_ms = None;
    sim.rows.insert((1, 0), (a.clone(), Some(1_500)));
    only_fails(&sim.run(), NO_LOST_WRITES, &[&a, "answered released by entry 2 (release of", "is held"]);
}

#[test]
fn overlapping_holds_are_caught() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0, 1], 1_000, (0, 10), Answered).unwrap();
    sim.broken = true;
    let b = sim.hold(2, 1, &[1], 1_200, (11, 20), Answered).unwrap();
    let report = sim.run();
    let expected = format!(
        "ticket 1 of event 1 was occupied by two bookings at once: {a} during [1000, 1500) and {b} during [1200, 1700)"
    );
    only_fails(&report, NO_OVERLAPPING_HOLDS, &[&expected]);
    let violation = &report.check(NO_OVERLAPPING_HOLDS).unwrap().violations[0];
    assert_eq!(violation.tickets, vec![1]);
    assert_eq!(violation.entries, vec![1, 2]);
}

#[test]
fn a_hold_ending_exactly_when_the_next_begins_does_not_overlap() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0], 1_000, (0, 10), Answered).unwrap();
    let b = sim.hold(2, 1, &[0], 1_000 + TTL, (20, 30), Answered).unwrap();
    // The first fan's late payment is refused; the second one pays and so owns it forever.
    sim.pay(1, &a, 1_600, (40, 50), Answered);
    sim.pay(2, &b, 1_700, (60, 70), Answered);
    let report = sim.run();
    all_pass(&report);
    assert!(matches!(sim.entries[2].result, Answer::Fail { status: 409, .. }));
    // But a hold that began one millisecond earlier would have overlapped.
    let mut early = sim.entries.clone();
    for entry in &mut early {
        match &mut entry.result {
            Answer::Ok { booking } if booking.id == b => booking.created_at_ms -= 1,
            _ => {}
        }
    }
    let mut final_state = sim.final_state();
    final_state.events[0].bookings[1].created_at_ms -= 1;
    let report = check(&early, &final_state);
    only_fails(&report, NO_OVERLAPPING_HOLDS, &["during [1000, 1500)", "during [1499, forever)"]);
}

#[test]
fn a_read_that_went_back_in_time_is_caught() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0], 1_000, (0, 10), Answered).unwrap();
    sim.pay(1, &a, 1_010, (11, 20), Answered);
    sim.read(1, &a, 1_020, (21, 30));
    // A read sent after the payment was answered shows the booking held again.
    let stale = sim.entries[0].clone();
    let id = sim.record(1, Op::ReadBooking { booking: a.clone() }, (31, 40), stale.result);
    let report = sim.run();
    only_fails(
        &report,
        NO_STALE_READS,
        &[&format!("entry {id} (read of {a}) was sent at 31 ms"), "confirmed, yet it shows it held"],
    );
    let violation = &report.check(NO_STALE_READS).unwrap().violations[0];
    assert_eq!(violation.entries, vec![2, id]);
}

#[test]
fn a_read_concurrent_with_a_payment_may_show_either_state() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0], 1_000, (0, 10), Answered).unwrap();
    sim.read(1, &a, 1_005, (12, 30));
    sim.pay(1, &a, 1_010, (11, 20), Answered);
    sim.read(1, &a, 1_020, (15, 30));
    all_pass(&sim.run());
    // Sent one millisecond after the payment was answered, the held read is stale.
    sim.entries[1].start_ms = 21;
    only_fails(&sim.run(), NO_STALE_READS, &["entry 2 (read of"]);
}

#[test]
fn a_booking_not_found_after_it_was_answered_is_caught() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0], 1_000, (0, 10), Answered).unwrap();
    sim.record(1, Op::ReadBooking { booking: a.clone() }, (11, 20), fail(404));
    only_fails(&sim.run(), NO_STALE_READS, &["yet it shows it as not found (404)"]);
}

#[test]
fn time_going_backwards_across_real_time_ordered_holds_is_caught() {
    let mut sim = Sim::default();
    sim.hold(1, 1, &[0], 5_000, (0, 10), Answered).unwrap();
    sim.broken = true;
    sim.hold(2, 1, &[1], 4_000, (20, 30), Answered).unwrap();
    let report = sim.run();
    only_fails(
        &report,
        REAL_TIME_ORDER,
        &[
            "entry 2 (hold in event 1 by fan 2) was sent at 20 ms, after entry 1",
            "answered at 10 ms",
            "4000 is before 5000",
        ],
    );
    // Overlapping in real time, the same stamps are fine: either may have gone first.
    sim.entries[1].start_ms = 10;
    all_pass(&sim.run());
}

#[test]
fn a_payment_stamped_before_an_earlier_answer_is_caught_unless_another_payment_made_it() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0], 1_000, (0, 10), Answered).unwrap();
    sim.pay(1, &a, 1_010, (11, 20), AppliedUnknown);
    sim.hold(2, 1, &[1], 1_020, (21, 30), Answered).unwrap();
    // The repeat is answered with the first confirmation, stamped before the hold: legal.
    sim.pay(1, &a, 1_030, (31, 40), Answered);
    all_pass(&sim.run());
    // Without the unknown payment, the answer's stamp is its own, and too early.
    sim.entries.remove(1);
    only_fails(&sim.run(), REAL_TIME_ORDER, &["(payment of", "its group time 1010 is before 1020"]);
}

#[test]
fn a_confirmation_stamped_before_the_booking_was_created_is_caught() {
    let mut sim = Sim::default();
    let a = sim.hold(1, 1, &[0], 1_000, (0, 10), Answered).unwrap();
    sim.broken = true;
    sim.pay(1, &a, 900, (0, 20), Answered);
    only_fails(
        &sim.run(),
        REAL_TIME_ORDER,
        &[&format!("booking {a} is confirmed at 900, before it was created at 1000")],
    );
}

#[test]
fn replicas_that_disagree_are_caught() {
    let (sim, _) = clean_run();
    let mut final_state = sim.final_state();
    final_state.replicas[4].digest = "something else".into();
    let report = check(&sim.entries, &final_state);
    only_fails(
        &report,
        REPLICAS_AGREE,
        &["group 2's replicas disagree at applied index 102: nodes [1, 3] have digest-2, nodes [2] have something else"],
    );
}

#[test]
fn a_replica_that_did_not_catch_up_is_reported() {
    let (sim, _) = clean_run();
    let mut final_state = sim.final_state();
    final_state.replicas[0].applied_index = 90;
    let report = check(&sim.entries, &final_state);
    only_fails(
        &report,
        REPLICAS_AGREE,
        &["group 1's replicas are at different applied indexes (node 1 at 90, node 2 at 101"],
    );
}

#[test]
fn the_report_reads_as_json_and_as_text() {
    let mut sim = Sim::default();
    sim.hold(1, 1, &[0], 5_000, (0, 10), Answered).unwrap();
    sim.broken = true;
    for n in 0..7 {
        sim.hold(2 + n, 1, &[1 + n as u32], 4_000, (20, 30), Answered).unwrap();
    }
    let report = sim.run();
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"verdict\":\"fail\"") && json.contains("\"notApplied\""), "{json}");
    assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), report);
    let text = report.to_string();
    assert!(text.starts_with("history check: FAILED (1 of 8 checks failed)\n"), "{text}");
    assert!(text.contains("requests: hold 8 (ok 8, fail 0, unknown 0)"), "{text}");
    assert!(text.contains("  pass  no_double_sale\n") && text.contains("  FAIL  real_time_order: 7 violation(s)\n"));
    assert!(text.contains("... and 2 more"), "{text}");
    let check = report.check(REAL_TIME_ORDER).unwrap();
    assert!(check.violations.iter().all(|v| v.entries.len() == 2 && v.entries[0] == 1));
}

#[test]
fn an_empty_run_passes() {
    let report = check(&[], &FinalState { events: vec![], replicas: vec![], payments: vec![] });
    all_pass(&report);
    assert!(report.to_string().starts_with("history check: ok (8 checks passed)"));
}

#[test]
fn a_long_random_run_of_a_ledger_that_ignores_taken_tickets_is_caught() {
    let sim = random_run(7, 4_000, true);
    let report = sim.run();
    for name in [NO_DOUBLE_SALE, NO_OVERLAPPING_HOLDS] {
        assert!(report.check(name).unwrap().violations.len() > 10, "{name} missed the faults:\n{report}");
    }
    assert_eq!(report.check(REAL_TIME_ORDER).unwrap().verdict, Verdict::Pass, "{report}");
}

#[test]
fn one_lost_confirmation_in_a_long_random_run_is_caught() {
    let sim = random_run(99, 4_000, false);
    let mut final_state = sim.final_state();
    let paid = |b: &&mut Booking| b.status == "confirmed";
    let booking = final_state.events.iter_mut().flat_map(|e| &mut e.bookings).find(paid).unwrap();
    (booking.status, booking.confirmed_at_ms) = ("held".into(), None);
    let id = booking.id.clone();
    let report = check(&sim.entries, &final_state);
    assert!(report.failed().contains(&NO_LOST_WRITES), "{report}");
    let violations = &report.check(NO_LOST_WRITES).unwrap().violations;
    assert_eq!(violations.len(), 1, "{report}");
    assert_eq!(violations[0].bookings, vec![id]);
}

/// The provider's payments for a final state: one captured, unrefunded payment per confirmed
/// booking, as a correct run leaves them.
fn payments_of(final_state: &FinalState) -> Vec<chaos::history::FinalPayment> {
    final_state
        .events
        .iter()
        .flat_map(|e| &e.bookings)
        .filter(|b| b.status == "confirmed")
        .map(|b| chaos::history::FinalPayment {
            id: format!("pi_{}", b.id),
            booking: b.id.clone(),
            status: "succeeded".into(),
            amount: 5_000,
            amount_refunded: 0,
        })
        .collect()
}

#[test]
fn every_captured_payment_must_end_confirmed_or_refunded() {
    let (sim, ids) = clean_run();
    let mut final_state = sim.final_state();
    final_state.payments = payments_of(&final_state);
    all_pass(&check(&sim.entries, &final_state));

    // Captured for a booking that is not confirmed, and never refunded: money kept for nothing.
    let mut kept = final_state.clone();
    kept.payments.push(chaos::history::FinalPayment {
        id: "pi_lost".into(),
        booking: ids.c.clone(),
        status: "succeeded".into(),
        amount: 5_000,
        amount_refunded: 0,
    });
    only_fails(&check(&sim.entries, &kept), PAYMENTS_SETTLED, &["was captured, yet its booking is not confirmed"]);

    // The same payment refunded: settled.
    let mut refunded = kept.clone();
    refunded.payments.last_mut().unwrap().amount_refunded = 5_000;
    all_pass(&check(&sim.entries, &refunded));

    // A confirmed booking whose payment was refunded, or that has none: seats for nothing.
    let mut given_away = final_state.clone();
    given_away.payments.iter_mut().find(|p| p.booking == ids.a).unwrap().amount_refunded = 5_000;
    only_fails(&check(&sim.entries, &given_away), PAYMENTS_SETTLED, &["was refunded, yet its booking is confirmed"]);
    let mut unpaid = final_state.clone();
    unpaid.payments.retain(|p| p.booking != ids.e);
    only_fails(&check(&sim.entries, &unpaid), PAYMENTS_SETTLED, &["is confirmed without a captured payment"]);
}

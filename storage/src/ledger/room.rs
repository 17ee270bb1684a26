//! The waiting room of an event, as the event's inventory group applies it: an operator's
//! settings, the nodes' reports on the fans they hold, the leader's ticks that move the admission
//! watermark at the room's rate, late admissions, and the holds made under an admission.
//!
//! Rows this module keeps (keys in [`crate::ledger::keys`]):
//! - `a{event}`: the room ([`RoomState`]). Its size depends on the nodes that report (one report
//!   each, at most [`REPORT_FRONT_MAX`] places) and on how long an admission lasts (passes and
//!   shopping ends), never on how many fans wait;
//! - `o{event}{place}`: the booking made under an admitted place ([`SlotRow`]), one per place;
//! - `h{event}{nonce}`: the place a booking was made under, so that releasing or confirming the
//!   booking ends its fan's shopping.
//!
//! Fans shopping are counted by when their shopping ends, in [`ROOM_BUCKET_MS`] buckets
//! (`RoomState::ends`): an admission counts until it ends, a booking made under it until its
//! hold ends, and a release or a confirmation takes the fan out at once.

use model::room::{
    Admission, Pass, Place, RoomReport, RoomSettings, RoomState, REPORT_FRESH_MS, REPORT_FRONT_MAX,
    REPORT_QUANTILES_MAX, ROOM_ADMISSION_MS_MAX, ROOM_BUCKET_MS, ROOM_PASSES_MAX,
};
use model::{Booking, BookingId, Command, EventId, Idempotency, Millis, NodeId, Outcome, UserId};
use serde::{Deserialize, Serialize};

use crate::ledger::booking::{self, HOLD_TTL_HARD_MAX_MS};
use crate::ledger::invariants::{self, RoomBefore};
use crate::ledger::keys;
use crate::ledger::rows::{decode, read, write, Fault, Rows};

/// Most nodes a room keeps a report (and a late admission) of.
pub const ROOM_NODES_MAX: usize = 64;
/// Longest endpoint or certificate fingerprint a report may carry, in bytes.
pub const REPORT_TEXT_BYTES_MAX: usize = 512;
/// Most rooms one `Rooms` query lists.
pub const ROOMS_LISTED_MAX: u32 = 10_000;
/// Passes are kept at least this long (the window of the achieved rate), or as long as an
/// admission lasts if that is longer; the newest older one stays, so that a place passed before
/// still reads as passed, long enough ago.
pub const PASSES_KEPT_MIN_MS: Millis = 60_000;
/// The furthest ahead a fan's shopping end is counted: the longest hold and the longest
/// admission (a payment's extension beyond it is not counted).
pub const SHOPPING_HORIZON_MS: Millis = HOLD_TTL_HARD_MAX_MS + ROOM_ADMISSION_MS_MAX;
/// Most of the rate one tick may make up for: a room that had nobody to pass (or no room to
/// shop) catches up at most this much, then goes on at its rate.
pub const TICK_BURST_MS: Millis = 3_000;

/// The booking made under an admitted place, and where its fan's shopping end is counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRow {
    /// The one booking the place may make; a retry of it is let through.
    pub booking: BookingId,
    /// The bucket of `RoomState::ends` that counts this fan.
    pub bucket: u64,
    /// The booking was released or confirmed: the fan no longer shops.
    pub ended: bool,
}

/// The first fields of a room row, decoded alone (bincode writes fields in order and a decode
/// may leave bytes over): what a hold needs, without the reports and passes behind them.
#[derive(Debug, Deserialize)]
struct RoomHead {
    _event: EventId,
    settings: RoomSettings,
    _draw_key: [u8; 16],
    _step: u64,
    watermark: Option<Place>,
}

fn load(rows: &impl Rows, event: EventId) -> Result<Option<RoomState>, Fault> {
    read(rows, &keys::room(event))
}

fn save(rows: &mut impl Rows, room: &RoomState) {
    write(rows, keys::room(room.event), room);
}

fn head(rows: &impl Rows, event: EventId) -> Result<Option<RoomHead>, Fault> {
    let key = keys::room(event);
    rows.get(&key)?.map(|bytes| decode(&key, &bytes)).transpose()
}

fn bucket(at: Millis) -> u64 {
    at / ROOM_BUCKET_MS
}

/// The bucket that counts a shopping ending at `end`, seen at `at` (within the horizon).
fn end_bucket(at: Millis, end: Millis) -> u64 {
    bucket(end.min(at.saturating_add(SHOPPING_HORIZON_MS)))
}

fn add_end(ends: &mut Vec<(u64, u64)>, bucket: u64, n: u64) {
    if n == 0 {
        return;
    }
    match ends.binary_search_by_key(&bucket, |(b, _)| *b) {
        Ok(i) => ends[i].1 += n,
        Err(i) => ends.insert(i, (bucket, n)),
    }
}

/// Takes up to `n` from a bucket (never below zero); an emptied bucket goes.
fn take_end(ends: &mut Vec<(u64, u64)>, bucket: u64, n: u64) {
    if let Ok(i) = ends.binary_search_by_key(&bucket, |(b, _)| *b) {
        ends[i].1 = ends[i].1.saturating_sub(n);
        if ends[i].1 == 0 {
            ends.remove(i);
        }
    }
}

/// Fans who may still start shopping at `at` before the limit is reached.
fn headroom(room: &RoomState, shopping: u64) -> u64 {
    u64::from(room.settings.shopping_max).saturating_sub(shopping)
}

fn restart_segment(room: &mut RoomState, at: Millis) {
    room.segment_since = at;
    room.segment_admitted = 0;
}

/// Sets an event's room up, or changes its settings.
pub fn configure(
    rows: &mut impl Rows,
    at: Millis,
    event: EventId,
    settings: &RoomSettings,
    draw_key: [u8; 16],
) -> Result<Outcome, Fault> {
    if rows.get(&keys::event(event))?.is_none() {
        return Ok(Outcome::NoSuchEvent);
    }
    if let Some(problem) = settings.problem() {
        return Ok(Outcome::Rejected(problem));
    }
    let room = match load(rows, event)? {
        None => new_room(event, settings, draw_key, at),
        Some(old) => match reconfigured(old, settings, at) {
            Ok(room) => room,
            Err(outcome) => return Ok(outcome),
        },
    };
    save(rows, &room);
    Ok(Outcome::RoomConfigured(room))
}

fn new_room(event: EventId, settings: &RoomSettings, draw_key: [u8; 16], at: Millis) -> RoomState {
    RoomState {
        event,
        settings: settings.clone(),
        draw_key,
        step: 0,
        watermark: None,
        segment_since: at,
        segment_admitted: 0,
        admitted_total: 0,
        late_total: 0,
        done_total: 0,
        abandoned_total: 0,
        ends: Vec::new(),
        passes: Vec::new(),
        reports: Vec::new(),
        used: Vec::new(),
        last_tick_at: at,
        late: Vec::new(),
    }
}

/// The room with new settings; the draw key stays, and so does the on-sale time once it passed.
fn reconfigured(mut room: RoomState, settings: &RoomSettings, at: Millis) -> Result<RoomState, Outcome> {
    let old = &room.settings;
    if at >= old.on_sale_at && settings.on_sale_at != old.on_sale_at {
        return Err(Outcome::Rejected("the on-sale time cannot change once the on-sale has begun".into()));
    }
    let metering = settings.rate_per_min != old.rate_per_min
        || settings.paused != old.paused
        || settings.on_sale_at != old.on_sale_at;
    room.settings = settings.clone();
    if metering {
        restart_segment(&mut room, at);
    }
    Ok(room)
}

fn report_problem(report: &RoomReport) -> Option<String> {
    if report.front.len() > REPORT_FRONT_MAX {
        return Some(format!("a report lists at most {REPORT_FRONT_MAX} places"));
    }
    if report.quantiles.len() > REPORT_QUANTILES_MAX {
        return Some(format!("a report has at most {REPORT_QUANTILES_MAX} quantiles"));
    }
    if report.front.windows(2).any(|w| w[0] >= w[1]) {
        return Some("a report's places ascend".into());
    }
    if report.endpoint.len() > REPORT_TEXT_BYTES_MAX || report.cert_sha256.len() > REPORT_TEXT_BYTES_MAX {
        return Some(format!("a report's endpoint and certificate are at most {REPORT_TEXT_BYTES_MAX} bytes"));
    }
    None
}

/// Keeps a node's report (the newest of each node's boot).
pub fn report(
    rows: &mut impl Rows,
    at: Millis,
    event: EventId,
    node: NodeId,
    report: &RoomReport,
) -> Result<Outcome, Fault> {
    let Some(mut room) = load(rows, event)? else { return Ok(Outcome::NoRoom) };
    if let Some(problem) = report_problem(report) {
        return Ok(Outcome::Rejected(problem));
    }
    let index = room.reports.binary_search_by_key(&node, |(n, _, _)| *n);
    let abandoned = match index {
        Ok(i) => {
            let previous = &room.reports[i].2;
            if previous.boot == report.boot && previous.seq >= report.seq {
                return Ok(Outcome::AlreadyApplied);
            }
            let same_boot = previous.boot == report.boot;
            if same_boot {
                report.abandoned.saturating_sub(previous.abandoned)
            } else {
                report.abandoned
            }
        }
        Err(_) if room.reports.len() >= ROOM_NODES_MAX => {
            return Ok(Outcome::Rejected(format!("a room keeps the reports of at most {ROOM_NODES_MAX} nodes")));
        }
        Err(_) => report.abandoned,
    };
    let entry = (node, at, report.clone());
    match index {
        Ok(i) => room.reports[i] = entry,
        Err(i) => room.reports.insert(i, entry),
    }
    room.abandoned_total = room.abandoned_total.saturating_add(abandoned);
    save(rows, &room);
    Ok(Outcome::RoomReported { at })
}

/// The leader's tick: passes as many reported places as the rate and the shopping limit allow.
pub fn tick(rows: &mut impl Rows, at: Millis, event: EventId, step: u64) -> Result<Outcome, Fault> {
    let Some(mut room) = load(rows, event)? else { return Ok(Outcome::NoRoom) };
    if step != room.step + 1 {
        return Ok(if step <= room.step {
            Outcome::AlreadyApplied
        } else {
            Outcome::Rejected("tick out of order".into())
        });
    }
    room.step = step;
    room.last_tick_at = at;
    room.ends.retain(|(b, _)| *b > bucket(at));
    let settings = &room.settings;
    let admitted = if settings.enabled && !settings.paused && at >= settings.on_sale_at {
        pass(&mut room, at)
    } else {
        restart_segment(&mut room, at);
        0
    };
    forget_passes(&mut room, at);
    save(rows, &room);
    Ok(Outcome::RoomTicked { admitted, watermark: room.watermark })
}

/// Moves the watermark over the places this tick may pass; how many it passed.
fn pass(room: &mut RoomState, at: Millis) -> u64 {
    let before = RoomBefore { watermark: room.watermark, shopping: room.shopping(at) };
    let allowed = budget(room, at).min(headroom(room, before.shopping));
    let fresh: Vec<&(NodeId, Millis, RoomReport)> = room
        .reports
        .iter()
        .filter(|(_, stamp, r)| at.saturating_sub(*stamp) <= REPORT_FRESH_MS && r.clock_ms >= room.settings.on_sale_at)
        .collect();
    let places = candidates(&fresh, room.watermark, allowed);
    room.used = fresh.iter().map(|(node, _, r)| (*node, r.boot, r.seq)).collect();
    let passed = places.len() as u64;
    if let Some(&last) = places.last() {
        admit(room, at, last, passed);
    }
    invariants::assert_admitted(&before, room, at, passed, allowed);
    passed
}

/// How many places the rate lets this tick pass: what the metering segment is due, at most
/// [`TICK_BURST_MS`] of the rate. A larger debt is forgotten (the segment is moved to begin that
/// long ago), so that a room that could not admit for a while does not rush for as long.
fn budget(room: &mut RoomState, at: Millis) -> u64 {
    room.segment_since = room.segment_since.max(room.settings.on_sale_at);
    let rate = u64::from(room.settings.rate_per_min);
    let elapsed = at.saturating_sub(room.segment_since);
    let due = i128::from(rate) * i128::from(elapsed) / 60_000 - i128::from(room.segment_admitted);
    let burst = (rate * TICK_BURST_MS / 60_000).max(1);
    if due > i128::from(burst) {
        room.segment_since = at.saturating_sub(TICK_BURST_MS);
        room.segment_admitted = 0;
    }
    due.clamp(0, i128::from(burst)) as u64
}

/// The first `n` places above the watermark that fresh reports list, up to where every fresh
/// report is complete: a node's place beyond its `complete_to` may have others before it.
fn candidates(fresh: &[&(NodeId, Millis, RoomReport)], watermark: Option<Place>, n: u64) -> Vec<Place> {
    let Some(cap) = fresh.iter().map(|(_, _, r)| r.complete_to).min() else { return Vec::new() };
    let mut places: Vec<Place> = fresh
        .iter()
        .flat_map(|(_, _, r)| r.front.iter().copied())
        .filter(|p| watermark.is_none_or(|w| *p > w) && *p <= cap)
        .collect();
    places.sort_unstable();
    places.dedup();
    places.truncate(n.min(places.len() as u64) as usize);
    places
}

fn admit(room: &mut RoomState, at: Millis, last: Place, passed: u64) {
    room.watermark = Some(last);
    room.admitted_total += passed;
    room.segment_admitted += passed;
    add_end(&mut room.ends, bucket(at + room.settings.admission_ms), passed);
    room.passes.push(Pass { at, watermark: last, admitted_total: room.admitted_total });
    let over = room.passes.len().saturating_sub(ROOM_PASSES_MAX);
    room.passes.drain(..over);
}

/// Forgets passes no admission or rate can still need (see [`PASSES_KEPT_MIN_MS`]).
fn forget_passes(room: &mut RoomState, at: Millis) {
    let kept_ms = room.settings.admission_ms.max(PASSES_KEPT_MIN_MS) + ROOM_BUCKET_MS;
    let old = room.passes.iter().skip(1).take_while(|p| p.at + kept_ms < at).count();
    room.passes.drain(..old);
}

/// A node's late admission, as a command asks for it.
pub struct LateAdmission {
    pub node: NodeId,
    /// The node's boot and its request's number in it: a retry answers alike.
    pub boot: u64,
    pub seq: u64,
    pub count: u32,
}

/// Admits up to `count` fans whose places were passed while no node counted them.
pub fn late_admit(rows: &mut impl Rows, at: Millis, event: EventId, late: &LateAdmission) -> Result<Outcome, Fault> {
    let Some(mut room) = load(rows, event)? else { return Ok(Outcome::NoRoom) };
    let index = room.late.binary_search_by_key(&late.node, |(n, _, _, _)| *n);
    if let Ok(i) = index {
        let (_, boot, seq, granted) = room.late[i];
        if boot == late.boot && seq >= late.seq {
            return Ok(Outcome::LateAdmitted { granted: if seq == late.seq { granted } else { 0 }, at });
        }
    } else if room.late.len() >= ROOM_NODES_MAX {
        return Ok(Outcome::Rejected(format!("a room keeps late admissions of at most {ROOM_NODES_MAX} nodes")));
    }
    let before = RoomBefore { watermark: room.watermark, shopping: room.shopping(at) };
    let open = room.settings.enabled && !room.settings.paused;
    let allowed = if open { headroom(&room, before.shopping) } else { 0 };
    let granted = u64::from(late.count).min(allowed);
    room.admitted_total += granted;
    room.late_total += granted;
    add_end(&mut room.ends, bucket(at + room.settings.admission_ms), granted);
    let granted = granted as u32;
    let entry = (late.node, late.boot, late.seq, granted);
    match index {
        Ok(i) => room.late[i] = entry,
        Err(i) => room.late.insert(i, entry),
    }
    invariants::assert_admitted(&before, &room, at, u64::from(granted), allowed);
    save(rows, &room);
    Ok(Outcome::LateAdmitted { granted, at })
}

/// Whether a hold on the event needs an admission (its room is enabled).
pub fn requires_admission(rows: &impl Rows, event: EventId) -> Result<bool, Fault> {
    Ok(head(rows, event)?.is_some_and(|h| h.settings.enabled))
}

/// The booking, fan and idempotency key of a hold command.
fn hold_of(command: &Command) -> Option<(BookingId, UserId, Option<&Idempotency>)> {
    match command {
        Command::Hold { booking, user, idempotency, .. } | Command::HoldBest { booking, user, idempotency, .. } => {
            Some((*booking, *user, idempotency.as_ref()))
        }
        _ => None,
    }
}

/// Why an admission does not let this fan hold now, if it does not.
fn refusal(head: &RoomHead, admission: &Admission, user: UserId, at: Millis) -> Option<Outcome> {
    let problem = if admission.user != user {
        "the admission is another fan's"
    } else if at >= admission.expires_at {
        "the admission has ended"
    } else if head.watermark.is_none_or(|w| admission.place > w) {
        "the place has not been admitted"
    } else {
        return None;
    };
    Some(Outcome::AdmissionInvalid(problem.into()))
}

/// A hold under an admission: one booking per admitted place, by its fan, while it lasts.
/// `apply_hold` applies the hold itself.
pub fn admitted<R: Rows>(
    rows: &mut R,
    at: Millis,
    admission: &Admission,
    hold: &Command,
    apply_hold: impl FnOnce(&mut R) -> Result<Outcome, Fault>,
) -> Result<Outcome, Fault> {
    let Some((id, user, idempotency)) = hold_of(hold) else {
        return Ok(Outcome::Rejected("an admission goes with a hold".into()));
    };
    let Some(head) = head(rows, id.event)?.filter(|h| h.settings.enabled) else { return apply_hold(rows) };
    if let Some(refused) = refusal(&head, admission, user, at) {
        return Ok(refused);
    }
    match read::<SlotRow, _>(rows, &keys::slot(id.event, &admission.place))? {
        Some(slot) if slot.booking == id => return apply_hold(rows),
        // A retry under another booking id gets the first answer its idempotency key kept.
        Some(_) => return Ok(booking::remembered(rows, user, idempotency, at)?.unwrap_or(Outcome::AdmissionSpent)),
        None => {}
    }
    let outcome = apply_hold(rows)?;
    if let Outcome::Held(held) = &outcome {
        take_place(rows, at, admission, held)?;
    }
    Ok(outcome)
}

/// Spends the place on the booking just held: its fan now shops until the later of the
/// admission's end and the hold's.
fn take_place(rows: &mut impl Rows, at: Millis, admission: &Admission, held: &Booking) -> Result<(), Fault> {
    let placed = keys::admitted_booking(held.id);
    if rows.get(&placed)?.is_some() {
        return Ok(());
    }
    let Some(mut room) = load(rows, held.event)? else { return Ok(()) };
    let slot =
        SlotRow { booking: held.id, bucket: end_bucket(at, admission.expires_at.max(held.held_until)), ended: false };
    let counted = end_bucket(at, admission.expires_at);
    if slot.bucket != counted {
        take_end(&mut room.ends, counted, 1);
        add_end(&mut room.ends, slot.bucket, 1);
    }
    write(rows, keys::slot(held.event, &admission.place), &slot);
    write(rows, placed, &admission.place);
    save(rows, &room);
    Ok(())
}

/// Follows a booking command's outcome: a booking made under an admission that is released or
/// confirmed ends its fan's shopping; one whose hold a payment extended shops as long.
pub fn after_booking(rows: &mut impl Rows, at: Millis, outcome: &Outcome) -> Result<(), Fault> {
    let (booking, ends) = match outcome {
        Outcome::Released(b) | Outcome::Confirmed(b) => (b, true),
        Outcome::PaymentPending(b) => (b, false),
        _ => return Ok(()),
    };
    let Some(place) = read::<Place, _>(rows, &keys::admitted_booking(booking.id))? else { return Ok(()) };
    let key = keys::slot(booking.event, &place);
    // The two rows are written together and never deleted.
    let Some(mut slot) = read::<SlotRow, _>(rows, &key)? else {
        return Err(Fault::corrupt(&key, "an admitted booking's place has no slot"));
    };
    if slot.ended {
        return Ok(());
    }
    let Some(mut room) = load(rows, booking.event)? else { return Ok(()) };
    if ends {
        slot.ended = true;
        if slot.bucket > bucket(at) {
            take_end(&mut room.ends, slot.bucket, 1);
        }
        room.done_total += 1;
    } else {
        let later = end_bucket(at, booking.held_until);
        if later <= slot.bucket {
            return Ok(());
        }
        take_end(&mut room.ends, slot.bucket, 1);
        add_end(&mut room.ends, later, 1);
        slot.bucket = later;
    }
    write(rows, key, &slot);
    save(rows, &room);
    Ok(())
}

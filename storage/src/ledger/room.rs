//! The waiting room of an event, as the event's inventory group applies it: an operator's
//! settings, the nodes' reports on the fans they hold, the leader's ticks that move the admission
//! watermark at the room's rate, late admissions, and the holds made under an admission.
//!
//! Rows this module keeps (keys in [`crate::ledger::keys`]), split by who writes them so that
//! the commands that come at the admission rate (holds, releases, confirms and payment starts
//! under an admission) read and write a few kilobytes, never the nodes' reports:
//! - `a{event}`: the room's core (`RoomCore`): settings, draw key, step, watermark, metering
//!   segment, counters, shopping ends, the reports the last tick used and late admissions. Its
//!   size depends on how long a fan may shop (buckets of shopping ends) and on the nodes that
//!   report, never on how many fans wait;
//! - `g{event}`: the passes ([`Pass`]), written only by ticks; as many as an admission lasts
//!   seconds, at most [`ROOM_PASSES_MAX`];
//! - `j{event}{node}`: a node's report and its stamp, written only by that node's reports; at
//!   most [`REPORT_FRONT_MAX`] places, and at most [`ROOM_NODES_MAX`] nodes per room;
//! - `o{event}{place}`: the booking made under an admitted place ([`SlotRow`]), one per place;
//! - `h{event}{nonce}`: the place a booking was made under, so that releasing or confirming the
//!   booking ends its fan's shopping.
//!
//! Fans shopping are counted by when their shopping ends, in [`ROOM_BUCKET_MS`] buckets
//! (the core's `ends`): an admission counts until it ends, a booking made under it until its
//! hold ends, and a release or a confirmation takes the fan out at once.
//!
//! [`RoomState`], the room as a query reads it, is the three put together ([`state`]).

use model::room::{
    Admission, Pass, Place, RoomReport, RoomSettings, RoomState, REPORT_FRESH_MS, REPORT_FRONT_MAX,
    REPORT_QUANTILES_MAX, ROOM_ADMISSION_MS_MAX, ROOM_BUCKET_MS, ROOM_PASSES_MAX,
};
use model::{Booking, BookingId, Command, EventId, Idempotency, Millis, NodeId, Outcome, UserId};
use serde::{Deserialize, Serialize};

use crate::ledger::booking::HOLD_TTL_HARD_MAX_MS;
use crate::ledger::idempotency;
use crate::ledger::invariants::{self, RoomAfter, RoomBefore};
use crate::ledger::keys;
use crate::ledger::rows::{decode, read, write, Fault, RawRow, Rows};

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
    /// The bucket of the core's `ends` that counts this fan.
    pub bucket: u64,
    /// The booking was released or confirmed: the fan no longer shops.
    pub ended: bool,
}

/// The room's core row (`a{event}`): every field of [`RoomState`] but the passes and the nodes'
/// reports, which have rows of their own. The fields mean what they mean there.
#[derive(Debug, Serialize, Deserialize)]
struct RoomCore {
    event: EventId,
    settings: RoomSettings,
    draw_key: [u8; 16],
    step: u64,
    watermark: Option<Place>,
    segment_since: Millis,
    segment_admitted: u64,
    admitted_total: u64,
    late_total: u64,
    done_total: u64,
    abandoned_total: u64,
    ends: Vec<(u64, u64)>,
    used: Vec<(NodeId, u64, u64)>,
    last_tick_at: Millis,
    late: Vec<(NodeId, u64, u64, u32)>,
    /// How many nodes have a report row: a new node is refused beyond [`ROOM_NODES_MAX`]
    /// without reading the others' reports.
    nodes_reported: u32,
}

impl RoomCore {
    /// Fans shopping at `at`: admitted and not done, by the end of their shopping.
    fn shopping(&self, at: Millis) -> u64 {
        let now = bucket(at);
        self.ends.iter().filter(|(b, _)| *b > now).map(|(_, n)| n).sum()
    }

    /// What [`invariants::assert_admitted`] checks after an admission at `at`.
    fn after(&self, at: Millis) -> RoomAfter {
        RoomAfter {
            event: self.event,
            watermark: self.watermark,
            shopping: self.shopping(at),
            shopping_max: self.settings.shopping_max,
        }
    }

    /// The room whole, with its passes and its reports (by node).
    fn into_state(self, passes: Vec<Pass>, reports: Vec<Report>) -> RoomState {
        RoomState {
            event: self.event,
            settings: self.settings,
            draw_key: self.draw_key,
            step: self.step,
            watermark: self.watermark,
            segment_since: self.segment_since,
            segment_admitted: self.segment_admitted,
            admitted_total: self.admitted_total,
            late_total: self.late_total,
            done_total: self.done_total,
            abandoned_total: self.abandoned_total,
            ends: self.ends,
            passes,
            reports,
            used: self.used,
            last_tick_at: self.last_tick_at,
            late: self.late,
        }
    }
}

/// The first fields of a core row, decoded alone (bincode writes fields in order and a decode
/// may leave bytes over): what a hold needs, without the counters and shopping ends behind them.
#[derive(Debug, Deserialize)]
struct RoomHead {
    _event: EventId,
    settings: RoomSettings,
    _draw_key: [u8; 16],
    _step: u64,
    watermark: Option<Place>,
}

/// A node's report as a tick and a query use it: `(node, stamp, report)`. Its row keeps the
/// stamp and the report (the node is in the key).
type Report = (NodeId, Millis, RoomReport);

fn load(rows: &impl Rows, event: EventId) -> Result<Option<RoomCore>, Fault> {
    read(rows, &keys::room(event))
}

fn save(rows: &mut impl Rows, room: &RoomCore) {
    write(rows, keys::room(room.event), room);
}

fn head(rows: &impl Rows, event: EventId) -> Result<Option<RoomHead>, Fault> {
    let key = keys::room(event);
    rows.get(&key)?.map(|bytes| decode(&key, &bytes)).transpose()
}

fn load_passes(rows: &impl Rows, event: EventId) -> Result<Vec<Pass>, Fault> {
    Ok(read(rows, &keys::room_passes(event))?.unwrap_or_default())
}

fn decode_passes(event: EventId, bytes: Option<&[u8]>) -> Result<Vec<Pass>, Fault> {
    Ok(bytes.map(|b| decode(&keys::room_passes(event), b)).transpose()?.unwrap_or_default())
}

/// The report rows of an event's room, by node (a room keeps at most [`ROOM_NODES_MAX`]).
fn report_rows(rows: &impl Rows, event: EventId) -> Result<Vec<RawRow>, Fault> {
    rows.scan(&keys::room_reports(event), ROOM_NODES_MAX)
}

fn decode_reports(rows: &[RawRow]) -> Result<Vec<Report>, Fault> {
    rows.iter()
        .map(|(key, value)| {
            let node =
                keys::node_of_room_report_key(key).ok_or_else(|| Fault::corrupt(key, "short room report key"))?;
            let (at, report): (Millis, RoomReport) = decode(key, value)?;
            Ok((node, at, report))
        })
        .collect()
}

fn load_reports(rows: &impl Rows, event: EventId) -> Result<Vec<Report>, Fault> {
    decode_reports(&report_rows(rows, event)?)
}

/// An event's room whole (core, passes, and reports by node), or `None` if it has none.
pub fn state(rows: &impl Rows, event: EventId) -> Result<Option<RoomState>, Fault> {
    let Some(core) = rows.get(&keys::room(event))? else { return Ok(None) };
    let passes = rows.get(&keys::room_passes(event))?;
    state_of(event, &core, passes.as_deref(), &report_rows(rows, event)?).map(Some)
}

/// An event's room whole from its rows as stored: the core row's value, the passes row's (if
/// any) and the report rows (`keys::room_reports(event)`, in key order), read from one view.
pub fn state_of(event: EventId, core: &[u8], passes: Option<&[u8]>, reports: &[RawRow]) -> Result<RoomState, Fault> {
    let core: RoomCore = decode(&keys::room(event), core)?;
    Ok(core.into_state(decode_passes(event, passes)?, decode_reports(reports)?))
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
fn headroom(room: &RoomCore, shopping: u64) -> u64 {
    u64::from(room.settings.shopping_max).saturating_sub(shopping)
}

fn restart_segment(room: &mut RoomCore, at: Millis) {
    room.segment_since = at;
    room.segment_admitted = 0;
}

/// Sets an event's room up, or changes its settings; answers with the room whole.
pub fn configure(
    rows: &mut impl Rows,
    at: Millis,
    event: EventId,
    settings: &RoomSettings,
    draw_key: [u8; 16],
) -> Result<Outcome, Fault> {
    // The event's record, or (in the other groups of an event in parts) the part it sells: each
    // of an event's groups keeps the room's settings, so that each refuses holds without an
    // admission; the event's own group keeps its line.
    if rows.get(&keys::event(event))?.is_none() && rows.part_tickets(event)?.is_none() {
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
    let (passes, reports) = (load_passes(rows, event)?, load_reports(rows, event)?);
    Ok(Outcome::RoomConfigured(room.into_state(passes, reports)))
}

fn new_room(event: EventId, settings: &RoomSettings, draw_key: [u8; 16], at: Millis) -> RoomCore {
    RoomCore {
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
        used: Vec::new(),
        last_tick_at: at,
        late: Vec::new(),
        nodes_reported: 0,
    }
}

/// The room with new settings; the draw key stays, and so does the on-sale time once it passed.
fn reconfigured(mut room: RoomCore, settings: &RoomSettings, at: Millis) -> Result<RoomCore, Outcome> {
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

/// Keeps a node's report (the newest of each node's boot) in the node's own row. The core row
/// is written only when the report adds to the abandoned count or comes from a new node.
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
    let key = keys::room_report(event, node);
    let previous: Option<(Millis, RoomReport)> = read(rows, &key)?;
    let abandoned = match &previous {
        Some((_, previous)) if previous.boot == report.boot => {
            if previous.seq >= report.seq {
                return Ok(Outcome::AlreadyApplied);
            }
            report.abandoned.saturating_sub(previous.abandoned)
        }
        Some(_) => report.abandoned,
        None if room.nodes_reported as usize >= ROOM_NODES_MAX => {
            return Ok(Outcome::Rejected(format!("a room keeps the reports of at most {ROOM_NODES_MAX} nodes")));
        }
        None => report.abandoned,
    };
    write(rows, key, &(at, report));
    if previous.is_none() || abandoned > 0 {
        room.nodes_reported += u32::from(previous.is_none());
        room.abandoned_total = room.abandoned_total.saturating_add(abandoned);
        save(rows, &room);
    }
    Ok(Outcome::RoomReported { at })
}

/// Why a tick of `step` does not apply to the room, if it does not.
fn out_of_step(room: &RoomCore, step: u64) -> Option<Outcome> {
    if step == room.step + 1 {
        return None;
    }
    Some(if step <= room.step { Outcome::AlreadyApplied } else { Outcome::Rejected("tick out of order".into()) })
}

/// The leader's tick: passes as many reported places as the rate and the shopping limit allow.
/// It reads the core, the passes and (in an open room) the nodes' reports; it writes the core,
/// and the passes when it added or forgot one.
pub fn tick(rows: &mut impl Rows, at: Millis, event: EventId, step: u64) -> Result<Outcome, Fault> {
    let Some(mut room) = load(rows, event)? else { return Ok(Outcome::NoRoom) };
    if let Some(refused) = out_of_step(&room, step) {
        return Ok(refused);
    }
    room.step = step;
    room.last_tick_at = at;
    room.ends.retain(|(b, _)| *b > bucket(at));
    let mut passes = load_passes(rows, event)?;
    let settings = &room.settings;
    let admitted = if settings.enabled && !settings.paused && at >= settings.on_sale_at {
        let reports = load_reports(rows, event)?;
        pass(&mut room, &mut passes, &reports, at)
    } else {
        restart_segment(&mut room, at);
        0
    };
    let forgotten = forget_passes(&room.settings, &mut passes, at);
    if admitted > 0 || forgotten > 0 {
        write(rows, keys::room_passes(event), &passes);
    }
    save(rows, &room);
    Ok(Outcome::RoomTicked { admitted, watermark: room.watermark })
}

/// Moves the watermark over the places this tick may pass; how many it passed.
fn pass(room: &mut RoomCore, passes: &mut Vec<Pass>, reports: &[Report], at: Millis) -> u64 {
    assert_eq!(reports.len(), room.nodes_reported as usize, "room {} has a report row per node it counted", room.event);
    let before = RoomBefore { watermark: room.watermark, shopping: room.shopping(at) };
    let allowed = budget(room, at).min(headroom(room, before.shopping));
    let fresh: Vec<&Report> =
        reports.iter().filter(|(_, stamp, _)| at.saturating_sub(*stamp) <= REPORT_FRESH_MS).collect();
    // A report built before the on-sale may miss pre-sale joins its node took after it: until
    // every fresh report is built after the on-sale (a second at most), nobody is passed, rather
    // than pass the places of the nodes whose reports are older without counting them.
    let complete = fresh.iter().all(|(_, _, r)| r.clock_ms >= room.settings.on_sale_at);
    let places = if complete { candidates(&fresh, room.watermark, allowed) } else { Vec::new() };
    room.used = fresh.iter().map(|(node, _, r)| (*node, r.boot, r.seq)).collect();
    let passed = places.len() as u64;
    if let Some(&last) = places.last() {
        admit(room, passes, at, last, passed);
    }
    invariants::assert_admitted(&before, &room.after(at), passed, allowed);
    passed
}

/// How many places the rate lets this tick pass: what the metering segment is due, at most
/// [`TICK_BURST_MS`] of the rate. A larger debt is forgotten (the segment is moved to begin that
/// long ago), so that a room that could not admit for a while does not rush for as long.
fn budget(room: &mut RoomCore, at: Millis) -> u64 {
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
fn candidates(fresh: &[&Report], watermark: Option<Place>, n: u64) -> Vec<Place> {
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

fn admit(room: &mut RoomCore, passes: &mut Vec<Pass>, at: Millis, last: Place, passed: u64) {
    room.watermark = Some(last);
    room.admitted_total += passed;
    room.segment_admitted += passed;
    add_end(&mut room.ends, bucket(at + room.settings.admission_ms), passed);
    passes.push(Pass { at, watermark: last, admitted_total: room.admitted_total });
    let over = passes.len().saturating_sub(ROOM_PASSES_MAX);
    passes.drain(..over);
}

/// Forgets passes no admission or rate can still need (see [`PASSES_KEPT_MIN_MS`]); how many.
fn forget_passes(settings: &RoomSettings, passes: &mut Vec<Pass>, at: Millis) -> usize {
    let kept_ms = settings.admission_ms.max(PASSES_KEPT_MIN_MS) + ROOM_BUCKET_MS;
    let old = passes.iter().skip(1).take_while(|p| p.at + kept_ms < at).count();
    passes.drain(..old);
    old
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
    // Ended buckets go first, as a tick's do: a view at a clock behind the group's must not count
    // fans whose shopping ended alongside those admitted in their place.
    room.ends.retain(|(b, _)| *b > bucket(at));
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
    invariants::assert_admitted(&before, &room.after(at), u64::from(granted), allowed);
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

/// Why an admission does not let this fan hold now, if it does not. `watermark_kept`: this
/// group moves the room's watermark (the event's own group); the other groups of an event in
/// parts keep only the room's settings, and take the admission's signature, which the gateway
/// checked, for the watermark's word.
fn refusal(head: &RoomHead, admission: &Admission, user: UserId, at: Millis, watermark_kept: bool) -> Option<Outcome> {
    let problem = if admission.user != user {
        "the admission is another fan's"
    } else if at >= admission.expires_at {
        "the admission has ended"
    } else if watermark_kept && head.watermark.is_none_or(|w| admission.place > w) {
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
    // Only an event in parts needs the look: its other groups keep no record of it.
    let watermark_kept = rows.part_tickets(id.event)?.is_none() || rows.get(&keys::event(id.event))?.is_some();
    if let Some(refused) = refusal(&head, admission, user, at, watermark_kept) {
        return Ok(refused);
    }
    match read::<SlotRow, _>(rows, &keys::slot(id.event, &admission.place))? {
        Some(slot) if slot.booking == id => return apply_hold(rows),
        // A retry under another booking id gets the first answer its idempotency key kept.
        Some(_) => return Ok(idempotency::remembered(rows, user, idempotency, at)?.unwrap_or(Outcome::AdmissionSpent)),
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
    let counted = end_bucket(at, admission.expires_at);
    // A hold made within the admission's last bucket finds the fan counted as done (ticks count
    // only later buckets, and may have admitted someone in its place): as with a payment, the
    // hold must not count the fan again without a tick's headroom.
    let shops_on = counted > bucket(at);
    let ends_in = if shops_on { end_bucket(at, admission.expires_at.max(held.held_until)) } else { counted };
    let slot = SlotRow { booking: held.id, bucket: ends_in, ended: false };
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
        // A fan whose shopping end is already past (its bucket is now's or older: ticks count it
        // as done) is not brought back by a payment: counted again without a tick's headroom, it
        // would put the room over its shopping maximum.
        if slot.bucket <= bucket(at) {
            return Ok(());
        }
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

//! The room's clockwork on one node: finds the rooms, reports this node's lines and ticks the
//! rooms whose group it leads (once a second each), watches the watermark (ten times a second)
//! to give admissions, asks late admissions, pushes positions, parks fans far back and drops
//! the ones who left.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gateway::Cluster;
use model::room::{Place, RoomState, REPORT_FRESH_MS};
use model::{Command, Consistency, EventId, Millis, Outcome, Query, QueryResult};
use tokio::sync::watch;

use crate::node::{position, Known, RoomNode};
use crate::session::SessionId;
use crate::wire::ServerMsg;

/// How often the watermark is read from the local replica (and admissions given).
const WATCH_INTERVAL_MS: u64 = 100;
/// How often lines are reported, rooms ticked, positions pushed and lines swept.
const BEAT_INTERVAL_MS: u64 = 1_000;
/// A position is pushed at least this often, and sooner when it moves by
/// [`MOVED_PERCENT_MIN`] (or by one fan near the front).
const PUSH_INTERVAL_MS: u64 = 5_000;
/// How far a position moves, in percent, before it is pushed ahead of the periodic push: a move a
/// fan notices. Smaller ones wait, or every fan near the front of a fast line is pushed every beat.
const MOVED_PERCENT_MIN: u64 = 10;
/// Most fans one late admission asks for.
const LATE_BATCH_MAX: u32 = 1_000;
/// Rooms listed per group when looking for new ones.
const ROOMS_LISTED_MAX: u32 = 256;

/// What the driver remembers of each room between beats.
#[derive(Default)]
struct Seen {
    /// The step and watermark last seen (none before the first look): a tick seen right after
    /// the one before tells exactly which places it passed.
    step: Option<u64>,
    watermark: Option<Place>,
    /// The rate the fans were last told about, to name a change.
    rate_per_min: u32,
    paused: bool,
    late_seq: u64,
    late_last_at: Millis,
}

pub async fn run<C: Cluster>(node: Arc<RoomNode<C>>, mut shutdown: watch::Receiver<bool>) {
    let mut seen: HashMap<EventId, Seen> = HashMap::new();
    let mut watch = tokio::time::interval(Duration::from_millis(WATCH_INTERVAL_MS));
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_beat = 0;
    loop {
        tokio::select! {
            _ = watch.tick() => {}
            _ = shutdown.changed() => return,
        }
        // A pass writes a report per room, each waiting up to the cluster's write timeout when
        // the group has no leader (as while the other nodes stop): a shutdown does not wait for
        // the pass to end, or it would wait rooms × write timeout. Each beat is sent anew.
        tokio::select! {
            _ = pass(&node, &mut seen, &mut last_beat) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One look at every room: admissions and late admissions, and every `BEAT_INTERVAL_MS` the
/// rooms discovered and a beat of each.
async fn pass<C: Cluster>(node: &RoomNode<C>, seen: &mut HashMap<EventId, Seen>, last_beat: &mut Millis) {
    refresh(node).await;
    let now = node.now();
    let rooms: Vec<(EventId, Known)> =
        node.rooms.read().expect("rooms lock").iter().map(|(e, k)| (*e, k.clone())).collect();
    for (event, known) in &rooms {
        let seen = seen.entry(*event).or_default();
        admit(node, &known.state, seen);
        late(node, known, seen, now).await;
        // A pause or a new rate is told as soon as it is read, not at the next beat.
        if known.state.settings.enabled && note(&known.state, seen).is_some() {
            push(node, &known.state, seen, now);
        }
    }
    if now >= *last_beat + BEAT_INTERVAL_MS {
        *last_beat = now;
        discover(node).await;
        for (event, known) in &rooms {
            beat(node, known, seen.entry(*event).or_default(), now).await;
        }
    }
}

/// Reads every known room again from the local replica.
async fn refresh<C: Cluster>(node: &RoomNode<C>) {
    let known: Vec<(EventId, u32)> =
        node.rooms.read().expect("rooms lock").iter().map(|(e, k)| (*e, k.group)).collect();
    for (event, group) in known {
        if let Some(state) = node.read_room(group, event).await {
            let state = Arc::new(state);
            node.rooms.write().expect("rooms lock").insert(event, Known { group, state });
        }
    }
}

/// Finds rooms in every inventory group, so that a node with no fans of a room still reports
/// (an empty line) and ticks it when it leads its group.
async fn discover<C: Cluster>(node: &RoomNode<C>) {
    for group in 1..=node.cluster.inventory_groups() {
        let query = Query::Rooms { limit: ROOMS_LISTED_MAX };
        let Ok(QueryResult::Rooms(events)) = node.cluster.read(group, query, Consistency::Stale).await else {
            continue;
        };
        for event in events {
            let unknown = !node.rooms.read().expect("rooms lock").contains_key(&event);
            if unknown {
                node.room(event).await;
            }
        }
    }
}

/// Gives admissions to the places the watermark passed.
fn admit<C: Cluster>(node: &RoomNode<C>, room: &RoomState, seen: &mut Seen) {
    let Some(watermark) = room.watermark else {
        seen.step = Some(room.step);
        return;
    };
    let consecutive = seen.step.is_some_and(|step| room.step == step + 1 || room.step == step);
    let counted_seq =
        room.used.iter().find(|(n, boot, _)| *n == node.config.node && *boot == node.boot).map(|(_, _, seq)| *seq);
    let previous = seen.watermark;
    let mut sends: Vec<(SessionId, ServerMsg)> = Vec::new();
    {
        let mut lines = node.lines.lock().expect("lines lock");
        let Some(line) = lines.get_mut(&room.event) else {
            seen.step = Some(room.step);
            seen.watermark = Some(watermark);
            return;
        };
        let passed: Vec<Place> = line
            .waiters
            .range(..=watermark)
            .filter(|(_, w)| w.admitted.is_none() && !w.late)
            .map(|(p, _)| *p)
            .collect();
        for place in passed {
            let fresh_pass = previous.is_none_or(|p| place > p);
            let counted = consecutive && fresh_pass && counted_seq.is_some_and(|seq| line.counted(seq, &place));
            let waiter = line.waiters.get_mut(&place).expect("listed above");
            if !counted {
                waiter.late = true;
                continue;
            }
            let passed_at = room.passed_at(&place).unwrap_or(room.last_tick_at);
            let (token, expires_at) = node.admission(room, waiter.fan, place, passed_at);
            waiter.admitted = Some((token.clone(), expires_at));
            node.counters.admitted.fetch_add(1, Ordering::Relaxed);
            if let Some(session) = waiter.session {
                sends.push((session, ServerMsg::Admitted { admission_token: token, expires_at }));
            }
        }
    }
    seen.step = Some(room.step);
    seen.watermark = Some(watermark);
    for (session, msg) in sends {
        node.send(session, msg);
    }
}

/// Asks admission for passed places no tick of this node counted (at most once a second), and
/// tells the fans whose admission window closed before they came back that their place lapsed.
///
/// A late admission's token is the one any node gives for the place (it ends `admission_ms`
/// after the watermark passed the place): a fan who moved nodes after its admission gets the
/// same token again, never a second admission. The shopping slot a late admission takes may then
/// be the place's second (if a tick counted it on a node that died): that errs on the safe side.
async fn late<C: Cluster>(node: &RoomNode<C>, known: &Known, seen: &mut Seen, now: Millis) {
    if now < seen.late_last_at + BEAT_INTERVAL_MS {
        return;
    }
    let room = &known.state;
    let (waiting, lapsed) = {
        let mut lines = node.lines.lock().expect("lines lock");
        let Some(line) = lines.get_mut(&room.event) else { return };
        let mut waiting = Vec::new();
        let mut lapsed = Vec::new();
        for (place, waiter) in line.waiters.iter().filter(|(_, w)| w.late && w.admitted.is_none()) {
            match room.passed_at(place) {
                Some(at) if now < at + room.settings.admission_ms => waiting.push((*place, at)),
                _ => lapsed.push((*place, waiter.session)),
            }
            if waiting.len() >= LATE_BATCH_MAX as usize {
                break;
            }
        }
        for (place, _) in &lapsed {
            line.forget(place);
        }
        (waiting, lapsed)
    };
    for (_, session) in lapsed {
        if let Some(session) = session {
            let detail = "your turn came while we did not hear from you, and its admission window has closed: \
                          join again for a new place";
            node.send(session, ServerMsg::Lapsed { detail: detail.into() });
        }
    }
    if waiting.is_empty() {
        return;
    }
    seen.late_last_at = now;
    seen.late_seq += 1;
    let command = Command::RoomLateAdmit {
        event: room.event,
        node: node.config.node,
        boot: node.boot,
        seq: seen.late_seq,
        count: waiting.len() as u32,
    };
    let Ok(Outcome::LateAdmitted { granted, .. }) = node.cluster.write(known.group, command).await else { return };
    let mut sends = Vec::new();
    {
        let mut lines = node.lines.lock().expect("lines lock");
        let Some(line) = lines.get_mut(&room.event) else { return };
        for (place, passed_at) in waiting.into_iter().take(granted as usize) {
            let Some(waiter) = line.waiters.get_mut(&place) else { continue };
            let (token, expires_at) = node.admission(room, waiter.fan, place, passed_at);
            waiter.admitted = Some((token.clone(), expires_at));
            waiter.late = false;
            node.counters.admitted.fetch_add(1, Ordering::Relaxed);
            if let Some(session) = waiter.session {
                sends.push((session, ServerMsg::Admitted { admission_token: token, expires_at }));
            }
        }
    }
    for (session, msg) in sends {
        node.send(session, msg);
    }
}

/// Once a second per room: push, sweep and report, tick (if this node leads the group). The push
/// goes first: it needs nothing the two writes bring, and a change of the room (a pause, a new
/// rate) reaches the fans without waiting for them.
async fn beat<C: Cluster>(node: &RoomNode<C>, known: &Known, seen: &mut Seen, now: Millis) {
    let room = &known.state;
    if !room.settings.enabled {
        return;
    }
    push(node, room, seen, now);
    report(node, known, now).await;
    if node.cluster.leads(known.group) {
        let tick = Command::RoomTick { event: room.event, step: room.step + 1 };
        if let Err(error) = node.cluster.write(known.group, tick).await {
            tracing::debug!(event = room.event, %error, "room tick not applied");
        }
    }
}

async fn report<C: Cluster>(node: &RoomNode<C>, known: &Known, now: Millis) {
    let room = &known.state;
    let uncertainty = node.clock.lock().expect("clock lock").uncertainty_ms(room, node.config.node);
    let mut report = {
        let mut lines = node.lines.lock().expect("lines lock");
        let line = lines.entry(room.event).or_default();
        line.sweep(now, room.watermark);
        line.report(room.watermark, now, node.boot)
    };
    (report.endpoint, report.cert_sha256) = node.advertised();
    report.uncertainty_ms = uncertainty.unwrap_or(u64::MAX / 2);
    let command = Command::RoomReport { event: room.event, node: node.config.node, report };
    let sent = node.now();
    match node.cluster.write(known.group, command).await {
        Ok(Outcome::RoomReported { at }) => node.clock.lock().expect("clock lock").sample(sent, node.now(), at),
        Ok(other) => tracing::debug!(event = room.event, ?other, "room report not kept"),
        Err(error) => tracing::debug!(event = room.event, %error, "room report not written"),
    }
}

/// Pushes positions that moved, parks fans whose wait is long, and sends admissions again to
/// fans who may have missed them.
fn push<C: Cluster>(node: &RoomNode<C>, room: &RoomState, seen: &mut Seen, now: Millis) {
    let note = note(room, seen);
    seen.paused = room.settings.paused;
    seen.rate_per_min = room.settings.rate_per_min;
    let fresh_after = now.saturating_sub(REPORT_FRESH_MS);
    let presale = now < room.settings.on_sale_at;
    let mut sends: Vec<(SessionId, ServerMsg)> = Vec::new();
    let mut parks: Vec<SessionId> = Vec::new();
    {
        let mut lines = node.lines.lock().expect("lines lock");
        let Some(line) = lines.get_mut(&room.event) else { return };
        let mut local = 0u64;
        for (place, waiter) in line.waiters.iter_mut() {
            if let Some((token, expires_at)) = &waiter.admitted {
                if let Some(session) = waiter.session.filter(|_| now >= waiter.pushed_at + PUSH_INTERVAL_MS) {
                    waiter.pushed_at = now;
                    sends.push((
                        session,
                        ServerMsg::Admitted { admission_token: token.clone(), expires_at: *expires_at },
                    ));
                }
                continue;
            }
            let ahead_local = local;
            local += 1;
            let Some(session) = waiter.session else { continue };
            if room.watermark.is_some_and(|w| *place <= w) {
                continue;
            }
            let ahead = crate::line::ahead_in_room(room, Some(node.config.node), place, ahead_local, fresh_after);
            let message = position(room, ahead, now, note.clone());
            if let ServerMsg::Position { wait_seconds: Some(wait), .. } = &message {
                if wait * 1000 > node.config.park_wait_ms {
                    let come_back_at = now + (wait * 1000 - node.config.park_wait_ms) / 2;
                    waiter.live_until = come_back_at + room.settings.abandon_ms;
                    waiter.session = None;
                    sends.push((session, ServerMsg::Parked { come_back_at }));
                    parks.push(session);
                    continue;
                }
            }
            // Before the on-sale a position moves only as fans join ahead (the draw puts them
            // anywhere), and in a surge that is every fan every beat: those moves wait for the
            // periodic push. From the on-sale, fans join behind and the line moves by admissions.
            let moved = !presale && moved(waiter.pushed_ahead, ahead);
            if moved || now >= waiter.pushed_at + PUSH_INTERVAL_MS || note.is_some() {
                waiter.pushed_ahead = Some(ahead);
                // A note goes to every fan at once; their next periodic pushes are spread over
                // the interval rather than all due again together.
                waiter.pushed_at = if note.is_some() { now.saturating_sub(push_phase_ms(waiter.fan)) } else { now };
                sends.push((session, message));
            }
        }
    }
    for (session, msg) in sends {
        if node.send(session, msg) {
            node.counters.pushes.fetch_add(1, Ordering::Relaxed);
        }
    }
    node.counters.parked.fetch_add(parks.len() as u64, Ordering::Relaxed);
    for session in parks {
        node.detach(session);
    }
}

/// What changed in the room since the fans were last told: a pause, a resume or a new rate.
fn note(room: &RoomState, seen: &Seen) -> Option<String> {
    if room.settings.paused != seen.paused {
        Some(if room.settings.paused { "the room is paused" } else { "the room moves again" }.to_string())
    } else if seen.rate_per_min != 0 && room.settings.rate_per_min != seen.rate_per_min {
        Some(format!("the admission rate changed to {} a minute", room.settings.rate_per_min))
    } else {
        None
    }
}

/// How much sooner than the interval a fan's next periodic push comes after a note to every fan: a
/// spread over all but the last beat of the interval, fixed per fan.
fn push_phase_ms(fan: model::UserId) -> Millis {
    (fan.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % (PUSH_INTERVAL_MS - BEAT_INTERVAL_MS)
}

/// Whether a position moved enough to push: by [`MOVED_PERCENT_MIN`], or by one fan within the
/// first `100 / MOVED_PERCENT_MIN` places.
fn moved(before: Option<u64>, now: u64) -> bool {
    match before {
        None => true,
        Some(before) => before.abs_diff(now) * 100 >= (before * MOVED_PERCENT_MIN).max(100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_pushed_when_they_move_noticeably() {
        assert!(moved(None, 5));
        assert!(moved(Some(9), 8), "near the front every step counts");
        assert!(!moved(Some(50), 46));
        assert!(moved(Some(50), 45));
        assert!(!moved(Some(10_000), 9_001));
        assert!(moved(Some(10_000), 9_000));
    }

    #[test]
    fn after_a_note_the_next_pushes_spread_over_the_interval_and_none_comes_later() {
        let mut per_beat = [0u32; (PUSH_INTERVAL_MS / BEAT_INTERVAL_MS) as usize];
        for fan in 0..10_000u64 {
            let phase = push_phase_ms(fan);
            assert!(phase < PUSH_INTERVAL_MS - BEAT_INTERVAL_MS, "the next push is due within the interval");
            per_beat[(phase / BEAT_INTERVAL_MS) as usize] += 1;
        }
        for (beat, fans) in per_beat.iter().enumerate().take(per_beat.len() - 1) {
            assert!((2_250..=2_750).contains(fans), "beat {beat} has {fans} of 10,000 fans: {per_beat:?}");
        }
        assert_eq!(per_beat[per_beat.len() - 1], 0);
    }
}

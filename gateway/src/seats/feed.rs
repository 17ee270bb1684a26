//! One event's seat feed on this gateway: every seat's status, kept current from the replica's
//! published changes, and the recent deltas, for the gateway's subscribers to that event.
//!
//! The feed subscribes to the node's seat changes before it reads the event's rows (with the
//! applied index they are at), then applies every change after that index: it misses none and
//! applies none twice. Holds end by time alone (no log entry says so): the feed keeps each held
//! seat's end and tells subscribers when it passes. That only tells watchers; whether a seat can
//! be taken is decided by the group's apply, as always.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use model::{EventId, GroupId, Millis, TicketId, TicketState};
use tokio::sync::broadcast;

use super::wire::{DeltaView, SnapshotView, Status, Version};

/// Deltas kept for subscribers who come back with `Last-Event-ID`.
pub const RECENT_DELTAS_MAX: usize = 1_024;
/// Deltas a subscriber may fall behind by before it is sent a fresh snapshot instead.
pub const SUBSCRIBER_LAG_DELTAS_MAX: usize = 256;

/// A step of the feed, as its subscribers get it.
#[derive(Debug)]
pub enum Step {
    /// Seats changed; the JSON is rendered once for every subscriber.
    Delta { version: Version, json: Bytes },
    /// The feed read its event again (it fell behind the replica, or the replica's rows were
    /// replaced): subscribers take a fresh snapshot.
    Reset,
}

/// Every seat's status, and what the feed has sent.
pub struct FeedState {
    pub version: Version,
    /// The applied index of each group the event is sold by, in part order: `version.applied`
    /// is their sum.
    applied: Vec<u64>,
    statuses: Vec<Status>,
    available_count: u32,
    /// Held seats' ends, soonest first; an entry whose seat was since sold, released or held
    /// again with another end is skipped when it comes up.
    ends: BinaryHeap<Reverse<(Millis, TicketId)>>,
    /// The end of each held seat.
    held_until: HashMap<TicketId, Millis>,
    /// The last deltas sent, oldest first, for resumes.
    recent: VecDeque<(Version, Bytes)>,
    /// The version the feed read its event at: it knows no delta before it.
    base: Version,
    /// The newest delta dropped from `recent`.
    dropped_through: Option<Version>,
    /// Seats whose status changed since the last delta, with their status now: changes are
    /// applied at once (a snapshot is always current) and sent together, at most one delta per
    /// `DELTA_INTERVAL_MS`, so that a fan's stream carries a few events a second in a rush.
    pending: BTreeMap<TicketId, Status>,
}

impl FeedState {
    /// The state of `seats` seats whose rows are `rows`, read at `now` from the event's groups
    /// at their `applied` indexes (one per part). A feed of several groups names itself with
    /// `feed` in its versions.
    pub fn new(seats: usize, applied: Vec<u64>, rows: &[(TicketId, TicketState)], now: Millis, feed: u32) -> FeedState {
        assert!(!applied.is_empty(), "an event is sold by at least one group");
        let feed = if applied.len() == 1 { 0 } else { feed.max(1) };
        let base = Version { applied: applied.iter().sum(), ended_ms: now, feed };
        let mut state = FeedState {
            version: base,
            applied,
            base,
            dropped_through: None,
            pending: BTreeMap::new(),
            statuses: vec![Status::Available; seats],
            available_count: u32::try_from(seats).expect("an event has at most VENUE_SEATS_MAX seats"),
            ends: BinaryHeap::new(),
            held_until: HashMap::new(),
            recent: VecDeque::new(),
        };
        for (ticket, row) in rows {
            state.set(*ticket, Some(row), now);
        }
        state.pending.clear();
        state
    }

    pub fn snapshot(&self, event: EventId) -> SnapshotView {
        SnapshotView::new(event, self.version, &self.statuses, self.available_count)
    }

    /// The deltas after `after`, if the feed still has every one of them: `after` is no older
    /// than where the feed started and than the newest delta it dropped, and not ahead of it.
    pub fn since(&self, after: Version) -> Option<Vec<(Version, Bytes)>> {
        let kept = self.dropped_through.is_none_or(|dropped| after >= dropped);
        if after.feed != self.version.feed || after < self.base || after > self.version || !kept {
            return None;
        }
        Some(self.recent.iter().filter(|(version, _)| *version > after).cloned().collect())
    }

    /// Sets a ticket from its row (`None`: no row), noting a change of status as pending.
    fn set(&mut self, ticket: TicketId, row: Option<&TicketState>, now: Millis) {
        let Some(slot) = self.statuses.get(ticket as usize).copied() else {
            return tracing::warn!(
                ticket,
                seats = self.statuses.len(),
                "a seat change names a ticket the event has not"
            );
        };
        let status = match row {
            Some(TicketState::Held { until, .. }) if *until > now => {
                self.held_until.insert(ticket, *until);
                self.ends.push(Reverse((*until, ticket)));
                Status::Held
            }
            Some(TicketState::Sold { .. }) => Status::Sold,
            Some(TicketState::Held { .. }) | None => Status::Available,
        };
        if status != Status::Held {
            self.held_until.remove(&ticket);
        }
        self.change(ticket, slot, status);
    }

    fn change(&mut self, ticket: TicketId, from: Status, to: Status) {
        if from == to {
            return;
        }
        self.statuses[ticket as usize] = to;
        match (from, to) {
            (Status::Available, _) => self.available_count -= 1,
            (_, Status::Available) => self.available_count += 1,
            _ => {}
        }
        self.pending.insert(ticket, to);
    }

    /// Applies one apply's changes of `event` in the group of part `part` (those of an index
    /// already applied are skipped).
    pub fn apply(
        &mut self,
        event: EventId,
        part: usize,
        applied: u64,
        tickets: &[(EventId, TicketId, Option<TicketState>)],
        now: Millis,
    ) {
        let seen = &mut self.applied[part];
        if applied <= *seen {
            return;
        }
        self.version.applied += applied - *seen;
        *seen = applied;
        for (_, ticket, row) in tickets.iter().filter(|(e, _, _)| *e == event) {
            self.set(*ticket, row.as_ref(), now);
        }
    }

    /// Ends the holds whose time has come.
    pub fn end_holds(&mut self, now: Millis) {
        while let Some(Reverse((until, ticket))) = self.ends.peek().copied() {
            if until > now {
                break;
            }
            self.ends.pop();
            if self.held_until.get(&ticket) == Some(&until) {
                self.held_until.remove(&ticket);
                self.change(ticket, Status::Held, Status::Available);
            }
        }
        self.version.ended_ms = self.version.ended_ms.max(now);
    }

    /// When the next hold ends, if one is held.
    pub fn next_end(&self) -> Option<Millis> {
        self.ends.peek().map(|Reverse((until, _))| *until)
    }

    /// Whether changes wait to be sent.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The delta of the changes since the last one, at the current version; `None` if a seat
    /// changed and changed back, or nothing changed.
    pub fn flush(&mut self) -> Option<DeltaView> {
        let mut delta = DeltaView::default();
        for (ticket, status) in std::mem::take(&mut self.pending) {
            match status {
                Status::Available => delta.available.push(ticket),
                Status::Held => delta.held.push(ticket),
                Status::Sold => delta.sold.push(ticket),
            }
        }
        if delta.available.is_empty() && delta.held.is_empty() && delta.sold.is_empty() {
            return None;
        }
        delta.version = self.version.to_string();
        delta.available_count = self.available_count;
        Some(delta)
    }

    /// Keeps a sent delta for resumes, dropping the oldest past the bound.
    pub fn remember(&mut self, version: Version, json: Bytes) {
        if self.recent.len() >= RECENT_DELTAS_MAX {
            if let Some((dropped, _)) = self.recent.pop_front() {
                self.dropped_through = Some(dropped);
            }
        }
        self.recent.push_back((version, json));
    }
}

/// One event's feed: its state, and the channel its subscribers listen on.
pub struct Feed {
    pub event: EventId,
    /// The group of each of the event's parts, part 0 first.
    pub groups: Vec<GroupId>,
    state: Mutex<FeedState>,
    steps: broadcast::Sender<Arc<Step>>,
    /// Subscribers now: the feed stops a while after the last one left.
    subscribers: Arc<AtomicUsize>,
}

/// A subscriber counted until it is dropped.
pub struct Subscribed {
    counts: [Arc<AtomicUsize>; 2],
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        for count in &self.counts {
            let before = count.fetch_sub(1, Ordering::Relaxed);
            assert!(before > 0, "a seat feed lost count of its subscribers");
        }
    }
}

impl Feed {
    pub fn new(event: EventId, groups: Vec<GroupId>, state: FeedState) -> Arc<Feed> {
        let (steps, _) = broadcast::channel(SUBSCRIBER_LAG_DELTAS_MAX);
        Arc::new(Feed { event, groups, state: Mutex::new(state), steps, subscribers: Arc::default() })
    }

    pub fn lock(&self) -> MutexGuard<'_, FeedState> {
        // Every change to the state is made whole under the lock before anything can panic.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new subscriber: its count (also in `total`, the gateway's) and its receiver of steps.
    /// Subscribe before reading the state, so that no step falls between the two.
    pub fn subscribe(&self, total: &Arc<AtomicUsize>) -> (Subscribed, broadcast::Receiver<Arc<Step>>) {
        let counts = [self.subscribers.clone(), total.clone()];
        for count in &counts {
            count.fetch_add(1, Ordering::Relaxed);
        }
        (Subscribed { counts }, self.steps.subscribe())
    }

    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Sends a delta to every subscriber and keeps it for resumes.
    pub fn publish(&self, state: &mut FeedState, delta: &DeltaView) {
        let json = match serde_json::to_vec(delta) {
            Ok(json) => Bytes::from(json),
            Err(error) => return tracing::error!(event = self.event, %error, "a seat delta could not be rendered"),
        };
        state.remember(state.version, json.clone());
        // No subscriber is not an error: the delta is kept for resumes all the same.
        let _ = self.steps.send(Arc::new(Step::Delta { version: state.version, json }));
    }

    /// Replaces the state with one read again, and tells subscribers to take a snapshot.
    pub fn reset(&self, state: FeedState) {
        *self.lock() = state;
        let _ = self.steps.send(Arc::new(Step::Reset));
    }
}

#[cfg(test)]
mod tests {
    use model::BookingId;

    use super::*;

    fn held(until: Millis) -> Option<TicketState> {
        Some(TicketState::Held { booking: BookingId { event: 1, nonce: 1 }, until })
    }

    #[test]
    fn changes_become_deltas_and_ended_holds_free_their_seats() {
        let mut state = FeedState::new(
            4,
            vec![10],
            &[(1, TicketState::Sold { booking: BookingId { event: 1, nonce: 2 } })],
            1_000,
            0,
        );
        assert_eq!((state.available_count, state.flush()), (3, None), "the rows read are no delta");
        state.apply(1, 0, 11, &[(1, 0, held(5_000)), (2, 3, held(5_000))], 1_100);
        let delta = state.flush().unwrap();
        assert_eq!((delta.held, delta.available_count), (vec![0], 2), "another event's change is not this feed's");
        state.apply(1, 0, 11, &[(1, 2, held(5_000))], 1_200);
        assert_eq!(state.flush(), None, "an index already applied is skipped");
        assert_eq!(state.next_end(), Some(5_000));
        state.end_holds(4_999);
        assert_eq!(state.flush(), None);
        state.end_holds(5_000);
        let ended = state.flush().unwrap();
        assert_eq!((ended.available, ended.available_count), (vec![0], 3));
        assert_eq!(state.version, Version { applied: 11, ended_ms: 5_000, feed: 0 });
    }

    #[test]
    fn changes_between_two_deltas_are_sent_once_by_their_last_status() {
        let mut state = FeedState::new(3, vec![1], &[], 0, 0);
        state.apply(1, 0, 2, &[(1, 0, held(100)), (1, 1, held(100))], 10);
        state.apply(
            1,
            0,
            3,
            &[(1, 1, None), (1, 0, Some(TicketState::Sold { booking: BookingId { event: 1, nonce: 1 } }))],
            20,
        );
        let delta = state.flush().unwrap();
        assert_eq!((delta.sold, delta.held), (vec![0], vec![]));
        assert_eq!(delta.available, vec![1], "held and released again: told available");
        assert_eq!(delta.version, "3.0");
    }

    #[test]
    fn a_hold_taken_again_ends_at_its_new_time_only() {
        let mut state = FeedState::new(2, vec![1], &[], 0, 0);
        state.apply(1, 0, 2, &[(1, 0, held(100))], 10);
        state.apply(1, 0, 3, &[(1, 0, None)], 20);
        state.apply(1, 0, 4, &[(1, 0, held(300))], 30);
        state.flush();
        state.end_holds(150);
        assert_eq!(state.flush(), None, "the first hold's end is stale");
        state.end_holds(300);
        assert_eq!(state.flush().unwrap().available, vec![0]);
    }

    #[test]
    fn resumes_get_exactly_the_deltas_after_their_version() {
        let mut state = FeedState::new(8, vec![1], &[], 0, 0);
        let mut versions = Vec::new();
        for i in 0..3u32 {
            state.apply(1, 0, 2 + u64::from(i), &[(1, i, held(1_000))], 10);
            let delta = state.flush().unwrap();
            state.remember(state.version, Bytes::from(delta.version.clone()));
            versions.push(state.version);
        }
        let after_first: Vec<Version> = state.since(versions[0]).unwrap().into_iter().map(|(v, _)| v).collect();
        assert_eq!(after_first, versions[1..].to_vec());
        assert_eq!(state.since(versions[2]).unwrap(), Vec::new(), "up to date: nothing to send");
        assert_eq!(state.since(Version { applied: 0, ended_ms: 0, feed: 0 }), None, "before the feed started");
        assert_eq!(state.since(Version { applied: 99, ended_ms: 0, feed: 0 }), None, "ahead of the feed");
    }

    #[test]
    fn a_resume_from_before_a_dropped_delta_needs_a_snapshot() {
        let mut state = FeedState::new(RECENT_DELTAS_MAX + 8, vec![1], &[], 0, 0);
        let start = state.version;
        for i in 0..(RECENT_DELTAS_MAX as u32 + 2) {
            state.apply(1, 0, 2 + u64::from(i), &[(1, i, held(1_000))], 10);
            state.flush().unwrap();
            state.remember(state.version, Bytes::new());
        }
        assert_eq!(state.since(start), None);
        assert_eq!(state.recent.len(), RECENT_DELTAS_MAX);
        let last_dropped = Version { applied: 3, ended_ms: 0, feed: 0 };
        assert_eq!(state.since(last_dropped).map(|d| d.len()), Some(RECENT_DELTAS_MAX));
    }

    #[test]
    fn an_event_of_several_groups_follows_each_groups_index() {
        let mut state = FeedState::new(20, vec![5, 100], &[], 0, 7);
        assert_eq!(state.version, Version { applied: 105, ended_ms: 0, feed: 7 });
        state.apply(1, 1, 101, &[(1, 12, held(1_000))], 10);
        state.apply(1, 0, 6, &[(1, 2, held(1_000))], 10);
        state.apply(1, 1, 101, &[(1, 13, held(1_000))], 10);
        state.apply(1, 0, 5, &[(1, 3, held(1_000))], 10);
        let delta = state.flush().unwrap();
        assert_eq!(delta.held, vec![2, 12], "each group's index is its own: old ones are skipped");
        assert_eq!(delta.version, "107.0.7");
        state.remember(state.version, Bytes::new());
        let other_feed = Version { feed: 8, ..state.base };
        assert_eq!(state.since(other_feed), None, "another gateway's count of the same sum");
        assert_eq!(state.since(state.base).map(|d| d.len()), Some(1));
    }
}

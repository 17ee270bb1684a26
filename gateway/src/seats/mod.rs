//! Live seat maps: each event's seats kept current on this gateway by one feed, pushed to every
//! fan watching it as server-sent events.
//!
//! Layout:
//! - [`wire`]: versions, snapshots (bitsets) and deltas as fans get them;
//! - [`feed`]: one event's feed, its state, recent deltas and subscribers;
//! - this module: the feeds of the gateway (started on the first subscriber, stopped a while
//!   after the last one left) and the task that keeps each one current.
//!
//! One feed per event and gateway follows the node's replica of the event's group (the node's
//! seat changes, see [`Cluster::seat_changes`]), or of each of its groups for an event sold by
//! several: a thousand fans watching an event cost the group nothing more than one.

pub mod feed;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use model::{Consistency, EventId, GroupId, Millis, Query, QueryResult, SeatChanges};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, Mutex};

use crate::cluster::Cluster;
use crate::problem::Problem;
use feed::{Feed, FeedState};

/// How long a feed runs on with no subscriber (a fan reloading the page finds it still warm).
pub const FEED_IDLE_MS: u64 = 30_000;
/// How often a feed looks whether it is idle, when no hold ends sooner.
const FEED_TICK_MS: u64 = 1_000;
/// Most one delta a feed sends per this many milliseconds: a change after a quiet spell goes
/// out at once, changes in a rush are gathered into one delta per interval (a fan's stream then
/// carries four events a second, not one per write, and a hold shows within this long).
pub const DELTA_INTERVAL_MS: u64 = 250;

/// The gateway's feeds, by event.
pub struct SeatFeeds {
    feeds: Mutex<HashMap<EventId, Arc<Feed>>>,
    /// Subscribers over all feeds.
    pub subscribers: Arc<AtomicUsize>,
    feeds_max: usize,
    subscribers_max: usize,
}

impl SeatFeeds {
    pub fn new(feeds_max: usize, subscribers_max: usize) -> SeatFeeds {
        SeatFeeds { feeds: Mutex::default(), subscribers: Arc::default(), feeds_max, subscribers_max }
    }

    /// Whether one more subscriber is within the gateway's limit.
    pub fn admit(&self) -> Result<(), Problem> {
        if self.subscribers.load(Ordering::Relaxed) >= self.subscribers_max {
            return Err(Problem::unavailable(format!(
                "this gateway serves as many seat map streams as it can ({}): try again later, or another node",
                self.subscribers_max
            )));
        }
        Ok(())
    }

    /// The feed of `event` (of `seats` seats, sold by `groups`, one per part), started if it
    /// is not running.
    pub async fn feed<C: Cluster>(
        self: &Arc<Self>,
        cluster: &Arc<C>,
        event: EventId,
        groups: &[GroupId],
        seats: usize,
    ) -> Result<Arc<Feed>, Problem> {
        // Held across the first read of a new feed, so that two first subscribers start one.
        let mut feeds = self.feeds.lock().await;
        if let Some(feed) = feeds.get(&event) {
            return Ok(feed.clone());
        }
        if feeds.len() >= self.feeds_max {
            return Err(Problem::unavailable(format!(
                "this gateway follows as many events' seat maps as it can ({}): try again later",
                self.feeds_max
            )));
        }
        let upstream = cluster.seat_changes();
        let state = read(cluster, event, groups, seats).await?;
        let feed = Feed::new(event, groups.to_vec(), state);
        feeds.insert(event, feed.clone());
        tokio::spawn(follow(Arc::downgrade(self), cluster.clone(), feed.clone(), upstream, seats));
        tracing::debug!(event, ?groups, seats, "seat feed started");
        Ok(feed)
    }

    /// Feeds running now.
    pub async fn running(&self) -> usize {
        self.feeds.lock().await.len()
    }
}

/// The event's rows as this node's replicas of its groups have them, with their applied indexes.
async fn read<C: Cluster>(
    cluster: &Arc<C>,
    event: EventId,
    groups: &[GroupId],
    seats: usize,
) -> Result<FeedState, Problem> {
    // Stale: this node's own replicas, those whose changes the feed follows.
    let reads = groups.iter().map(|&group| cluster.read(group, Query::SeatStates(event), Consistency::Stale));
    let (mut indexes, mut rows) = (Vec::with_capacity(groups.len()), Vec::new());
    for answer in futures::future::try_join_all(reads).await? {
        match answer {
            QueryResult::SeatStates { applied, tickets } => {
                indexes.push(applied);
                rows.extend(tickets);
            }
            other => {
                let answer = std::mem::discriminant(&other);
                tracing::error!(event, ?answer, "the seat states read answered another query");
                return Err(Problem::internal());
            }
        }
    }
    Ok(FeedState::new(seats, indexes, &rows, cluster.now_ms(), rand::random()))
}

/// Keeps `feed` current until it has been idle for [`FEED_IDLE_MS`], the node's changes end, or
/// the gateway is gone.
async fn follow<C: Cluster>(
    feeds: std::sync::Weak<SeatFeeds>,
    cluster: Arc<C>,
    feed: Arc<Feed>,
    mut upstream: broadcast::Receiver<Arc<SeatChanges>>,
    seats: usize,
) {
    let mut idle_since = None;
    // A read that failed leaves the feed behind the replica: it reads again on every tick until
    // one succeeds (changes applied meanwhile are superseded by that read).
    let mut behind = false;
    let mut last_delta_ms = 0;
    loop {
        let now = cluster.now_ms();
        let wake_at = {
            let state = feed.lock();
            let flush_at = state.has_pending().then_some(last_delta_ms + DELTA_INTERVAL_MS);
            [state.next_end(), flush_at].into_iter().flatten().fold(now + FEED_TICK_MS, Millis::min)
        };
        tokio::select! {
            changes = upstream.recv() => match changes {
                Ok(changes) => behind |= !follow_one(&cluster, &feed, &changes, seats).await,
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(event = feed.event, missed, "seat feed fell behind the replica: reading it again");
                    behind = !reread(&cluster, &feed, seats).await;
                }
                Err(RecvError::Closed) => break,
            },
            () = tokio::time::sleep(Duration::from_millis(wake_at.saturating_sub(now))) => {
                if behind {
                    behind = !reread(&cluster, &feed, seats).await;
                }
            }
        }
        // Both after a change and after a wait: under a steady stream of changes the wait
        // never ends, and holds must still be told ended and deltas sent.
        let now = cluster.now_ms();
        {
            let mut state = feed.lock();
            if state.next_end().is_some_and(|end| end <= now) {
                state.end_holds(now);
            }
            if state.has_pending() && now >= last_delta_ms + DELTA_INTERVAL_MS {
                if let Some(delta) = state.flush() {
                    feed.publish(&mut state, &delta);
                }
                last_delta_ms = now;
            }
        }
        if feed.subscribers() > 0 {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert(now);
        if now.saturating_sub(since) >= FEED_IDLE_MS {
            break;
        }
    }
    if let Some(feeds) = feeds.upgrade() {
        let mut feeds = feeds.feeds.lock().await;
        if feeds.get(&feed.event).is_some_and(|f| Arc::ptr_eq(f, &feed)) {
            feeds.remove(&feed.event);
        }
    }
    tracing::debug!(event = feed.event, "seat feed stopped");
}

/// Applies one published change to the feed; false if it had to read its event and could not.
async fn follow_one<C: Cluster>(cluster: &Arc<C>, feed: &Arc<Feed>, changes: &SeatChanges, seats: usize) -> bool {
    match changes {
        SeatChanges::Applied { group, applied, tickets } => {
            if let Some(part) = feed.groups.iter().position(|g| g == group) {
                let now = cluster.now_ms();
                feed.lock().apply(feed.event, part, *applied, tickets, now);
            }
            true
        }
        SeatChanges::Reset { group } if feed.groups.contains(group) => reread(cluster, feed, seats).await,
        SeatChanges::Reset { .. } => true,
    }
}

/// Reads the event again and has every subscriber take a snapshot; false if the read failed
/// (the feed stays as it was).
async fn reread<C: Cluster>(cluster: &Arc<C>, feed: &Arc<Feed>, seats: usize) -> bool {
    match read(cluster, feed.event, &feed.groups, seats).await {
        Ok(state) => {
            feed.reset(state);
            true
        }
        Err(problem) => {
            tracing::warn!(event = feed.event, problem = %problem.detail(), "seat feed could not read its event");
            false
        }
    }
}

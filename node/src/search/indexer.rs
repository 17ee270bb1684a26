//! Keeps the search shard in step with this node's state machines.
//!
//! On start, a group whose index was committed at exactly the applied index its state machine
//! opened with is current (every later change comes through the change stream); any other group
//! is rebuilt from its state machine. Then the indexer follows the stream: every
//! `COMMIT_INTERVAL_MS` it takes the changes queued, reads the events that changed from the local
//! replica and commits, so that an event created or sold out is searchable within a second, under
//! load too.
//! A group whose changes were dropped, or that installed a snapshot, is rebuilt. Once changes
//! stop coming for `MERGE_IDLE_MS`, the shard's segments are merged into one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::{Consistency, EventId, GroupId, Query, QueryResult};
use raft::Host;
use storage::{Change, Changes};
use tokio::sync::{mpsc, watch};

use super::SearchShard;

/// Longest a change waits before it is searchable.
const COMMIT_INTERVAL_MS: u64 = 200;
/// Events read from the state machine per request while rebuilding a group.
const REBUILD_PAGE_EVENTS: u32 = 5_000;
/// Changes taken from the stream per tick; more wait for the next tick.
const CHANGES_PER_TICK_MAX: usize = 65_536;
/// Longest a moved applied index alone waits to be committed.
const APPLIED_COMMIT_INTERVAL_MS: u64 = 10_000;
/// How long the stream must be quiet before the segments are merged: a bulk import or a rebuild
/// leaves many, and every search walks each one.
const MERGE_IDLE_MS: u64 = 3_000;

/// Per group: the applied index the changes reach, and the events that changed.
type Pending = BTreeMap<GroupId, (u64, BTreeSet<EventId>)>;

/// Takes what the stream holds now, without waiting: how many changes, and whether the stream
/// is still open.
fn take_queued(stream: &mut mpsc::Receiver<Change>, pending: &mut Pending) -> (usize, bool) {
    let mut taken = 0;
    while taken < CHANGES_PER_TICK_MAX {
        match stream.try_recv() {
            Ok(change) => {
                let slot = pending.entry(change.group).or_default();
                slot.0 = slot.0.max(change.applied);
                slot.1.extend(change.events);
                taken += 1;
            }
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => return (taken, false),
        }
    }
    (taken, true)
}

pub struct Indexer {
    pub shard: Arc<SearchShard>,
    pub host: Arc<Host>,
    pub changes: Arc<Changes>,
}

impl Indexer {
    /// Runs until `stop` flips.
    ///
    /// It looks at the stream every `COMMIT_INTERVAL_MS` rather than waking for each change: a
    /// hot group applies hundreds of times a second, and every change would wake this thread.
    pub async fn run(self, mut stream: mpsc::Receiver<Change>, mut stop: watch::Receiver<bool>) {
        self.catch_up().await;
        let mut pending: Pending = BTreeMap::new();
        let (mut last_change, mut last_merge, mut last_commit) = (Instant::now(), Instant::now(), Instant::now());
        let mut ticks = tokio::time::interval(Duration::from_millis(COMMIT_INTERVAL_MS));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|s| *s) => {
                    take_queued(&mut stream, &mut pending);
                    self.flush(&mut pending).await;
                    return;
                }
            }
            let (taken, open) = take_queued(&mut stream, &mut pending);
            if taken > 0 {
                last_change = Instant::now();
            }
            // Changed events are searchable within a tick; a moved applied index alone (holds
            // change nothing searchable) is committed now and then, so that a restart finds the
            // index current.
            let searchable = pending.values().any(|(_, events)| !events.is_empty());
            let applied_due = last_commit.elapsed() >= Duration::from_millis(APPLIED_COMMIT_INTERVAL_MS);
            if searchable || (!pending.is_empty() && applied_due) || !open {
                self.flush(&mut pending).await;
                last_commit = Instant::now();
            }
            if !open {
                return;
            }
            self.rebuild_dirty().await;
            let idle = Duration::from_millis(MERGE_IDLE_MS);
            if last_change.elapsed() >= idle && last_merge.elapsed() >= idle {
                // Tried again while idle: a merge can fail when tantivy's own policy holds some
                // of the segments.
                last_merge = Instant::now();
                if let Err(error) = self.shard.merge_all() {
                    tracing::warn!(%error, "search segments not merged");
                }
            }
        }
    }

    /// Groups not current since the last run are rebuilt; the others are served at once.
    async fn catch_up(&self) {
        let opened = self.changes.opened.lock().expect("opened lock").clone();
        for group in 1..=self.host.inventory_groups() {
            let current = opened.get(&group).is_some_and(|applied| self.shard.indexed(group) == Some(*applied));
            if current {
                self.shard.set_caught_up(group, true);
            } else {
                self.rebuild(group, opened.get(&group).copied().unwrap_or(0)).await;
            }
        }
    }

    async fn rebuild_dirty(&self) {
        let dirty: Vec<GroupId> =
            std::mem::take(&mut *self.changes.dirty.lock().expect("dirty lock")).into_iter().collect();
        for group in dirty {
            let applied = self.host.local_status().iter().find(|r| r.group == group).and_then(|r| r.applied_index);
            self.rebuild(group, applied.unwrap_or(0)).await;
        }
    }

    /// Reindexes every event of `group` from the local replica. The group is not served
    /// meanwhile; changes that arrive during the rebuild are applied after it.
    async fn rebuild(&self, group: GroupId, applied: u64) {
        self.shard.set_caught_up(group, false);
        self.shard.clear(group);
        let mut after = 0;
        let mut indexed = 0usize;
        loop {
            let query = Query::EventsAfter { after, limit: REBUILD_PAGE_EVENTS };
            let entries = match self.host.read(group, query, Consistency::Stale).await {
                Ok(QueryResult::IndexEntries(entries)) => entries,
                other => {
                    tracing::warn!(group, ?other, "cannot read events to index; the group stays unserved");
                    return;
                }
            };
            let Some(last) = entries.last().map(|(e, _)| e.id) else { break };
            if let Err(error) = self.shard.upsert(group, &entries) {
                tracing::error!(group, %error, "indexing failed");
                return;
            }
            indexed += entries.len();
            after = last;
        }
        match self.shard.commit(&BTreeMap::from([(group, applied)])) {
            Ok(()) => {
                self.shard.set_caught_up(group, true);
                tracing::info!(group, events = indexed, "search index rebuilt");
            }
            Err(error) => tracing::error!(group, %error, "search index commit failed"),
        }
    }

    /// Reads events from the local replica and indexes them, a page at a time.
    async fn index(&self, group: GroupId, ids: &[EventId]) -> Result<(), String> {
        for page in ids.chunks(REBUILD_PAGE_EVENTS as usize) {
            let entries = match self.host.read(group, Query::IndexEntries(page.to_vec()), Consistency::Stale).await {
                Ok(QueryResult::IndexEntries(entries)) => entries,
                other => return Err(format!("cannot read changed events: {other:?}")),
            };
            self.shard.upsert(group, &entries).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Indexes the events that changed and commits.
    async fn flush(&self, pending: &mut Pending) {
        if pending.is_empty() {
            return;
        }
        let mut applied = BTreeMap::new();
        for (group, (index, events)) in std::mem::take(pending) {
            let ids: Vec<EventId> = events.into_iter().collect();
            if let Err(reason) = self.index(group, &ids).await {
                tracing::warn!(group, %reason, "changed events not indexed; rebuilding the group");
                self.changes.dirty.lock().expect("dirty lock").insert(group);
                continue;
            }
            applied.insert(group, index);
        }
        if let Err(error) = self.shard.commit(&applied) {
            tracing::error!(%error, "search index commit failed");
        }
    }
}

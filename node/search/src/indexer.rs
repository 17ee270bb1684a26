//! Keeps the search shard in step with this node's state machines.
//!
//! On start, a group whose index was committed at exactly the applied index its state machine
//! opened with is current (every later change comes through the change stream); any other group
//! is rebuilt from its state machine. Then the indexer follows the stream: every
//! `COMMIT_INTERVAL_MS` it takes the changes queued, reads the events that changed from the local
//! replica and commits, so that an event created or sold out is searchable within a second, under
//! load too.
//! A group whose changes were lost, that installed a snapshot, or whose changed events could not
//! be read, is rebuilt. Once changes stop coming for `MERGE_IDLE_MS`, the shard's segments are
//! merged into one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::{EventId, GroupId};
use tokio::sync::watch;

use crate::feed::{ChangeStream, Next, Replicas};
use crate::shard::SearchShard;

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
fn take_queued(stream: &mut impl ChangeStream, pending: &mut Pending) -> (usize, bool) {
    let mut taken = 0;
    while taken < CHANGES_PER_TICK_MAX {
        match stream.try_next() {
            Next::Change(change) => {
                let slot = pending.entry(change.group).or_default();
                slot.0 = slot.0.max(change.applied);
                slot.1.extend(change.events);
                taken += 1;
            }
            Next::Empty => break,
            Next::Ended => return (taken, false),
        }
    }
    (taken, true)
}

/// Feeds `shard` from `replicas` and the change stream.
pub struct Indexer<R> {
    pub shard: Arc<SearchShard>,
    pub replicas: R,
}

impl<R: Replicas> Indexer<R> {
    /// Runs until `stop` flips or the stream ends.
    ///
    /// It looks at the stream every `COMMIT_INTERVAL_MS` rather than waking for each change: a
    /// hot group applies hundreds of times a second, and every change would wake this thread.
    pub async fn run(self, mut stream: impl ChangeStream, mut stop: watch::Receiver<bool>) {
        self.catch_up().await;
        let mut pending: Pending = BTreeMap::new();
        // Groups whose changed events could not be indexed: rebuilt whole.
        let mut failed = BTreeSet::new();
        let (mut last_change, mut last_merge, mut last_commit) = (Instant::now(), Instant::now(), Instant::now());
        let mut ticks = tokio::time::interval(Duration::from_millis(COMMIT_INTERVAL_MS));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = ticks.tick() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopping {
                take_queued(&mut stream, &mut pending);
                // A group that fails now is rebuilt on the next start: its index is behind.
                self.flush(&mut pending).await;
                return;
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
                failed.extend(self.flush(&mut pending).await);
                last_commit = Instant::now();
            }
            if !open {
                return;
            }
            self.rebuild_lost(std::mem::take(&mut failed)).await;
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
        let opened = self.replicas.opened();
        for group in 1..=self.replicas.inventory_groups() {
            let current = opened.get(&group).is_some_and(|applied| self.shard.indexed(group) == Some(*applied));
            if current {
                self.shard.set_caught_up(group, true);
            } else {
                self.rebuild(group, opened.get(&group).copied().unwrap_or(0)).await;
            }
        }
    }

    /// Rebuilds the groups whose changes the stream lost, and `failed`.
    async fn rebuild_lost(&self, failed: BTreeSet<GroupId>) {
        let mut groups = self.replicas.take_lost();
        groups.extend(failed);
        for group in groups {
            let applied = self.replicas.applied(group);
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
            let entries = match self.replicas.events_after(group, after, REBUILD_PAGE_EVENTS).await {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(group, %error, "cannot read events to index; the group stays unserved");
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
            let entries = match self.replicas.events(group, page.to_vec()).await {
                Ok(entries) => entries,
                Err(error) => return Err(format!("cannot read changed events: {error}")),
            };
            self.shard.upsert(group, &entries).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Indexes the events that changed and commits; answers the groups whose events could not
    /// be indexed, to be rebuilt.
    async fn flush(&self, pending: &mut Pending) -> BTreeSet<GroupId> {
        let mut failed = BTreeSet::new();
        if pending.is_empty() {
            return failed;
        }
        let mut applied = BTreeMap::new();
        for (group, (index, events)) in std::mem::take(pending) {
            let ids: Vec<EventId> = events.into_iter().collect();
            if let Err(reason) = self.index(group, &ids).await {
                tracing::warn!(group, %reason, "changed events not indexed; rebuilding the group");
                failed.insert(group);
                continue;
            }
            applied.insert(group, index);
        }
        if let Err(error) = self.shard.commit(&applied) {
            tracing::error!(%error, "search index commit failed");
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use model::{Event, SearchQuery, VenueSummary};
    use tokio::sync::mpsc;

    use super::*;
    use crate::feed::Change;

    /// A replica's events by id, each with its sold count.
    type Events = BTreeMap<EventId, (Event, u32)>;

    /// Replicas held in memory.
    #[derive(Default)]
    struct Memory {
        events: Mutex<BTreeMap<GroupId, Events>>,
        opened: BTreeMap<GroupId, u64>,
        lost: Mutex<BTreeSet<GroupId>>,
        applied: Mutex<BTreeMap<GroupId, u64>>,
        /// Reads of group 1, which starts current and must not be read to catch up.
        group_one_reads: AtomicUsize,
    }

    impl Memory {
        fn put(&self, group: GroupId, id: EventId, name: &str, applied: u64) {
            let event = Event {
                id,
                name: name.into(),
                description: String::new(),
                category: "jazz".into(),
                starts_at: 1_000 * id,
                venue: VenueSummary {
                    id: 1,
                    name: "Hall".into(),
                    address: String::new(),
                    city: "Oslo".into(),
                    capacity: 9,
                },
                performers: Vec::new(),
                ticket_count: 9,
                created_at: 0,
            };
            self.events.lock().unwrap().entry(group).or_default().insert(id, (event, 0));
            self.applied.lock().unwrap().insert(group, applied);
        }

        fn read(&self, group: GroupId, wanted: impl Fn(EventId) -> bool, limit: usize) -> Vec<(Event, u32)> {
            if group == 1 {
                self.group_one_reads.fetch_add(1, Ordering::Relaxed);
            }
            let events = self.events.lock().unwrap();
            let group = events.get(&group).into_iter().flat_map(|g| g.values());
            group.filter(|(e, _)| wanted(e.id)).take(limit).cloned().collect()
        }
    }

    impl Replicas for Arc<Memory> {
        type Error = String;

        fn inventory_groups(&self) -> u32 {
            2
        }

        fn opened(&self) -> BTreeMap<GroupId, u64> {
            self.opened.clone()
        }

        fn take_lost(&self) -> BTreeSet<GroupId> {
            std::mem::take(&mut self.lost.lock().unwrap())
        }

        fn applied(&self, group: GroupId) -> Option<u64> {
            self.applied.lock().unwrap().get(&group).copied()
        }

        async fn events_after(&self, group: GroupId, after: EventId, limit: u32) -> Result<Vec<(Event, u32)>, String> {
            Ok(self.read(group, |id| id > after, limit as usize))
        }

        async fn events(&self, group: GroupId, ids: Vec<EventId>) -> Result<Vec<(Event, u32)>, String> {
            Ok(self.read(group, |id| ids.contains(&id), usize::MAX))
        }
    }

    /// The ids `shard` finds for `keyword`, and whether it answered for both groups.
    fn find(shard: &SearchShard, keyword: &str) -> (Vec<EventId>, bool) {
        let query = SearchQuery { keyword: Some(keyword.into()), limit: 10, ..SearchQuery::default() };
        let result = shard.search(&[1, 2], &query).unwrap();
        let mut ids: Vec<EventId> = result.hits.iter().map(|h| h.event).collect();
        ids.sort();
        (ids, result.groups == [1, 2])
    }

    /// Waits, at most five seconds, until `shard` finds `ids` for `keyword` in both groups.
    async fn until_found(shard: &SearchShard, keyword: &str, ids: &[EventId]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while find(shard, keyword) != (ids.to_vec(), true) {
            assert!(Instant::now() < deadline, "{keyword}: found {:?}, wanted {ids:?}", find(shard, keyword));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_index_follows_its_replicas_and_serves_only_complete_groups() {
        let dir = tempfile::tempdir().unwrap();
        {
            // An earlier run indexed group 1 at applied index 5, and group 2 at 1.
            let shard = SearchShard::open(dir.path()).unwrap();
            let memory = Memory::default();
            memory.put(1, 10, "Blue Lanterns", 5);
            memory.put(2, 20, "Old Lanterns", 1);
            let entries = memory.read(1, |_| true, 10);
            shard.upsert(1, &entries).unwrap();
            shard.upsert(2, &memory.read(2, |_| true, 10)).unwrap();
            shard.commit(&BTreeMap::from([(1, 5), (2, 1)])).unwrap();
        }
        let shard = Arc::new(SearchShard::open(dir.path()).unwrap());
        assert_eq!((shard.indexed(1), shard.indexed(2)), (Some(5), Some(1)));
        assert_eq!(find(&shard, "lanterns"), (Vec::new(), false), "no group is served before the indexer says so");

        // Group 1 opened at the index's applied index: current. Group 2 applied more since.
        let memory = Arc::new(Memory { opened: BTreeMap::from([(1, 5), (2, 3)]), ..Memory::default() });
        memory.put(1, 10, "Blue Lanterns", 5);
        memory.put(2, 21, "New Lanterns", 3);
        let (changes, stream) = mpsc::channel(16);
        let (stop, stopped) = watch::channel(false);
        let indexer = Indexer { shard: shard.clone(), replicas: memory.clone() };
        let running = tokio::spawn(indexer.run(stream, stopped));
        until_found(&shard, "lanterns", &[10, 21]).await;
        assert_eq!(memory.group_one_reads.load(Ordering::Relaxed), 0, "a current group is not read again");

        // A change through the stream, then a change the stream lost.
        memory.put(2, 22, "Lanterns Again", 4);
        changes.send(Change { group: 2, applied: 4, events: vec![22] }).await.unwrap();
        until_found(&shard, "lanterns", &[10, 21, 22]).await;
        memory.put(1, 11, "Lost Lanterns", 7);
        memory.lost.lock().unwrap().insert(1);
        until_found(&shard, "lanterns", &[10, 11, 21, 22]).await;

        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), running).await.expect("the indexer stops").unwrap();
        drop(shard);
        let reopened = SearchShard::open(dir.path()).unwrap();
        assert_eq!((reopened.indexed(1), reopened.indexed(2)), (Some(7), Some(4)), "a restart finds it current");
    }

    #[tokio::test]
    async fn the_indexer_ends_with_its_stream() {
        let dir = tempfile::tempdir().unwrap();
        let shard = Arc::new(SearchShard::open(dir.path()).unwrap());
        let (changes, stream) = mpsc::channel::<Change>(1);
        let (_stop, stopped) = watch::channel(false);
        let indexer = Indexer { shard, replicas: Arc::new(Memory::default()) };
        let running = tokio::spawn(indexer.run(stream, stopped));
        drop(changes);
        tokio::time::timeout(Duration::from_secs(5), running).await.expect("the indexer ends").unwrap();
    }
}

//! The node's seams to its search shard (the `search` crate), which knows neither storage nor
//! raft: [`StorageStream`] and [`HostReplicas`] feed the shard's indexer this node's change
//! stream and replica reads, and [`ShardSearcher`] serves the shard to the raft host.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use model::{ClusterError, Consistency, Event, EventId, GroupId, Query, QueryResult, SearchQuery, SearchResult};
use raft::{Host, SeamError};
use search::{SearchError, SearchShard};
use tokio::sync::mpsc;

/// Storage's change stream, as the indexer takes it.
pub struct StorageStream(pub mpsc::Receiver<storage::Change>);

impl search::ChangeStream for StorageStream {
    fn try_next(&mut self) -> search::Next {
        match self.0.try_recv() {
            Ok(storage::Change { group, applied, events }) => {
                search::Next::Change(search::Change { group, applied, events })
            }
            Err(mpsc::error::TryRecvError::Empty) => search::Next::Empty,
            Err(mpsc::error::TryRecvError::Disconnected) => search::Next::Ended,
        }
    }
}

/// Why the indexer could not read a replica.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("the replica answered an index read with another kind of answer")]
    Unexpected,
}

/// This node's replicas as the indexer reads them: the raft host's stale (local) reads, and
/// storage's record of where each state machine opened and which groups' changes were lost.
pub struct HostReplicas {
    pub host: Arc<Host>,
    pub changes: Arc<storage::Changes>,
}

impl HostReplicas {
    async fn index_entries(&self, group: GroupId, query: Query) -> Result<Vec<(Event, u32)>, ReadError> {
        match self.host.read(group, query, Consistency::Stale).await? {
            QueryResult::IndexEntries(entries) => Ok(entries),
            _ => Err(ReadError::Unexpected),
        }
    }
}

impl search::Replicas for HostReplicas {
    type Error = ReadError;

    fn inventory_groups(&self) -> u32 {
        self.host.inventory_groups()
    }

    fn opened(&self) -> BTreeMap<GroupId, u64> {
        self.changes.opened()
    }

    fn take_lost(&self) -> BTreeSet<GroupId> {
        self.changes.take_lost()
    }

    fn applied(&self, group: GroupId) -> Option<u64> {
        self.host.local_status().iter().find(|r| r.group == group).and_then(|r| r.applied_index)
    }

    async fn events_after(&self, group: GroupId, after: EventId, limit: u32) -> Result<Vec<(Event, u32)>, ReadError> {
        self.index_entries(group, Query::EventsAfter { after, limit }).await
    }

    async fn events(&self, group: GroupId, events: Vec<EventId>) -> Result<Vec<(Event, u32)>, ReadError> {
        self.index_entries(group, Query::IndexEntries(events)).await
    }
}

/// The shard, as the raft host searches it.
pub struct ShardSearcher(pub Arc<SearchShard>);

impl raft::Searcher for ShardSearcher {
    fn search(&self, groups: &[GroupId], query: &SearchQuery) -> Result<SearchResult, SeamError> {
        self.0.search(groups, query).map_err(seam_error)
    }
}

/// What the raft host hears of a failed search:
/// - the index's files damaged, missing or unreadable ([`SearchError::Corrupt`]), its folder
///   unusable ([`SearchError::Folder`]), or any other failure of tantivy's
///   ([`SearchError::Index`]: the index is not one this build can search): `Corrupt`, since an
///   answer from it could be wrong;
/// - the index locked by another writer ([`SearchError::Busy`]), or a thread that could not be
///   started ([`SearchError::Thread`]): `Busy`, worth asking again;
/// - the index writer's threads ended ([`SearchError::Stopped`]): `Stopped`.
///
/// A group the shard has not caught up with is no error: the answer leaves it out of the groups
/// it covers, and the host asks another replica.
pub fn seam_error(error: SearchError) -> SeamError {
    let detail = error.to_string();
    match error {
        SearchError::Corrupt(_) | SearchError::Folder { .. } | SearchError::Index(_) => SeamError::corrupt(detail),
        SearchError::Busy(_) | SearchError::Thread { .. } => SeamError::busy(detail),
        SearchError::Stopped(_) => SeamError::stopped(detail),
    }
}

#[cfg(test)]
mod tests {
    use raft::ErrorKind;

    use super::*;

    #[test]
    fn a_failed_search_reaches_the_host_as_what_can_be_done() {
        let cause = || std::io::Error::other("no space left");
        let folder = SearchError::Folder { action: "create", path: "/data/search".into(), cause: cause() };
        let folder = seam_error(folder);
        assert_eq!(folder.kind, ErrorKind::Corrupt);
        assert!(folder.detail.contains("/data/search") && folder.detail.contains("no space left"), "{folder}");
        assert_eq!(seam_error(SearchError::Thread { name: "search-merge", cause: cause() }).kind, ErrorKind::Busy);
    }
}

//! The gateway's view of the cluster: what it needs from the node it runs in.
//!
//! The node implements this over its raft host; the gateway never sees raft or RocksDB, which is
//! what keeps it free to move out of the node process later.

use std::future::Future;

use model::{
    ClusterError, ClusterStatus, Command, Consistency, Faults, GroupId, Millis, NodeId, Outcome, Query, QueryResult,
    SearchQuery, SearchResult,
};

pub trait Cluster: Send + Sync + 'static {
    /// The node this gateway runs in.
    fn node_id(&self) -> NodeId;

    /// How many inventory groups (numbered 1..=n) events are spread over.
    fn inventory_groups(&self) -> u32;

    /// This node's wall clock in milliseconds since the epoch (with any configured offset).
    /// Only for reading how a state looks now; writes are stamped by the group's leader.
    fn now_ms(&self) -> Millis;

    /// Every later change to the ticket rows of this node's replicas, in each group's log order
    /// (see [`model::SeatChanges`]): the seat feeds follow it. A receiver that falls behind is
    /// told it lagged, and reads again.
    fn seat_changes(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<model::SeatChanges>>;

    /// Propose `command` to `group`, wherever its leader is, and return what apply returned.
    /// Retries on a leader change within a bounded time; commands are idempotent, so a retry
    /// is safe.
    fn write(&self, group: GroupId, command: Command) -> impl Future<Output = Result<Outcome, ClusterError>> + Send;

    /// Answer `query` from `group` at the given consistency.
    fn read(
        &self,
        group: GroupId,
        query: Query,
        consistency: Consistency,
    ) -> impl Future<Output = Result<QueryResult, ClusterError>> + Send;

    /// Every node, group and replica as the nodes report them.
    fn status(&self) -> impl Future<Output = ClusterStatus> + Send;

    /// Ask every replica of `group` on this node to build a snapshot now and purge its log
    /// up to it (an operator action; raft also does it on its own by policy).
    fn snapshot(&self, group: GroupId) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// Copies this node's database into `dir` (a folder that does not exist yet) once each of
    /// its replicas has applied everything committed before the call: a backup that holds every
    /// write acknowledged before it was asked for.
    fn backup(&self, dir: std::path::PathBuf)
        -> impl Future<Output = Result<model::Backup, model::BackupError>> + Send;

    /// Searches the events of every inventory group, each answered by a replica whose search
    /// index has caught up (this node's first).
    fn search(&self, query: SearchQuery) -> impl Future<Output = Result<SearchResult, ClusterError>> + Send;

    /// Whether this node leads `group` now (background work that one node should do per group).
    fn leads(&self, group: GroupId) -> bool;

    /// Injects faults into this node (chaos tests only: the gateway offers it only when
    /// `fault_injection_enabled`).
    fn inject_faults(&self, faults: Faults);

    /// How many events this node's search shard holds. The search cache keys on it, so that an
    /// event that just became searchable here is not hidden behind an answer cached before it
    /// was, on any gateway (not only the one that created it). Events are never edited, so the
    /// count moves exactly when the set of searchable events does.
    fn searchable_events(&self) -> u64 {
        0
    }

    /// Prometheus text lines about the node itself (its search shard, say), appended to the
    /// gateway's own metrics.
    fn node_metrics(&self) -> String {
        String::new()
    }
}

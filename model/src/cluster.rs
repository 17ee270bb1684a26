//! What a node reports about the cluster, and how a cluster call can fail. Shared by the raft
//! host that produces them and the gateway that serves them.

use serde::{Deserialize, Serialize};

use crate::{GroupId, NodeId};

/// Why a write or read did not get an answer from its group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ClusterError {
    /// No leader could be reached in time (an election, a partition, too many nodes down).
    /// Nothing was proposed, or the command was proposed and may still apply: a retry of the
    /// same command is safe because commands are idempotent (see ARCHITECTURE.md).
    #[error("group {group} is unavailable: {reason}")]
    Unavailable { group: GroupId, reason: String },
    /// The group does not exist in this cluster.
    #[error("no group {0} in this cluster")]
    NoSuchGroup(GroupId),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

/// One replica of one group on one node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub group: GroupId,
    pub node: NodeId,
    pub role: Role,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub id: NodeId,
    pub raft_addr: String,
    pub http_addr: String,
    /// False when the node could not be asked (down or cut off); its replicas are then empty.
    pub reachable: bool,
    pub replicas: Vec<ReplicaStatus>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The node that answered.
    pub node: NodeId,
    pub inventory_groups: u32,
    pub nodes: Vec<NodeStatus>,
}

/// Faults to inject into one node, for chaos tests; a field left out changes nothing.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// Added to the node's wall clock (and so to the stamps it gives as a leader).
    pub clock_offset_ms: Option<i64>,
    /// Added to every sync of the node's log: a slow disk.
    pub log_write_delay_ms: Option<u64>,
    /// Makes the node's log writes fail as on a full disk: its groups stop and so does it.
    pub log_write_fail: Option<bool>,
}

/// A backup of one node's database, as the node wrote it into its folder (`db/`, the database,
/// and `backup.json`, this).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    pub node: NodeId,
    pub dir: String,
    /// Each group's entries this node had applied before the copy began: every write acknowledged
    /// before the backup was asked for is at or below them.
    pub groups: Vec<BackupGroup>,
    /// The node's clock when the backup was asked for (ms since the epoch).
    pub started_at: u64,
    pub took_ms: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupGroup {
    pub group: GroupId,
    pub applied_index: u64,
}

/// Why a backup was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// The folder asked for cannot take a backup (it exists, or its parent does not).
    #[error("{0}")]
    Refused(String),
    /// A group could not be caught up with its leader.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The copy or its description could not be written.
    #[error("the backup could not be written: {0}")]
    Failed(String),
}

//! Settings of a node's raft host. Every limit is named with its unit, qualifier last.

use std::collections::BTreeMap;

use model::NodeId;
use serde::Deserialize;

/// One node of the cluster as every other node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: NodeId,
    /// Where its raft transport listens (`host:port`).
    pub raft_addr: String,
    /// Where its gateway listens (`host:port`), reported in the cluster status.
    pub http_addr: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// Inventory groups (numbered 1..=n) that events are spread over; group 0 is placement.
    /// Must be the same on every node.
    pub inventory_groups: u32,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Log entries kept behind a snapshot, so that a briefly lagging follower catches up from
    /// the log rather than from a snapshot.
    pub snapshot_logs_kept_max: u64,
    /// Most entries in one append-entries message.
    pub append_entries_max: u64,
    /// Most bytes of entries in one append-entries message (at least one entry goes whatever
    /// its size): openraft gives such a message one heartbeat interval, and a lagging follower
    /// sent too much at once would never catch up. Halved while messages time out.
    pub append_entries_bytes_max: u64,
    /// How long one message between nodes may take before it counts as lost.
    pub rpc_timeout_ms: u64,
    /// How long a snapshot transfer may take.
    pub snapshot_timeout_ms: u64,
    /// How long a write may spend finding its leader and retrying before it gives up.
    pub write_timeout_ms: u64,
    /// Largest frame between nodes; snapshots are sent whole, so this bounds a group's size.
    pub frame_bytes_max: u32,
    /// Frames waiting to be written to one peer; a full queue makes callers wait.
    pub link_queue_frames_max: usize,
    /// Added to this node's wall clock: for tests of clock skew. Never set in production.
    pub clock_offset_ms: i64,
    /// Most commands one raft entry carries.
    pub batch_commands_max: usize,
    /// Entries a leader keeps proposed and not yet applied, per group; commands that come
    /// while all are busy wait for the next entry, which makes batches.
    pub batches_in_flight_max: usize,
    /// Commands waiting for a group's next entry; past it, writes are refused (overload).
    pub propose_queue_commands_max: usize,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            inventory_groups: 16,
            heartbeat_interval_ms: 150,
            election_timeout_min_ms: 750,
            election_timeout_max_ms: 1500,
            snapshot_logs_since_last: 20_000,
            snapshot_logs_kept_max: 1_000,
            append_entries_max: 300,
            append_entries_bytes_max: 1 << 20,
            rpc_timeout_ms: 2_000,
            snapshot_timeout_ms: 60_000,
            write_timeout_ms: 10_000,
            frame_bytes_max: 512 << 20,
            link_queue_frames_max: 4_096,
            clock_offset_ms: 0,
            batch_commands_max: 1_024,
            batches_in_flight_max: 1,
            propose_queue_commands_max: 65_536,
        }
    }
}

impl RaftConfig {
    /// What is wrong with these settings, in words an operator can act on.
    pub fn problem(&self) -> Option<String> {
        if self.inventory_groups == 0 || self.inventory_groups > 4_096 {
            return Some(format!("inventory_groups must be 1 to 4096, not {}", self.inventory_groups));
        }
        if self.heartbeat_interval_ms == 0 || self.election_timeout_min_ms <= self.heartbeat_interval_ms {
            return Some("election_timeout_min_ms must be above heartbeat_interval_ms, which must be above 0".into());
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Some("election_timeout_max_ms must be above election_timeout_min_ms".into());
        }
        if self.snapshot_logs_since_last == 0 || self.append_entries_max == 0 {
            return Some("snapshot_logs_since_last and append_entries_max must be above 0".into());
        }
        if self.batch_commands_max == 0 || self.batches_in_flight_max == 0 || self.propose_queue_commands_max == 0 {
            return Some(
                "batch_commands_max, batches_in_flight_max and propose_queue_commands_max must be above 0".into(),
            );
        }
        None
    }

    pub(crate) fn openraft(&self) -> openraft::Config {
        openraft::Config {
            cluster_name: "boxoffice".into(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: self.snapshot_timeout_ms,
            max_payload_entries: self.append_entries_max,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.snapshot_logs_kept_max,
            ..Default::default()
        }
    }
}

/// Who this node is and who its peers are.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub node_id: NodeId,
    /// Every node of the cluster, this one included.
    pub nodes: BTreeMap<NodeId, PeerConfig>,
    pub raft: RaftConfig,
}

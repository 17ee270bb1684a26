//! Settings of a node's raft host. Every limit is named with its unit, qualifier last.

use std::collections::BTreeMap;

use model::NodeId;
use serde::Deserialize;

use crate::tls::LinkTls;

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
    /// Bytes of frames waiting to be written to one peer: a few large frames (snapshots, big
    /// appends) fill the queue long before its frame count does. A frame larger than this
    /// waits for the queue to empty and then goes alone.
    pub link_queue_bytes_max: usize,
    /// Largest first frame on a connection (the hello): until a peer is known, it gets no
    /// more than this, whatever `frame_bytes_max` allows.
    pub hello_bytes_max: u32,
    /// How long a new connection may take for its TLS handshake and hello, either way;
    /// past it the connection is dropped (a stranger that connects and says nothing holds a
    /// handshake slot no longer).
    pub link_handshake_timeout_ms: u64,
    /// A link on which nothing arrived for this long is closed (and dialed again): a peer that
    /// stopped (paused, cut off) is noticed. Each side sends a keepalive frame after
    /// `link_keepalive_interval_ms` of silence, so only a dead link stays quiet this long.
    pub link_idle_timeout_ms: u64,
    /// Silence after which a link's writer sends a keepalive frame: raft's heartbeats run only
    /// from leaders, so a link between two followers may carry nothing for a long time.
    pub link_keepalive_interval_ms: u64,
    /// Accepted connections still in their handshake; more are closed at once. A stranger can
    /// hold these slots for `link_handshake_timeout_ms` at most.
    pub link_handshakes_max: usize,
    /// Accepted connections open at once, handshaking or serving; more are closed at once.
    pub link_connections_max: usize,
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
            link_queue_bytes_max: 64 << 20,
            hello_bytes_max: 4 << 10,
            link_handshake_timeout_ms: 3_000,
            link_idle_timeout_ms: 10_000,
            link_keepalive_interval_ms: 1_000,
            link_handshakes_max: 16,
            link_connections_max: 64,
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
        if let Some(problem) = self.link_problem() {
            return Some(problem);
        }
        None
    }

    fn link_problem(&self) -> Option<String> {
        if self.link_queue_frames_max == 0 || self.link_queue_bytes_max == 0 {
            return Some("link_queue_frames_max and link_queue_bytes_max must be above 0".into());
        }
        if self.hello_bytes_max < 256 || self.hello_bytes_max > self.frame_bytes_max {
            return Some("hello_bytes_max must be at least 256 and at most frame_bytes_max".into());
        }
        if self.link_handshake_timeout_ms == 0 || self.link_keepalive_interval_ms == 0 {
            return Some("link_handshake_timeout_ms and link_keepalive_interval_ms must be above 0".into());
        }
        // A live link is never idle that long: keepalives (and heartbeats) come well before.
        let busy_ms = self.link_keepalive_interval_ms.max(self.heartbeat_interval_ms);
        if self.link_idle_timeout_ms < 3 * busy_ms {
            return Some(
                "link_idle_timeout_ms must be at least 3 times link_keepalive_interval_ms and heartbeat_interval_ms"
                    .into(),
            );
        }
        if self.link_handshakes_max == 0 || self.link_connections_max < self.link_handshakes_max {
            return Some("link_handshakes_max must be above 0 and at most link_connections_max".into());
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

/// Who this node is, who its peers are, and how it proves it to them.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub node_id: NodeId,
    /// Every node of the cluster, this one included.
    pub nodes: BTreeMap<NodeId, PeerConfig>,
    pub raft: RaftConfig,
    /// The TLS of every link: this node's certificate and the cluster's CA.
    pub tls: LinkTls,
}

//! What an operator watches of a node's groups: each replica's raft state and the counters of
//! the write path (how full the leader's entries are, how many holds were refused without the
//! log, how many writes went to another node's leader), in the Prometheus text format that the
//! gateway's `/metrics` serves.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use model::{GroupId, ReplicaStatus, Role};

/// Counters of one group on one node, kept by the proposer, the refuser and the write router.
#[derive(Debug, Default)]
pub struct GroupCounters {
    /// Entries this node proposed while it led the group, and the commands in them: their ratio
    /// is the batch size, the number of holds one fsync and one replication round carry.
    pub entries_proposed: AtomicU64,
    pub commands_proposed: AtomicU64,
    /// Holds refused without a log entry: by the leader after a read-index round, and by this
    /// node as a follower after a read point from the leader.
    pub refused_as_leader: AtomicU64,
    pub refused_as_follower: AtomicU64,
    /// Writes this node sent on to the group's leader on another node.
    pub writes_forwarded: AtomicU64,
}

impl GroupCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One metric family: its name, help, type, and a value for each group.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    value: Value,
}

type Value = fn(&ReplicaStatus, &GroupCounters) -> Option<u64>;

/// A family whose value can go up and down (a replica's state).
const fn gauge(name: &'static str, help: &'static str, value: Value) -> Family {
    Family { name, help, kind: "gauge", value }
}

/// A family whose value only grows (one of [`GroupCounters`]).
const fn counter(name: &'static str, help: &'static str, value: Value) -> Family {
    Family { name, help, kind: "counter", value }
}

const FAMILIES: &[Family] = &[
    gauge("boxoffice_raft_leader", "1 if this node leads the group, else 0.", |s, _| {
        Some(u64::from(s.role == Role::Leader))
    }),
    gauge("boxoffice_raft_term", "The group's current term.", |s, _| Some(s.term)),
    gauge("boxoffice_raft_last_log_index", "Index of the last entry in this replica's log.", |s, _| s.last_log_index),
    gauge("boxoffice_raft_applied_index", "Index of the last entry this replica applied.", |s, _| s.applied_index),
    gauge("boxoffice_raft_snapshot_index", "Last index in this replica's snapshot.", |s, _| s.snapshot_index),
    gauge("boxoffice_raft_purged_index", "Last index purged from this replica's log.", |s, _| s.purged_index),
    counter(
        "boxoffice_raft_entries_proposed_total",
        "Raft entries this node proposed as leader (each one fsync and one replication round).",
        |_, c| Some(c.entries_proposed.load(Ordering::Relaxed)),
    ),
    counter(
        "boxoffice_raft_commands_proposed_total",
        "Commands in the entries this node proposed as leader (divided by entries: the batch size).",
        |_, c| Some(c.commands_proposed.load(Ordering::Relaxed)),
    ),
    counter(
        "boxoffice_raft_holds_refused_as_leader_total",
        "Holds refused by this node as leader after a read-index round, without a log entry.",
        |_, c| Some(c.refused_as_leader.load(Ordering::Relaxed)),
    ),
    counter(
        "boxoffice_raft_holds_refused_as_follower_total",
        "Holds refused by this node as follower after a read point from the leader.",
        |_, c| Some(c.refused_as_follower.load(Ordering::Relaxed)),
    ),
    counter(
        "boxoffice_raft_writes_forwarded_total",
        "Writes this node sent on to the group's leader on another node.",
        |_, c| Some(c.writes_forwarded.load(Ordering::Relaxed)),
    ),
];

/// Every family for every group this node hosts; a value a replica does not have yet (no log,
/// no snapshot) is left out.
pub fn render(statuses: &[ReplicaStatus], counters: &BTreeMap<GroupId, std::sync::Arc<GroupCounters>>) -> String {
    let none = GroupCounters::default();
    let mut out = String::new();
    for family in FAMILIES {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", family.name, family.help, family.name, family.kind);
        for status in statuses {
            let counters = counters.get(&status.group).map_or(&none, |c| c.as_ref());
            if let Some(value) = (family.value)(status, counters) {
                let _ = writeln!(out, "{}{{group=\"{}\"}} {value}", family.name, status.group);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn status(group: GroupId, role: Role) -> ReplicaStatus {
        ReplicaStatus {
            group,
            node: 1,
            role,
            term: 3,
            leader: Some(1),
            applied_index: Some(40),
            last_log_index: Some(42),
            snapshot_index: None,
            purged_index: None,
        }
    }

    #[test]
    fn every_group_gets_its_state_and_counters_and_missing_values_are_left_out() {
        let counters = Arc::new(GroupCounters::default());
        GroupCounters::add(&counters.entries_proposed, 2);
        GroupCounters::add(&counters.commands_proposed, 57);
        GroupCounters::add(&counters.refused_as_follower, 5);
        let text = render(&[status(0, Role::Follower), status(1, Role::Leader)], &BTreeMap::from([(1, counters)]));
        for line in [
            "# TYPE boxoffice_raft_leader gauge",
            "boxoffice_raft_leader{group=\"0\"} 0",
            "boxoffice_raft_leader{group=\"1\"} 1",
            "boxoffice_raft_applied_index{group=\"1\"} 40",
            "boxoffice_raft_last_log_index{group=\"0\"} 42",
            "# TYPE boxoffice_raft_commands_proposed_total counter",
            "boxoffice_raft_entries_proposed_total{group=\"1\"} 2",
            "boxoffice_raft_commands_proposed_total{group=\"1\"} 57",
            "boxoffice_raft_commands_proposed_total{group=\"0\"} 0",
            "boxoffice_raft_holds_refused_as_follower_total{group=\"1\"} 5",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("boxoffice_raft_snapshot_index{"), "no snapshot yet, no value:\n{text}");
    }
}

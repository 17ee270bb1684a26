//! The chaos runner and history checker: break real clusters, and prove no seat is sold twice
//! and nothing acknowledged is lost.
//!
//! Modelled on Jepsen and etcd's robustness tests. A run starts `boxoffice node` processes with
//! a fault-injecting proxy on every link between them, drives fans through the gateways while a
//! seeded schedule kills, pauses, partitions, delays, skews and fills the disks of nodes, records
//! every request and answer into a history, heals everything, reads the final state, and checks.
//!
//! Layout:
//! - [`history`]: the history and final-state records (the checker's input, saved as JSON);
//! - [`checker`] and [`report`]: the invariants checked over a history, and their verdicts;
//! - [`proxy`]: the fault-injecting proxy on one link;
//! - [`cluster`]: the harness's cluster with a proxy on every link;
//! - [`faults`]: the seeded schedule, and doing and undoing each fault;
//! - [`workload`]: the fans and the recorder;
//! - [`room`]: the waiting room's fans (over QUIC), its admin samples and its recorder;
//! - [`run`]: one run from start to verdict.
//!
//! Like `tests/`, it sees the system only as clients and operators do: it depends on `model`
//! and on the cluster harness (`tests/harness`), which starts, kills, pauses and resumes the
//! node processes.

pub mod checker;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod proxy;
pub mod report;
pub mod room;
pub mod run;
pub mod workload;

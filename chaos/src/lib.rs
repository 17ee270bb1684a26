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
//! - [`cluster`]: node processes and the levers to break them;
//! - [`faults`]: the seeded schedule, and doing and undoing each fault;
//! - [`workload`]: the fans and the recorder;
//! - [`run`]: one run from start to verdict.
//!
//! Like `tests/`, it sees the system only as clients and operators do: it depends on `model`
//! and nothing else of the workspace.

pub mod bench;
pub mod checker;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod proxy;
pub mod report;
pub mod run;
pub mod workload;

/// Resolves with the signal's name on SIGINT or SIGTERM. The binaries race their work against it
/// so that the work is dropped, not killed: dropping a cluster or a peer stops the processes it
/// started, which a killed runner would leave running.
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        // Without handlers the default actions stay: nothing to wait for here.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

//! The fault schedule and how each fault is done to a cluster and undone.
//!
//! The schedule is drawn from the run's seed: rounds in which every enabled kind appears once,
//! in a seeded order, each with a seeded duration, target choice and strength. The same seed
//! gives the same schedule; which node a choice lands on can still differ between runs where it
//! depends on who leads at the time (as "kill the leader" must).

use std::fmt;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cluster::Cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the hot event's group leader, restart it later.
    KillLeader,
    /// SIGKILL a node that does not lead the hot event's group, restart it later.
    KillFollower,
    /// SIGSTOP a node, SIGCONT it later.
    Pause,
    /// Cut every link of the hot event's group leader: it is alone, the others are a majority.
    IsolateLeader,
    /// Cut every link of a node that does not lead the hot group: a minority of one.
    IsolateFollower,
    /// Cut one link only: the third node still sees both ends.
    Bridge,
    /// Delay every message on every link.
    Delay,
    /// Lose a share of the messages on every link.
    Loss,
    /// Move one node's clock forward or back.
    ClockSkew,
    /// Make one node's log syncs slow.
    SlowDisk,
    /// Make one node's log writes fail as on a full disk: the node stops; it is restarted.
    FullDisk,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        FaultKind::KillLeader,
        FaultKind::KillFollower,
        FaultKind::Pause,
        FaultKind::IsolateLeader,
        FaultKind::IsolateFollower,
        FaultKind::Bridge,
        FaultKind::Delay,
        FaultKind::Loss,
        FaultKind::ClockSkew,
        FaultKind::SlowDisk,
        FaultKind::FullDisk,
    ];
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        f.write_str(&name)
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub kind: FaultKind,
    pub duration_ms: u64,
    /// Picks among the candidate nodes (modulo their number).
    pub choice: u64,
    /// How strong, from 0 to 999: mapped to a delay, a loss rate, a clock offset.
    pub strength: u64,
}

/// Fault durations, and the quiet time after each fault is healed.
const FAULT_DURATION_MIN_MS: u64 = 800;
const FAULT_DURATION_MAX_MS: u64 = 3_000;
pub const QUIET_AFTER_FAULT_MS: u64 = 700;

pub struct Schedule {
    rng: StdRng,
    kinds: Vec<FaultKind>,
    round: Vec<FaultKind>,
}

impl Schedule {
    pub fn new(seed: u64, kinds: Vec<FaultKind>) -> Schedule {
        assert!(!kinds.is_empty(), "a schedule needs at least one kind of fault");
        Schedule { rng: StdRng::seed_from_u64(seed), kinds, round: Vec::new() }
    }
}

impl Iterator for Schedule {
    type Item = Planned;

    fn next(&mut self) -> Option<Planned> {
        if self.round.is_empty() {
            self.round = self.kinds.clone();
            self.round.shuffle(&mut self.rng);
        }
        let kind = self.round.pop().expect("a round is refilled when empty");
        Some(Planned {
            kind,
            duration_ms: self.rng.gen_range(FAULT_DURATION_MIN_MS..=FAULT_DURATION_MAX_MS),
            choice: self.rng.gen(),
            strength: self.rng.gen_range(0..1000),
        })
    }
}

/// A fault in force, and what it takes to undo it.
#[derive(Debug, Clone)]
pub enum Active {
    Killed(u64),
    Paused(u64),
    Cut(Vec<(u64, u64)>),
    AllLinks,
    Faulted(u64),
    /// Nothing could be done (e.g. no node to pick): nothing to undo.
    Nothing,
}

/// What a fault was done to, for the run's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRecord {
    pub kind: FaultKind,
    pub target: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

fn pick(nodes: &[u64], choice: u64) -> Option<u64> {
    (!nodes.is_empty()).then(|| nodes[(choice % nodes.len() as u64) as usize])
}

/// Does `fault` to the cluster. `hot_leader` is the current leader of the hot event's group.
pub async fn apply(cluster: &mut Cluster, fault: &Planned, hot_leader: Option<u64>) -> (Active, String) {
    let serving = cluster.serving();
    let followers: Vec<u64> = serving.iter().copied().filter(|&n| Some(n) != hot_leader).collect();
    let leader = hot_leader.filter(|l| serving.contains(l)).or_else(|| pick(&serving, fault.choice));
    let s = fault.strength;
    let done = match fault.kind {
        FaultKind::KillLeader => leader.map(|n| {
            cluster.kill(n);
            Active::Killed(n)
        }),
        FaultKind::KillFollower => pick(&followers, fault.choice).map(|n| {
            cluster.kill(n);
            Active::Killed(n)
        }),
        FaultKind::Pause => pick(&serving, fault.choice).map(|n| {
            cluster.pause(n);
            Active::Paused(n)
        }),
        FaultKind::IsolateLeader => leader.map(|n| isolate(cluster, n)),
        FaultKind::IsolateFollower => pick(&followers, fault.choice).map(|n| isolate(cluster, n)),
        FaultKind::Bridge => {
            let links: Vec<(u64, u64)> = cluster.links.iter().map(|(k, _)| k).collect();
            pick(&(0..links.len() as u64).collect::<Vec<_>>(), fault.choice).map(|i| {
                let (a, b) = links[i as usize];
                cut(cluster, vec![(a, b)])
            })
        }
        FaultKind::Delay => {
            cluster.links.iter().for_each(|(_, link)| link.set_delay(20 + s / 5));
            Some(Active::AllLinks)
        }
        FaultKind::Loss => {
            cluster.links.iter().for_each(|(_, link)| link.set_loss(50 + (s as u32) / 4));
            Some(Active::AllLinks)
        }
        FaultKind::ClockSkew => {
            let offset_ms = (s as i64 - 500) * 60; // up to 30 s either way
            node_faults(cluster, pick(&serving, fault.choice), json!({"clockOffsetMs": offset_ms})).await
        }
        FaultKind::SlowDisk => {
            node_faults(cluster, pick(&serving, fault.choice), json!({"logWriteDelayMs": 20 + s / 4})).await
        }
        FaultKind::FullDisk => node_faults(cluster, pick(&serving, fault.choice), json!({"logWriteFail": true})).await,
    };
    let active = done.unwrap_or(Active::Nothing);
    let target = describe(&active);
    (active, target)
}

async fn node_faults(cluster: &Cluster, node: Option<u64>, faults: serde_json::Value) -> Option<Active> {
    let node = node?;
    cluster.faults(node, faults).await.ok().map(|_| Active::Faulted(node))
}

fn isolate(cluster: &Cluster, node: u64) -> Active {
    let links = cluster.links.iter().map(|(k, _)| k).filter(|(a, b)| *a == node || *b == node).collect();
    cut(cluster, links)
}

fn cut(cluster: &Cluster, links: Vec<(u64, u64)>) -> Active {
    for &(a, b) in &links {
        if let Some(link) = cluster.links.link(a, b) {
            link.cut();
        }
    }
    Active::Cut(links)
}

fn describe(active: &Active) -> String {
    match active {
        Active::Killed(n) | Active::Paused(n) | Active::Faulted(n) => format!("node {n}"),
        Active::Cut(links) => links.iter().map(|(a, b)| format!("{a}-{b}")).collect::<Vec<_>>().join(","),
        Active::AllLinks => "all links".into(),
        Active::Nothing => "none".into(),
    }
}

/// Undoes a fault.
pub async fn heal(cluster: &mut Cluster, active: &Active) -> anyhow::Result<()> {
    match active {
        Active::Killed(n) => cluster.start_node(*n)?,
        Active::Paused(n) => cluster.resume(*n),
        Active::Cut(links) => {
            for &(a, b) in links {
                if let Some(link) = cluster.links.link(a, b) {
                    link.heal();
                }
            }
        }
        Active::AllLinks => cluster.links.iter().for_each(|(_, link)| link.heal()),
        Active::Faulted(n) => {
            // A node whose disk "filled up" has stopped; it comes back clean when restarted.
            let clear = json!({"clockOffsetMs": 0, "logWriteDelayMs": 0, "logWriteFail": false});
            if !cluster.is_down(*n) {
                let _ = cluster.faults(*n, clear).await;
            }
        }
        Active::Nothing => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_schedule_and_every_kind_comes_round() {
        let first: Vec<Planned> = Schedule::new(7, FaultKind::ALL.to_vec()).take(44).collect();
        let again: Vec<Planned> = Schedule::new(7, FaultKind::ALL.to_vec()).take(44).collect();
        let other: Vec<Planned> = Schedule::new(8, FaultKind::ALL.to_vec()).take(44).collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
        for kind in FaultKind::ALL {
            assert_eq!(first.iter().filter(|p| p.kind == kind).count(), 4, "{kind} fires once a round");
        }
        assert!(first.iter().all(|p| (FAULT_DURATION_MIN_MS..=FAULT_DURATION_MAX_MS).contains(&p.duration_ms)));
    }

    #[test]
    fn fault_kinds_have_kebab_case_names() {
        assert_eq!(FaultKind::KillLeader.to_string(), "kill-leader");
        assert_eq!(FaultKind::FullDisk.to_string(), "full-disk");
    }
}

//! The fault schedule and how each fault is done to a cluster and undone.
//!
//! The schedule is drawn from the run's seed: rounds in which every enabled kind appears once,
//! in a seeded order, each with a seeded duration, target choice and strength. The same seed
//! gives the same schedule; which node a choice lands on can still differ between runs where it
//! depends on who leads at the time (as "kill the leader" must) or where the waiting room's fans
//! are (as "kill the room's busiest node" must).

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
    /// SIGKILL the leader of the hot event's group (or of the waiting room's), restart it later.
    KillLeader,
    /// SIGKILL a node that does not lead that group, restart it later.
    KillFollower,
    /// SIGSTOP a node, SIGCONT it later.
    Pause,
    /// Cut every link of the hot event's (or the room's) group leader: it is alone, the others
    /// are a majority.
    IsolateLeader,
    /// Cut every link of a node that does not lead that group: a minority of one.
    IsolateFollower,
    /// Cut one link only: the third node still sees both ends.
    Bridge,
    /// Delay every message on every link.
    Delay,
    /// Lose a share of the messages on every link (behind TLS, each loss ends its connection).
    Loss,
    /// Move one node's clock forward or back.
    ClockSkew,
    /// Make one node's log syncs slow.
    SlowDisk,
    /// Make one node's log writes fail as on a full disk: the node stops; it is restarted.
    FullDisk,
    /// SIGKILL the node holding the most connected fans of the waiting room (by the room's admin
    /// view), restart it later: its fans must resume elsewhere with their tickets.
    KillRoomBusiest,
}

impl FaultKind {
    pub const ALL: [FaultKind; 12] = [
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
        FaultKind::KillRoomBusiest,
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
    /// Every link of one node cut: the others still reach each other.
    Isolated {
        node: u64,
        links: Vec<(u64, u64)>,
    },
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
    /// The nodes it touched (see [`touched`]).
    #[serde(default)]
    pub nodes: Vec<u64>,
    pub start_ms: u64,
    pub end_ms: u64,
}

fn pick(nodes: &[u64], choice: u64) -> Option<u64> {
    (!nodes.is_empty()).then(|| nodes[(choice % nodes.len() as u64) as usize])
}

/// The nodes faults that aim at a role are done to, as the runner found them just before.
#[derive(Debug, Clone, Default)]
pub struct Aims {
    /// The current leaders of the groups leader faults aim at (the hot event's, then the
    /// waiting room's), where known; one is picked by the fault's choice.
    pub leaders: Vec<u64>,
    /// The node whose room fans are most connected, if the room's admin view could tell.
    pub room_busiest: Option<u64>,
}

/// Does `fault` to the cluster, aiming role faults at `aims`.
pub async fn apply(cluster: &mut Cluster, fault: &Planned, aims: &Aims) -> (Active, String) {
    let serving = cluster.serving();
    let leaders: Vec<u64> = aims.leaders.iter().copied().filter(|l| serving.contains(l)).collect();
    // The high bits pick the group, the low ones the node: the two choices stay apart.
    let leader = pick(&leaders, fault.choice >> 32).or_else(|| pick(&serving, fault.choice));
    let followers: Vec<u64> = serving.iter().copied().filter(|&n| Some(n) != leader).collect();
    let busiest = aims.room_busiest.filter(|n| serving.contains(n)).or_else(|| pick(&serving, fault.choice));
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
        FaultKind::KillRoomBusiest => busiest.map(|n| {
            cluster.kill(n);
            Active::Killed(n)
        }),
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
    let links: Vec<(u64, u64)> =
        cluster.links.iter().map(|(k, _)| k).filter(|(a, b)| *a == node || *b == node).collect();
    match cut(cluster, links) {
        Active::Cut(links) => Active::Isolated { node, links },
        other => other,
    }
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
        Active::Cut(links) | Active::Isolated { links, .. } => {
            links.iter().map(|(a, b)| format!("{a}-{b}")).collect::<Vec<_>>().join(",")
        }
        Active::AllLinks => "all links".into(),
        Active::Nothing => "none".into(),
    }
}

/// The nodes a fault in force touches, of `all`: the node killed, paused, faulted or cut off,
/// both ends of a link cut, every node when every link is faulted.
pub fn touched(active: &Active, all: &[u64]) -> Vec<u64> {
    let mut nodes = match active {
        Active::Killed(n) | Active::Paused(n) | Active::Faulted(n) | Active::Isolated { node: n, .. } => vec![*n],
        Active::Cut(links) => links.iter().flat_map(|&(a, b)| [a, b]).collect(),
        Active::AllLinks => all.to_vec(),
        Active::Nothing => Vec::new(),
    };
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// Undoes a fault.
pub async fn heal(cluster: &mut Cluster, active: &Active) -> anyhow::Result<()> {
    match active {
        Active::Killed(n) => cluster.start_node(*n)?,
        Active::Paused(n) => cluster.resume(*n),
        Active::Cut(links) | Active::Isolated { links, .. } => {
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
        let first: Vec<Planned> = Schedule::new(7, FaultKind::ALL.to_vec()).take(48).collect();
        let again: Vec<Planned> = Schedule::new(7, FaultKind::ALL.to_vec()).take(48).collect();
        let other: Vec<Planned> = Schedule::new(8, FaultKind::ALL.to_vec()).take(48).collect();
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
        assert_eq!(FaultKind::KillRoomBusiest.to_string(), "kill-room-busiest");
    }

    #[test]
    fn a_fault_touches_its_nodes_once_each() {
        assert_eq!(touched(&Active::Killed(2), &[1, 2, 3]), vec![2]);
        assert_eq!(touched(&Active::Cut(vec![(1, 2), (2, 3)]), &[1, 2, 3]), vec![1, 2, 3]);
        let isolated = Active::Isolated { node: 2, links: vec![(1, 2), (2, 3)] };
        assert_eq!(touched(&isolated, &[1, 2, 3]), vec![2], "the others still reach each other");
        assert_eq!(describe(&isolated), "1-2,2-3");
        assert_eq!(touched(&Active::Cut(vec![(1, 3)]), &[1, 2, 3]), vec![1, 3]);
        assert_eq!(touched(&Active::AllLinks, &[1, 2, 3]), vec![1, 2, 3]);
        assert!(touched(&Active::Nothing, &[1, 2, 3]).is_empty());
    }
}

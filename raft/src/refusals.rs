//! Follower-side refusals: a hold that reaches a follower's gateway for seats its replica
//! already shows as taken is refused there, after one read-index round with the leader shared by
//! every such hold, instead of being forwarded to the leader one by one.
//!
//! A refusal is a read ("these seats are taken"), and raft lets a follower serve a linearizable
//! read (the follower read of etcd and TiKV): the follower asks the leader for a read point; the
//! leader confirms it still leads with a heartbeat round to a quorum and answers with its read
//! index and its group time; the follower waits until its replica has applied that index, and
//! reads. A hold is judged against the leader's time, or the stamp of the last entry applied
//! here if that is later, never against this node's clock. Every write acknowledged before the
//! hold arrived is at or below the read index, so the refusal reflects all of them.
//!
//! Anything unclear (no leader known, this node leads, the round failed or timed out, the seats
//! turned out free) sends the hold on to the leader like any write: this path only ever saves
//! work, it never decides a hold that the leader would have granted.

use std::sync::Arc;
use std::time::Duration;

use model::{Command, GroupId, Millis, NodeId, TicketId};
use tokio::sync::{mpsc, oneshot};

use crate::host::{plainly_taken, StateReader};
use crate::link::Peers;
use crate::metrics::GroupCounters;
use crate::rounds;
use crate::types::Raft;
use crate::wire::{ReadPoint, Request, Response};

/// Read-index rounds a group's follower keeps in flight; holds that come meanwhile wait for the
/// next round and share it.
const ROUNDS_IN_FLIGHT_MAX: usize = 4;

/// What became of a hold that looked refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Taken as of a read point of the leader: refuse, naming these tickets.
    Taken(Vec<TicketId>),
    /// Not decided here: send the hold to the leader.
    Forward,
}

struct Doubt {
    hold: Command,
    reply: oneshot::Sender<Verdict>,
}

/// Limits of one group's refuser.
#[derive(Debug, Clone, Copy)]
pub struct RefusalLimits {
    /// Holds one round decides.
    pub round_holds_max: usize,
    /// Holds waiting for a round; past it, holds go to the leader.
    pub queue_holds_max: usize,
    /// How long a round may take (the leader's answer, then this replica catching up).
    pub round_timeout_ms: u64,
}

/// The way into one group's follower-side refusals.
#[derive(Clone)]
pub struct Refuser {
    queue: mpsc::Sender<Doubt>,
}

/// What a round works with.
#[derive(Clone)]
struct Replica {
    group: GroupId,
    me: NodeId,
    raft: Raft,
    reader: Arc<dyn StateReader>,
    peers: Arc<Peers>,
    round_timeout: Duration,
    counters: Arc<GroupCounters>,
}

impl Refuser {
    pub fn start(
        group: GroupId,
        me: NodeId,
        raft: Raft,
        reader: Arc<dyn StateReader>,
        peers: Arc<Peers>,
        counters: Arc<GroupCounters>,
        limits: RefusalLimits,
    ) -> Refuser {
        assert!(limits.queue_holds_max > 0, "refusals need a queue");
        let (queue, doubts) = mpsc::channel(limits.queue_holds_max);
        let round_timeout = Duration::from_millis(limits.round_timeout_ms);
        let replica = Replica { group, me, raft, reader, peers, round_timeout, counters };
        let round = move |doubts| decide(replica.clone(), doubts);
        tokio::spawn(rounds::serve(doubts, ROUNDS_IN_FLIGHT_MAX, limits.round_holds_max, round));
        Refuser { queue }
    }

    /// Decides a hold whose tickets this replica shows as taken: refused here, or forwarded.
    pub async fn check(&self, hold: &Command) -> Verdict {
        let (reply, verdict) = oneshot::channel();
        let doubt = Doubt { hold: hold.clone(), reply };
        if self.queue.try_send(doubt).is_err() {
            return Verdict::Forward;
        }
        verdict.await.unwrap_or(Verdict::Forward)
    }
}

async fn decide(replica: Replica, round: Vec<Doubt>) {
    let at = replica.read_point().await;
    for doubt in round {
        let verdict = match at {
            Some(at) => replica.verdict(&doubt, at),
            None => Verdict::Forward,
        };
        let _ = doubt.reply.send(verdict);
    }
}

impl Replica {
    /// Gets a read point from the leader and waits until this replica has applied it; the
    /// group time to judge holds at, or `None` if that could not be done.
    async fn read_point(&self) -> Option<Millis> {
        let leader = self.raft.metrics().borrow().current_leader?;
        if leader == self.me {
            return None;
        }
        let request = Request::ReadIndex { group: self.group };
        let ReadPoint { index, at } = match self.peers.call(leader, request, self.round_timeout).await {
            Ok(Response::ReadIndex(Ok(point))) => point,
            _ => return None,
        };
        if let Some(index) = index {
            let wait = self.raft.wait(Some(self.round_timeout));
            wait.applied_index_at_least(Some(index), "follower read point").await.ok()?;
        }
        Some(at)
    }

    fn verdict(&self, doubt: &Doubt, at: Millis) -> Verdict {
        // The stamps of entries applied past the read index are group time too, and later.
        let at = at.max(self.reader.last_applied_at());
        match plainly_taken(self.reader.as_ref(), &doubt.hold, at) {
            Some(taken) => {
                GroupCounters::add(&self.counters.refused_as_follower, 1);
                Verdict::Taken(taken)
            }
            None => Verdict::Forward,
        }
    }
}

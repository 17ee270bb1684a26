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

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use model::{Command, GroupId, Millis, NodeId, TicketId};
use tokio::sync::{mpsc, oneshot};

use crate::consensus::Core;
use crate::link::Peers;
use crate::metrics::GroupCounters;
use crate::rounds;
use crate::seams::{plainly_taken, StateReader};
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

/// Asks a group's leader for a read point.
pub trait LeaderReads: Clone + Send + Sync + 'static {
    /// The leader's read point for the group, or `None` if it did not give one in time.
    fn read_point(&self, leader: NodeId) -> impl Future<Output = Option<ReadPoint>> + Send;
}

/// Read points asked over the node's links.
#[derive(Clone)]
pub struct LinkedLeader {
    pub group: GroupId,
    pub peers: Arc<Peers>,
    pub timeout: Duration,
}

impl LeaderReads for LinkedLeader {
    async fn read_point(&self, leader: NodeId) -> Option<ReadPoint> {
        match self.peers.call(leader, Request::ReadIndex { group: self.group }, self.timeout).await {
            Ok(Response::ReadIndex(Ok(point))) => Some(point),
            _ => None,
        }
    }
}

/// The way into one group's follower-side refusals.
#[derive(Clone)]
pub struct Refuser {
    queue: mpsc::Sender<Doubt>,
}

/// What a round works with.
#[derive(Clone)]
struct Replica<C: Core, L: LeaderReads> {
    me: NodeId,
    core: C,
    leader: L,
    reader: Arc<dyn StateReader>,
    round_timeout: Duration,
    counters: Arc<GroupCounters>,
}

impl Refuser {
    pub fn start<C: Core, L: LeaderReads>(
        me: NodeId,
        core: C,
        leader: L,
        reader: Arc<dyn StateReader>,
        counters: Arc<GroupCounters>,
        limits: RefusalLimits,
    ) -> Refuser {
        assert!(limits.queue_holds_max > 0, "refusals need a queue");
        let (queue, doubts) = mpsc::channel(limits.queue_holds_max);
        let round_timeout = Duration::from_millis(limits.round_timeout_ms);
        let replica = Replica { me, core, leader, reader, round_timeout, counters };
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

async fn decide<C: Core, L: LeaderReads>(replica: Replica<C, L>, round: Vec<Doubt>) {
    let at = replica.read_point().await;
    for doubt in round {
        let verdict = match at {
            Some(at) => replica.verdict(&doubt, at),
            None => Verdict::Forward,
        };
        let _ = doubt.reply.send(verdict);
    }
}

impl<C: Core, L: LeaderReads> Replica<C, L> {
    /// Gets a read point from the leader and waits until this replica has applied it; the
    /// group time to judge holds at, or `None` if that could not be done.
    async fn read_point(&self) -> Option<Millis> {
        let leader = self.core.leader()?;
        if leader == self.me {
            return None;
        }
        let ReadPoint { index, at } = self.leader.read_point(leader).await?;
        if let Some(index) = index {
            self.core.applied(index, self.round_timeout).await.ok()?;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use model::{BookingId, Outcome, Query, QueryResult};

    use super::*;
    use crate::consensus::testing::MemCore;
    use crate::seams::SeamError;

    /// The leader as a follower reaches it: a read point at a given index and time, or none.
    #[derive(Clone, Default)]
    struct Leader {
        point: Arc<Mutex<Option<ReadPoint>>>,
        asked: Arc<Mutex<u32>>,
    }

    impl LeaderReads for Leader {
        async fn read_point(&self, _: NodeId) -> Option<ReadPoint> {
            *self.asked.lock().unwrap() += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
            *self.point.lock().unwrap()
        }
    }

    /// Tickets taken up to a time: `(ticket, until)`; `None` means sold.
    #[derive(Default)]
    struct Seats(Mutex<Vec<(TicketId, Option<Millis>)>>);

    impl StateReader for Seats {
        fn query(&self, _: &Query) -> Result<QueryResult, SeamError> {
            Err(SeamError::not_found("no queries in these tests"))
        }
        fn last_applied_at(&self) -> Millis {
            0
        }
        fn taken(&self, _: BookingId, tickets: &[TicketId], at: Millis) -> Result<Vec<TicketId>, SeamError> {
            let seats = self.0.lock().unwrap();
            let taken: BTreeSet<TicketId> =
                seats.iter().filter(|(_, until)| until.is_none_or(|u| at < u)).map(|(t, _)| *t).collect();
            Ok(tickets.iter().copied().filter(|t| taken.contains(t)).collect())
        }
    }

    fn hold(tickets: Vec<TicketId>) -> Command {
        let booking = BookingId { event: 1, nonce: 1 };
        Command::Hold { booking, user: 7, tickets, ttl_ms: 1_000, fan_tickets_max: 0, idempotency: None }
    }

    fn follower(leader: &Leader, seats: Arc<Seats>) -> (MemCore, Refuser) {
        let core = MemCore::new(true, |b| vec![Outcome::NoSeats; b.commands.len()]);
        *core.leader.lock().unwrap() = Some(1);
        let limits = RefusalLimits { round_holds_max: 64, queue_holds_max: 64, round_timeout_ms: 500 };
        let refuser = Refuser::start(2, core.clone(), leader.clone(), seats, Arc::default(), limits);
        (core, refuser)
    }

    /// Holds for taken seats that come together are refused after one read point shared by
    /// all of them.
    #[tokio::test]
    async fn holds_for_taken_seats_share_one_read_point_and_are_refused() {
        let leader = Leader::default();
        *leader.point.lock().unwrap() = Some(ReadPoint { index: Some(0), at: 100 });
        let seats = Arc::new(Seats::default());
        seats.0.lock().unwrap().push((3, None));
        let (_, refuser) = follower(&leader, seats);
        let holds: Vec<Command> = (0..20).map(|_| hold(vec![3])).collect();
        let verdicts = futures::future::join_all(holds.iter().map(|h| refuser.check(h))).await;
        assert!(verdicts.iter().all(|v| v == &Verdict::Taken(vec![3])));
        assert!(*leader.asked.lock().unwrap() < 20, "{} read points for 20 holds", leader.asked.lock().unwrap());
    }

    /// A hold is judged at the leader's group time: a hold that ended by then is forwarded.
    #[tokio::test]
    async fn a_hold_that_ended_by_the_leaders_time_is_forwarded() {
        let leader = Leader::default();
        *leader.point.lock().unwrap() = Some(ReadPoint { index: None, at: 2_000 });
        let seats = Arc::new(Seats::default());
        seats.0.lock().unwrap().push((3, Some(1_500)));
        let (_, refuser) = follower(&leader, seats);
        assert_eq!(refuser.check(&hold(vec![3])).await, Verdict::Forward);
    }

    /// No read point (the leader is unreachable), or this replica cannot apply up to it in
    /// time: the hold goes to the leader, never refused on a guess.
    #[tokio::test]
    async fn without_a_read_point_applied_here_the_hold_is_forwarded() {
        let leader = Leader::default();
        let seats = Arc::new(Seats::default());
        seats.0.lock().unwrap().push((3, None));
        let (_, refuser) = follower(&leader, seats.clone());
        assert_eq!(refuser.check(&hold(vec![3])).await, Verdict::Forward, "no read point");
        *leader.point.lock().unwrap() = Some(ReadPoint { index: Some(5), at: 0 });
        assert_eq!(refuser.check(&hold(vec![3])).await, Verdict::Forward, "index 5 never applied here");
    }

    /// A replica that believes it leads does not refuse as a follower.
    #[tokio::test]
    async fn a_replica_that_leads_forwards_to_its_proposer() {
        let leader = Leader::default();
        *leader.point.lock().unwrap() = Some(ReadPoint { index: None, at: 0 });
        let seats = Arc::new(Seats::default());
        seats.0.lock().unwrap().push((3, None));
        let (core, refuser) = follower(&leader, seats);
        *core.leader.lock().unwrap() = Some(2);
        assert_eq!(refuser.check(&hold(vec![3])).await, Verdict::Forward);
        assert_eq!(*leader.asked.lock().unwrap(), 0);
    }
}

//! Shared read-index rounds: every linearizable read of a group that comes while a round is out
//! waits for the next one, so a leader confirms its leadership once for many reads.
//!
//! openraft's `get_read_log_id` sends a heartbeat to every follower and waits for a quorum: two
//! messages out and two back per call. Under a hot on-sale thousands of refusals a second need
//! a read point (the leader's own, and followers' through `refusals`); one round each would
//! cost more messages than the holds themselves. A read that joins a round must not use one
//! that began before it arrived (the round's read index could miss a write acknowledged in
//! between), so a round takes only the reads queued when it starts.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::consensus::Core;
use crate::rounds;
use crate::wire::Refusal;

/// Rounds a group keeps in flight; reads that come meanwhile share the next.
const ROUNDS_IN_FLIGHT_MAX: usize = 2;
/// Reads one round answers; more wait for the next round.
const ROUND_READS_MAX: usize = 4_096;
/// Reads waiting for a round; past it, a read fails as unavailable rather than queue forever.
const QUEUE_READS_MAX: usize = 65_536;

type Waiter = oneshot::Sender<Result<Option<u64>, Refusal>>;

/// The way into one group's read-index rounds.
#[derive(Clone)]
pub struct ReadRounds<C: Core> {
    queue: mpsc::Sender<Waiter>,
    core: C,
    /// How long `ensure_linearizable` waits for this replica to apply up to a read index.
    apply_wait: Duration,
}

impl<C: Core> ReadRounds<C> {
    pub fn start(core: C, apply_wait: Duration) -> ReadRounds<C> {
        let (queue, waiters) = mpsc::channel(QUEUE_READS_MAX);
        let rounds = core.clone();
        let serve =
            rounds::serve(waiters, ROUNDS_IN_FLIGHT_MAX, ROUND_READS_MAX, move |round| answer(rounds.clone(), round));
        tokio::spawn(serve);
        ReadRounds { queue, core, apply_wait }
    }

    /// The index a linearizable read must see applied (`None`: nothing committed yet), from a
    /// round that began after this call: this node led the group, confirmed by a quorum.
    pub async fn read_index(&self) -> Result<Option<u64>, Refusal> {
        let (waiter, answer) = oneshot::channel();
        self.queue.try_send(waiter).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refusal::Unavailable("too many reads waiting: overloaded".into()),
            mpsc::error::TrySendError::Closed(_) => Refusal::ShuttingDown,
        })?;
        answer.await.map_err(|_| Refusal::ShuttingDown)?
    }

    /// Like openraft's `ensure_linearizable`: a read index from a shared round, then this
    /// replica's state machine caught up with it.
    pub async fn ensure_linearizable(&self) -> Result<(), Refusal> {
        if let Some(index) = self.read_index().await? {
            self.core.applied(index, self.apply_wait).await?;
        }
        Ok(())
    }
}

async fn answer<C: Core>(core: C, round: Vec<Waiter>) {
    let result = core.read_index().await;
    for waiter in round {
        let _ = waiter.send(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::testing::MemCore;

    /// Reads that come while a round is out share the next one: many reads, few rounds.
    #[tokio::test]
    async fn reads_that_come_together_share_a_round() {
        let core = MemCore::new(true, |batch| vec![model::Outcome::NoSeats; batch.commands.len()]);
        let reads = ReadRounds::start(core.clone(), Duration::from_secs(1));
        let all = futures::future::join_all((0..200).map(|_| reads.ensure_linearizable())).await;
        assert!(all.iter().all(|r| r.is_ok()));
        assert!(core.read_rounds() < 200, "{} rounds for 200 reads", core.read_rounds());
    }

    /// A replica that no longer leads refuses every read of the round, naming no stale leader.
    #[tokio::test]
    async fn a_replica_that_lost_its_leadership_refuses_reads() {
        let core = MemCore::new(true, |_| vec![]);
        *core.leads.lock().unwrap() = false;
        let reads = ReadRounds::start(core, Duration::from_secs(1));
        assert_eq!(reads.ensure_linearizable().await, Err(Refusal::NotLeader { leader: None }));
    }
}

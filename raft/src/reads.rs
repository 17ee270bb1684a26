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

use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::rounds;
use crate::types::Raft;
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
pub struct ReadRounds {
    queue: mpsc::Sender<Waiter>,
    raft: Raft,
    /// How long `ensure_linearizable` waits for this replica to apply up to a read index.
    apply_wait: Duration,
}

impl ReadRounds {
    pub fn start(raft: Raft, apply_wait: Duration) -> ReadRounds {
        let (queue, waiters) = mpsc::channel(QUEUE_READS_MAX);
        let rounds = raft.clone();
        let serve =
            rounds::serve(waiters, ROUNDS_IN_FLIGHT_MAX, ROUND_READS_MAX, move |round| answer(rounds.clone(), round));
        tokio::spawn(serve);
        ReadRounds { queue, raft, apply_wait }
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
            let applied = self.raft.wait(Some(self.apply_wait)).applied_index_at_least(Some(index), "read index").await;
            applied.map_err(|e| Refusal::Unavailable(format!("applying up to the read index: {e}")))?;
        }
        Ok(())
    }
}

async fn answer(raft: Raft, round: Vec<Waiter>) {
    let result = match raft.get_read_log_id().await {
        Ok((read, _applied)) => Ok(read.map(|log_id| log_id.index)),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
            Err(Refusal::NotLeader { leader: f.leader_id })
        }
        Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => Err(Refusal::Unavailable(e.to_string())),
        Err(RaftError::Fatal(fatal)) => Err(Refusal::Unavailable(fatal.to_string())),
    };
    for waiter in round {
        let _ = waiter.send(result.clone());
    }
}

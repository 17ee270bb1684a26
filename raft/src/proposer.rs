//! Leader-side batching: the commands of a group that arrive while earlier batches are being
//! written and replicated go together into the next raft entry.
//!
//! One task per group takes commands from a bounded queue. It keeps at most
//! `batches_in_flight_max` entries proposed and not yet applied; whenever a slot is free it
//! takes everything queued (up to `batch_commands_max`), stamps it once with the group clock and
//! proposes it as one entry. Under load the queue fills while the slots are busy, so one fsync
//! and one round of replication carry many commands; when idle a command goes alone at once.
//! Apply answers each command of an entry in order, and each waiting caller gets its own answer.

use std::sync::Arc;

use model::{Batch, Command, Millis, Outcome};
use openraft::error::ClientWriteError;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::clock::{Clock, GroupClock};
use crate::host::StateReader;
use crate::types::Raft;
use crate::wire::Refusal;

/// Limits of one group's proposer.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub batch_commands_max: usize,
    pub batches_in_flight_max: usize,
    pub queue_commands_max: usize,
}

struct Pending {
    command: Command,
    reply: oneshot::Sender<Result<Outcome, Refusal>>,
}

/// The way into a group's proposer.
#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
}

/// What the proposer task of a group works with.
struct Group {
    raft: Raft,
    reader: Arc<dyn StateReader>,
    stamps: Arc<GroupClock>,
    clock: Arc<Clock>,
}

impl Proposer {
    pub fn start(
        raft: Raft,
        reader: Arc<dyn StateReader>,
        stamps: Arc<GroupClock>,
        clock: Arc<Clock>,
        limits: BatchLimits,
    ) -> Proposer {
        assert!(limits.batch_commands_max > 0 && limits.batches_in_flight_max > 0, "batches need room");
        let (queue, pending) = mpsc::channel(limits.queue_commands_max);
        tokio::spawn(run(Group { raft, reader, stamps, clock }, pending, limits));
        Proposer { queue }
    }

    /// Proposes one command and waits for what apply returned.
    pub async fn propose(&self, command: Command) -> Result<Outcome, Refusal> {
        let (reply, answer) = oneshot::channel();
        self.queue.try_send(Pending { command, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refusal::Unavailable("too many commands waiting: overloaded".into()),
            mpsc::error::TrySendError::Closed(_) => Refusal::ShuttingDown,
        })?;
        answer.await.map_err(|_| Refusal::ShuttingDown)?
    }
}

async fn run(group: Group, mut pending: mpsc::Receiver<Pending>, limits: BatchLimits) {
    let slots = Arc::new(Semaphore::new(limits.batches_in_flight_max));
    while let Some(first) = pending.recv().await {
        // While every slot is busy, commands keep queueing: they join this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < limits.batch_commands_max {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let at: Millis = group.stamps.stamp(group.clock.now_ms(), group.reader.last_applied_at());
        let (commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().map(|p| (p.command, p.reply)).unzip();
        match group.raft.client_write_ff(Batch { at, commands }).await {
            Ok(applied) => {
                tokio::spawn(async move {
                    let result = applied.await;
                    drop(slot);
                    answer(replies, result);
                });
            }
            Err(fatal) => {
                drop(slot);
                replies.into_iter().for_each(|r| {
                    let _ = r.send(Err(Refusal::Unavailable(fatal.to_string())));
                });
            }
        }
    }
}

type Applied = Result<
    Result<
        openraft::raft::ClientWriteResponse<crate::TypeConfig>,
        ClientWriteError<model::NodeId, openraft::BasicNode>,
    >,
    tokio::sync::oneshot::error::RecvError,
>;

/// Hands each caller its command's outcome, or the batch's refusal.
fn answer(replies: Vec<oneshot::Sender<Result<Outcome, Refusal>>>, result: Applied) {
    match result {
        Ok(Ok(response)) => {
            let outcomes = response.data.0;
            assert_eq!(outcomes.len(), replies.len(), "apply answers every command of an entry once");
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(Err(error)) => {
            let refusal = match error {
                ClientWriteError::ForwardToLeader(f) => Refusal::NotLeader { leader: f.leader_id },
                ClientWriteError::ChangeMembershipError(e) => Refusal::Unavailable(e.to_string()),
            };
            replies.into_iter().for_each(|r| {
                let _ = r.send(Err(refusal.clone()));
            });
        }
        // The group stopped before answering (shutting down, or a fatal error).
        Err(_) => replies.into_iter().for_each(|r| {
            let _ = r.send(Err(Refusal::ShuttingDown));
        }),
    }
}

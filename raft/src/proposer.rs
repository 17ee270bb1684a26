//! Leader-side batching: the commands of a group that arrive while earlier batches are being
//! written and replicated go together into the next raft entry.
//!
//! One task per group takes commands from a bounded queue. It keeps at most
//! `batches_in_flight_max` entries proposed and not yet applied; whenever a slot is free it
//! takes everything queued (up to `batch_commands_max`), stamps it once with the group clock and
//! proposes it as one entry. Under load the queue fills while the slots are busy, so one fsync
//! and one round of replication carry many commands; when idle a command goes alone at once.
//! Apply answers each command of an entry in order, and each waiting caller gets its own answer.
//!
//! A hold whose tickets are plainly taken does not need the log: like a read, its refusal only
//! has to reflect every write acknowledged before it. The proposer sets such holds aside as they
//! come, confirms its leadership and catches up with one read-index round (shared, see
//! `reads`) for all of them, and refuses those still taken; the others join the
//! next entry. A refusal waits for a read-index round, never for the entry in flight. Under a
//! hot on-sale most holds are for taken seats, and this keeps them off the disks.

use std::sync::Arc;

use model::{Batch, Command, Millis, Outcome};
use openraft::error::ClientWriteError;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::clock::{Clock, GroupClock};
use crate::host::{plainly_taken, StateReader};
use crate::metrics::GroupCounters;
use crate::reads::ReadRounds;
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

/// Read-index rounds (confirmations of refusals) a group keeps in flight.
const REFUSAL_ROUNDS_IN_FLIGHT_MAX: usize = 4;

/// What the proposer task of a group works with.
#[derive(Clone)]
struct Group {
    raft: Raft,
    /// Read-index rounds, shared with the group's other linearizable reads.
    reads: ReadRounds,
    reader: Arc<dyn StateReader>,
    stamps: Arc<GroupClock>,
    clock: Arc<Clock>,
    counters: Arc<GroupCounters>,
}

impl Proposer {
    pub fn start(
        raft: Raft,
        reads: ReadRounds,
        reader: Arc<dyn StateReader>,
        stamps: Arc<GroupClock>,
        clock: Arc<Clock>,
        counters: Arc<GroupCounters>,
        limits: BatchLimits,
    ) -> Proposer {
        assert!(limits.batch_commands_max > 0 && limits.batches_in_flight_max > 0, "batches need room");
        let (queue, pending) = mpsc::channel(limits.queue_commands_max);
        let group = Group { raft, reads, reader, stamps, clock, counters };
        tokio::spawn(run(group, pending, queue.clone(), limits));
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

impl Group {
    /// The earliest stamp the group's next entry can have.
    fn floor(&self) -> Millis {
        self.clock.now_ms().max(self.reader.last_applied_at())
    }

    fn taken(&self, command: &Command, at: Millis) -> Option<Vec<model::TicketId>> {
        plainly_taken(self.reader.as_ref(), command, at)
    }
}

async fn run(group: Group, mut pending: mpsc::Receiver<Pending>, requeue: mpsc::Sender<Pending>, limits: BatchLimits) {
    let slots = Arc::new(Semaphore::new(limits.batches_in_flight_max));
    let rounds = Arc::new(Semaphore::new(REFUSAL_ROUNDS_IN_FLIGHT_MAX));
    // Commands sorted out of the queue: those for the next entry, and holds that look refused.
    // Each side waits for its own kind of room, so a refusal never waits for a raft round.
    let (mut ready, mut doubtful) = (Vec::new(), Vec::new());
    let max = limits.batch_commands_max;
    loop {
        tokio::select! {
            biased;
            Ok(slot) = slots.clone().acquire_owned(), if !ready.is_empty() => {
                // Whatever queued meanwhile joins this entry.
                sort_out(&group, group.floor(), &mut pending, &mut ready, &mut doubtful, max);
                propose(&group, std::mem::take(&mut ready), slot).await;
            }
            Ok(round) = rounds.clone().acquire_owned(), if !doubtful.is_empty() => {
                sort_out(&group, group.floor(), &mut pending, &mut ready, &mut doubtful, max);
                let refusals = std::mem::take(&mut doubtful);
                tokio::spawn(confirm_refusals(group.clone(), refusals, requeue.clone(), round));
            }
            next = pending.recv(), if ready.len() < max && doubtful.len() < max => {
                let Some(next) = next else { return };
                let floor = group.floor();
                sort(&group, next, floor, &mut ready, &mut doubtful);
                sort_out(&group, floor, &mut pending, &mut ready, &mut doubtful, max);
            }
        }
    }
}

/// Puts a command with the next entry's, or, for a hold whose tickets look taken, with the
/// refusals to confirm.
fn sort(group: &Group, next: Pending, floor: Millis, ready: &mut Vec<Pending>, doubtful: &mut Vec<Pending>) {
    match group.taken(&next.command, floor) {
        Some(_) => doubtful.push(next),
        None => ready.push(next),
    }
}

/// Takes what is queued, while both sides have room.
fn sort_out(
    group: &Group,
    floor: Millis,
    pending: &mut mpsc::Receiver<Pending>,
    ready: &mut Vec<Pending>,
    doubtful: &mut Vec<Pending>,
    max: usize,
) {
    while ready.len() < max && doubtful.len() < max {
        match pending.try_recv() {
            Ok(next) => sort(group, next, floor, ready, doubtful),
            Err(_) => break,
        }
    }
}

/// Proposes `batch` as one entry, stamped once; a task answers each command once it applied.
async fn propose(group: &Group, batch: Vec<Pending>, slot: OwnedSemaphorePermit) {
    let at: Millis = group.stamps.stamp(group.clock.now_ms(), group.reader.last_applied_at());
    let (commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    GroupCounters::add(&group.counters.entries_proposed, 1);
    GroupCounters::add(&group.counters.commands_proposed, commands.len() as u64);
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

/// Refuses the holds whose tickets are still taken once this node has confirmed it leads and
/// has applied everything committed before the round began; the others go back in the queue.
async fn confirm_refusals(
    group: Group,
    doubtful: Vec<Pending>,
    requeue: mpsc::Sender<Pending>,
    _round: OwnedSemaphorePermit,
) {
    let refusal = group.reads.ensure_linearizable().await.err();
    let floor = group.floor();
    for pending in doubtful {
        if let Some(refusal) = &refusal {
            let _ = pending.reply.send(Err(refusal.clone()));
            continue;
        }
        match group.taken(&pending.command, floor) {
            Some(tickets) => {
                GroupCounters::add(&group.counters.refused_as_leader, 1);
                let _ = pending.reply.send(Ok(Outcome::Unavailable { tickets }));
            }
            None => {
                if let Err(error) = requeue.try_send(pending) {
                    let pending = match error {
                        mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
                    };
                    let _ =
                        pending.reply.send(Err(Refusal::Unavailable("too many commands waiting: overloaded".into())));
                }
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

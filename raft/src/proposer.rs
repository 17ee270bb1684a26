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
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::clock::{Clock, GroupClock};
use crate::consensus::Core;
use crate::metrics::GroupCounters;
use crate::reads::ReadRounds;
use crate::seams::{plainly_taken, StateReader};
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
struct Group<C: Core> {
    core: C,
    /// Read-index rounds, shared with the group's other linearizable reads.
    reads: ReadRounds<C>,
    reader: Arc<dyn StateReader>,
    stamps: Arc<GroupClock>,
    clock: Arc<Clock>,
    counters: Arc<GroupCounters>,
}

impl Proposer {
    pub fn start<C: Core>(
        core: C,
        reads: ReadRounds<C>,
        reader: Arc<dyn StateReader>,
        stamps: Arc<GroupClock>,
        clock: Arc<Clock>,
        counters: Arc<GroupCounters>,
        limits: BatchLimits,
    ) -> Proposer {
        assert!(limits.batch_commands_max > 0 && limits.batches_in_flight_max > 0, "batches need room");
        let (queue, pending) = mpsc::channel(limits.queue_commands_max);
        let group = Group { core, reads, reader, stamps, clock, counters };
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

impl<C: Core> Group<C> {
    /// The earliest stamp the group's next entry can have.
    fn floor(&self) -> Millis {
        self.clock.now_ms().max(self.reader.last_applied_at())
    }

    fn taken(&self, command: &Command, at: Millis) -> Option<Vec<model::TicketId>> {
        plainly_taken(self.reader.as_ref(), command, at)
    }
}

async fn run<C: Core>(
    group: Group<C>,
    mut pending: mpsc::Receiver<Pending>,
    requeue: mpsc::Sender<Pending>,
    limits: BatchLimits,
) {
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
fn sort<C: Core>(
    group: &Group<C>,
    next: Pending,
    floor: Millis,
    ready: &mut Vec<Pending>,
    doubtful: &mut Vec<Pending>,
) {
    match group.taken(&next.command, floor) {
        Some(_) => doubtful.push(next),
        None => ready.push(next),
    }
}

/// Takes what is queued, while both sides have room.
fn sort_out<C: Core>(
    group: &Group<C>,
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
async fn propose<C: Core>(group: &Group<C>, batch: Vec<Pending>, slot: OwnedSemaphorePermit) {
    let at: Millis = group.stamps.stamp(group.clock.now_ms(), group.reader.last_applied_at());
    let (commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    GroupCounters::add(&group.counters.entries_proposed, 1);
    GroupCounters::add(&group.counters.commands_proposed, commands.len() as u64);
    match group.core.propose(Batch { at, commands }).await {
        Ok(applied) => {
            tokio::spawn(async move {
                let result = applied.await;
                drop(slot);
                answer(replies, result);
            });
        }
        Err(refusal) => {
            drop(slot);
            answer(replies, Err(refusal));
        }
    }
}

/// Refuses the holds whose tickets are still taken once this node has confirmed it leads and
/// has applied everything committed before the round began; the others go back in the queue.
async fn confirm_refusals<C: Core>(
    group: Group<C>,
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

/// Hands each caller its command's outcome, or the batch's refusal.
fn answer(replies: Vec<oneshot::Sender<Result<Outcome, Refusal>>>, result: Result<Vec<Outcome>, Refusal>) {
    match result {
        Ok(outcomes) => {
            assert_eq!(outcomes.len(), replies.len(), "apply answers every command of an entry once");
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(refusal) => replies.into_iter().for_each(|r| {
            let _ = r.send(Err(refusal.clone()));
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use model::{BookingId, Idempotency, Query, QueryResult, TicketId};

    use super::*;
    use crate::consensus::testing::{self, MemCore};
    use crate::seams::SeamError;

    /// A replica's applied state as the proposer reads it: which tickets are taken, and, for a
    /// ticket in `freed_after_first_look`, taken only at the first look.
    #[derive(Default)]
    struct Seats {
        taken: Mutex<BTreeSet<TicketId>>,
        freed_after_first_look: Mutex<BTreeSet<TicketId>>,
        looks: AtomicU64,
        last_applied_at: AtomicU64,
    }

    impl StateReader for Seats {
        fn query(&self, _: &Query) -> Result<QueryResult, SeamError> {
            Err(SeamError::not_found("no queries in these tests"))
        }

        fn last_applied_at(&self) -> Millis {
            self.last_applied_at.load(Ordering::SeqCst)
        }

        fn taken(&self, _: BookingId, tickets: &[TicketId], _: Millis) -> Result<Vec<TicketId>, SeamError> {
            self.looks.fetch_add(1, Ordering::SeqCst);
            let taken = self.taken.lock().unwrap();
            let mut freed = self.freed_after_first_look.lock().unwrap();
            let mut answer = Vec::new();
            for ticket in tickets {
                if taken.contains(ticket) || freed.remove(ticket) {
                    answer.push(*ticket);
                }
            }
            Ok(answer)
        }
    }

    fn hold(nonce: u64, tickets: Vec<TicketId>) -> Command {
        let booking = BookingId { event: 1, nonce };
        Command::Hold { booking, user: 7, tickets, ttl_ms: 60_000, fan_tickets_max: 0, idempotency: None }
    }

    /// Apply as these tests see it: every command answers `Released` with nothing else to say,
    /// except holds, which answer `NoSeats`: enough to tell answers apart and in order.
    fn apply(batch: &Batch) -> Vec<Outcome> {
        batch
            .commands
            .iter()
            .map(|c| if matches!(c, Command::Hold { .. }) { Outcome::NoSeats } else { Outcome::NoSuchBooking })
            .collect()
    }

    fn start(core: &MemCore, seats: Arc<Seats>, limits: BatchLimits) -> Proposer {
        let reads = ReadRounds::start(core.clone(), Duration::from_secs(1));
        let counters = Arc::new(GroupCounters::default());
        let clock = Arc::new(Clock::new(0));
        Proposer::start(core.clone(), reads, seats, Arc::new(GroupClock::default()), clock, counters, limits)
    }

    fn limits(batch_commands_max: usize) -> BatchLimits {
        BatchLimits { batch_commands_max, batches_in_flight_max: 1, queue_commands_max: 1_024 }
    }

    async fn until(what: impl Fn() -> bool) {
        testing::until(Duration::from_secs(1), what).await
    }

    /// While an entry is being written, every command that comes waits, and all of them go
    /// together into the next entry; each caller gets its own command's answer.
    #[tokio::test]
    async fn commands_that_come_while_an_entry_is_in_flight_share_the_next() {
        let core = MemCore::new(false, apply);
        let proposer = start(&core, Arc::default(), limits(64));
        let first = tokio::spawn({
            let p = proposer.clone();
            async move { p.propose(hold(1, vec![1])).await }
        });
        until(|| core.entries().len() == 1).await;
        let rest: Vec<_> = (2..=11)
            .map(|n| {
                let p = proposer.clone();
                let command = if n % 2 == 0 {
                    hold(n, vec![n as TicketId])
                } else {
                    Command::Release { booking: BookingId { event: 1, nonce: n }, user: 7 }
                };
                tokio::spawn(async move { p.propose(command).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(core.entries().len(), 1, "nothing is proposed while the only slot is busy");
        core.apply_all();
        assert_eq!(first.await.unwrap(), Ok(Outcome::NoSeats));
        until(|| core.entries().len() == 2).await;
        assert_eq!(core.entries()[1].commands.len(), 10, "the ten queued commands went as one entry");
        core.apply_all();
        for (n, answer) in (2..=11).zip(rest) {
            let expected = if n % 2 == 0 { Outcome::NoSeats } else { Outcome::NoSuchBooking };
            assert_eq!(answer.await.unwrap(), Ok(expected), "command {n} got its own answer");
        }
    }

    /// An entry never carries more than `batch_commands_max` commands.
    #[tokio::test]
    async fn an_entry_carries_at_most_batch_commands_max() {
        let core = MemCore::new(true, apply);
        let proposer = start(&core, Arc::default(), limits(4));
        let all = (0..40).map(|n| {
            let p = proposer.clone();
            async move { p.propose(hold(n, vec![n as TicketId])).await }
        });
        let answers = futures::future::join_all(all).await;
        assert!(answers.iter().all(|a| a == &Ok(Outcome::NoSeats)));
        let entries = core.entries();
        assert!(
            entries.iter().all(|e| e.commands.len() <= 4),
            "sizes {:?}",
            entries.iter().map(|e| e.commands.len()).collect::<Vec<_>>()
        );
        assert_eq!(entries.iter().map(|e| e.commands.len()).sum::<usize>(), 40);
        assert!(entries.windows(2).all(|w| w[0].at <= w[1].at), "stamps never go back");
    }

    /// A hold for seats the applied state shows as taken is refused after a read-index round,
    /// without an entry in the log.
    #[tokio::test]
    async fn a_hold_for_taken_seats_is_refused_after_a_read_round_without_the_log() {
        let core = MemCore::new(true, apply);
        let seats = Arc::new(Seats::default());
        seats.taken.lock().unwrap().extend([5, 6]);
        let proposer = start(&core, seats, limits(64));
        let answer = proposer.propose(hold(1, vec![4, 5, 6])).await;
        assert_eq!(answer, Ok(Outcome::Unavailable { tickets: vec![5, 6] }));
        assert!(core.entries().is_empty(), "a refusal writes nothing");
        assert!(core.read_rounds() >= 1, "the refusal waited for a read-index round");
    }

    /// A hold that looked refused but whose seats were free by the read round goes to the log.
    #[tokio::test]
    async fn a_hold_whose_seats_freed_before_the_round_goes_to_the_log() {
        let core = MemCore::new(true, apply);
        let seats = Arc::new(Seats::default());
        seats.freed_after_first_look.lock().unwrap().insert(9);
        let proposer = start(&core, seats.clone(), limits(64));
        assert_eq!(proposer.propose(hold(1, vec![9])).await, Ok(Outcome::NoSeats), "apply decided");
        assert_eq!(core.entries().len(), 1);
        assert!(seats.looks.load(Ordering::SeqCst) >= 2, "looked at the seats again after the round");
    }

    /// A hold under an idempotency key may be the retry of the one that took its seats: it
    /// always goes to the log, where apply knows.
    #[tokio::test]
    async fn a_hold_under_an_idempotency_key_always_goes_to_the_log() {
        let core = MemCore::new(true, apply);
        let seats = Arc::new(Seats::default());
        seats.taken.lock().unwrap().insert(3);
        let proposer = start(&core, seats, limits(64));
        let Command::Hold { booking, user, tickets, ttl_ms, fan_tickets_max, .. } = hold(1, vec![3]) else {
            unreachable!()
        };
        let idempotency = Some(Idempotency { key: "k".into(), fingerprint: 1 });
        let keyed = Command::Hold { booking, user, tickets, ttl_ms, fan_tickets_max, idempotency };
        assert_eq!(proposer.propose(keyed).await, Ok(Outcome::NoSeats));
        assert_eq!(core.entries().len(), 1);
        assert_eq!(core.read_rounds(), 0);
    }

    /// A leader that lost its leadership refuses the holds it doubted, and writes nothing.
    #[tokio::test]
    async fn a_lost_leadership_refuses_doubtful_holds_as_not_leader() {
        let core = MemCore::new(true, apply);
        *core.leads.lock().unwrap() = false;
        let seats = Arc::new(Seats::default());
        seats.taken.lock().unwrap().insert(1);
        let proposer = start(&core, seats, limits(64));
        assert_eq!(proposer.propose(hold(1, vec![1])).await, Err(Refusal::NotLeader { leader: None }));
        assert!(core.entries().is_empty());
    }

    /// Every stamp is at or after the last applied entry's, whatever this node's clock says.
    #[tokio::test]
    async fn an_entry_is_stamped_no_earlier_than_the_last_applied() {
        let core = MemCore::new(true, apply);
        let seats = Arc::new(Seats::default());
        let far = Clock::new(0).now_ms() + 3_600_000;
        seats.last_applied_at.store(far, Ordering::SeqCst);
        let proposer = start(&core, seats, limits(64));
        proposer.propose(hold(1, vec![1])).await.unwrap();
        assert!(core.entries()[0].at >= far);
    }
}

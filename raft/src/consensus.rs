//! What the write path asks of a group's consensus core, as a trait: propose an entry and hear
//! what apply answered, get a read index confirmed by a quorum, wait for this replica to apply
//! an index, know the leader.
//!
//! The proposer, the read rounds and the follower refusals are written against [`Core`], not
//! against openraft: their batching and rounds are logic of their own, unit-tested over a plain
//! in-memory core (`testing`) in milliseconds. [`RaftCore`] is the one implementation the node
//! runs, over openraft's `Raft`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use model::{Batch, NodeId, Outcome};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};

use crate::types::Raft;
use crate::wire::Refusal;

/// Each command's outcome once the entry applied, in the entry's order.
pub type Applied = Pin<Box<dyn Future<Output = Result<Vec<Outcome>, Refusal>> + Send>>;

/// A group's consensus core as the write path sees it.
pub trait Core: Clone + Send + Sync + 'static {
    /// Hands `batch` to the core as one entry. Resolves once the core took it (the caller may
    /// then propose the next), with the future of the entry's outcomes.
    fn propose(&self, batch: Batch) -> impl Future<Output = Result<Applied, Refusal>> + Send;

    /// The index a linearizable read must see applied (`None`: nothing committed yet), from a
    /// leadership check with a quorum that began after this call.
    fn read_index(&self) -> impl Future<Output = Result<Option<u64>, Refusal>> + Send;

    /// Resolves once this replica has applied `index`, or fails after `timeout`.
    fn applied(&self, index: u64, timeout: Duration) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// The group's leader as this replica knows it.
    fn leader(&self) -> Option<NodeId>;
}

/// The core the node runs: openraft's.
#[derive(Clone)]
pub struct RaftCore(pub Raft);

impl Core for RaftCore {
    async fn propose(&self, batch: Batch) -> Result<Applied, Refusal> {
        let responder = self.0.client_write_ff(batch).await.map_err(|fatal| Refusal::Unavailable(fatal.to_string()))?;
        Ok(Box::pin(async move {
            match responder.await {
                Ok(Ok(response)) => Ok(response.data.0),
                Ok(Err(ClientWriteError::ForwardToLeader(f))) => Err(Refusal::NotLeader { leader: f.leader_id }),
                Ok(Err(ClientWriteError::ChangeMembershipError(e))) => Err(Refusal::Unavailable(e.to_string())),
                // The group stopped before answering (shutting down, or a fatal error).
                Err(_) => Err(Refusal::ShuttingDown),
            }
        }))
    }

    async fn read_index(&self) -> Result<Option<u64>, Refusal> {
        match self.0.get_read_log_id().await {
            Ok((read, _applied)) => Ok(read.map(|log_id| log_id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(Refusal::NotLeader { leader: f.leader_id })
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                Err(Refusal::Unavailable(e.to_string()))
            }
            Err(RaftError::Fatal(fatal)) => Err(Refusal::Unavailable(fatal.to_string())),
        }
    }

    async fn applied(&self, index: u64, timeout: Duration) -> Result<(), Refusal> {
        let wait = self.0.wait(Some(timeout));
        wait.applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|e| Refusal::Unavailable(format!("applying up to index {index}: {e}")))
    }

    fn leader(&self) -> Option<NodeId> {
        self.0.metrics().borrow().current_leader
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! An in-memory core for the write path's unit tests: a log that applies what it is given
    //! with a function the test picks, entries held until the test lets them apply, and a
    //! leadership the test can take away.

    use std::sync::{Arc, Mutex};

    use tokio::sync::{oneshot, watch};

    use super::*;

    type ApplyFn = dyn Fn(&Batch) -> Vec<Outcome> + Send + Sync;
    /// Where an entry's caller waits for its outcomes.
    type Reply = oneshot::Sender<Result<Vec<Outcome>, Refusal>>;

    #[derive(Default)]
    struct State {
        /// Every entry proposed, in order.
        entries: Vec<Batch>,
        /// Entries proposed and not yet applied, with their waiting callers.
        unapplied: Vec<(Batch, Reply)>,
        read_rounds: u64,
    }

    /// A core whose entries apply only when the test says so (`apply_all`), or at once when it
    /// is built with `auto_apply`.
    #[derive(Clone)]
    pub struct MemCore {
        state: Arc<Mutex<State>>,
        apply: Arc<ApplyFn>,
        auto_apply: bool,
        /// The leader as this replica knows it; `Some(self)` for a leader.
        pub leader: Arc<Mutex<Option<NodeId>>>,
        /// Whether read-index rounds succeed (a leader with a quorum).
        pub leads: Arc<Mutex<bool>>,
        /// The applied index, for `applied`.
        applied: watch::Sender<u64>,
    }

    impl MemCore {
        pub fn new(auto_apply: bool, apply: impl Fn(&Batch) -> Vec<Outcome> + Send + Sync + 'static) -> MemCore {
            MemCore {
                state: Arc::default(),
                apply: Arc::new(apply),
                auto_apply,
                leader: Arc::new(Mutex::new(Some(1))),
                leads: Arc::new(Mutex::new(true)),
                applied: watch::channel(0).0,
            }
        }

        /// Applies every entry proposed so far, answering their callers.
        pub fn apply_all(&self) {
            let unapplied = std::mem::take(&mut self.state.lock().unwrap().unapplied);
            for (batch, reply) in unapplied {
                let _ = reply.send(Ok((self.apply)(&batch)));
                self.applied.send_modify(|index| *index += 1);
            }
        }

        /// The entries proposed so far.
        pub fn entries(&self) -> Vec<Batch> {
            self.state.lock().unwrap().entries.clone()
        }

        pub fn read_rounds(&self) -> u64 {
            self.state.lock().unwrap().read_rounds
        }
    }

    /// Waits until `what` holds, failing the test after `within`.
    pub async fn until(within: Duration, what: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !what() {
            assert!(tokio::time::Instant::now() < deadline, "the condition did not hold within {within:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    impl Core for MemCore {
        async fn propose(&self, batch: Batch) -> Result<Applied, Refusal> {
            let (reply, outcome) = oneshot::channel();
            {
                let mut state = self.state.lock().unwrap();
                state.entries.push(batch.clone());
                state.unapplied.push((batch, reply));
            }
            if self.auto_apply {
                self.apply_all();
            }
            Ok(Box::pin(async move { outcome.await.unwrap_or(Err(Refusal::ShuttingDown)) }))
        }

        async fn read_index(&self) -> Result<Option<u64>, Refusal> {
            self.state.lock().unwrap().read_rounds += 1;
            if !*self.leads.lock().unwrap() {
                return Err(Refusal::NotLeader { leader: None });
            }
            let index = *self.applied.borrow() + self.state.lock().unwrap().unapplied.len() as u64;
            Ok(Some(index))
        }

        async fn applied(&self, index: u64, timeout: Duration) -> Result<(), Refusal> {
            let mut applied = self.applied.subscribe();
            let reached = tokio::time::timeout(timeout, applied.wait_for(|applied| *applied >= index)).await;
            match reached {
                Ok(Ok(_)) => Ok(()),
                _ => Err(Refusal::Unavailable(format!("index {index} not applied in {timeout:?}"))),
            }
        }

        fn leader(&self) -> Option<NodeId> {
            *self.leader.lock().unwrap()
        }
    }
}

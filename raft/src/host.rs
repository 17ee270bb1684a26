//! The multi-raft host: every group this node holds, and the routing of writes and reads to the
//! replica that must serve them.
//!
//! A write goes to its group's leader: proposed here when this node leads, forwarded over the
//! link otherwise, and retried on a leader change until `write_timeout_ms` runs out. The leader
//! stamps the entry with its group clock (design rule 2). A read is served by this node's replica
//! when stale reads are fine, by the leader after it confirms its leadership otherwise.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use model::{
    ClusterError, ClusterStatus, Command, Consistency, GroupId, Millis, NodeId, NodeStatus, Outcome, Query,
    QueryResult, ReplicaStatus, Role, SearchQuery, SearchResult,
};
use openraft::{BasicNode, ServerState};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::{Clock, GroupClock};
use crate::config::HostConfig;
use crate::consensus::RaftCore;
use crate::link::{Handler, LinkLimits, Peers};
use crate::metrics::{self, GroupCounters};
use crate::network::NetworkFactory;
use crate::proposer::{BatchLimits, Proposer};
use crate::reads::ReadRounds;
use crate::refusals::{LinkedLeader, RefusalLimits, Refuser, Verdict};
use crate::seams::{plainly_taken, ErrorKind, GroupStorage, SeamError, Searcher, StateReader};
use crate::types::{Raft, Snapshot};
use crate::wire::{ReadPoint, Refusal, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("bad raft settings: {0}")]
    Config(String),
    #[error("opening group {group}: {reason}")]
    Open { group: GroupId, reason: SeamError },
    #[error("starting group {group}: {reason}")]
    Start { group: GroupId, reason: String },
}

/// Immediate redirects a write follows before it waits and asks again.
const REDIRECTS_BEFORE_WAIT_MAX: u32 = 3;
/// Wait between retries of a write or linearizable read: doubles up to the max.
const RETRY_BACKOFF_MIN_MS: u64 = 20;
const RETRY_BACKOFF_MAX_MS: u64 = 400;
/// How often the node looks for a group that stopped on a fatal error.
const FATAL_CHECK_INTERVAL_MS: u64 = 100;
/// How long a status call to a peer may take.
const STATUS_TIMEOUT_MS: u64 = 500;
/// How long a node with a group never initialized waits for its links to every peer before
/// the first elections: a vote sent before a link is up fails, and openraft logs every such
/// failure as an error, which on a new cluster's first seconds is only noise. Past the wait
/// the node goes on without the missing peers, as it would have at once.
const PEERS_WAIT_BEFORE_INIT_MS: u64 = 2_000;
/// How often that wait looks at the links.
const PEERS_POLL_MS: u64 = 10;
/// Times a read is tried while this node's replica answers busy, before it is refused.
const BUSY_READ_ATTEMPTS_MAX: u32 = 4;
/// Queries that scan many rows run on the blocking pool rather than on a runtime worker. The
/// oldest remembered record is one row, but found past the deletions of the prunes before it.
fn is_scan(query: &Query) -> bool {
    matches!(
        query,
        Query::Tickets(_)
            | Query::SeatMap(_)
            | Query::UpcomingEvents { .. }
            | Query::EventState(_)
            | Query::Digest
            | Query::OldestRemembered
    )
}

struct Group {
    raft: Raft,
    reader: Arc<dyn StateReader>,
    /// Batches this node's proposals to the group (used while it leads).
    proposer: Proposer,
    /// Read-index rounds shared by the linearizable reads and refusals (while it leads).
    reads: ReadRounds<RaftCore>,
    /// Refuses holds for taken seats without the leader's log (used while it follows).
    refuser: Refuser,
    /// The write path's counters, for `/metrics`.
    counters: Arc<GroupCounters>,
    /// Why this replica was stopped by the host (it read data it cannot trust), once it was.
    failure: std::sync::OnceLock<SeamError>,
}

pub struct Host {
    config: HostConfig,
    /// The node's search shard, once the node has opened it.
    searcher: std::sync::OnceLock<Arc<dyn Searcher>>,
    /// The wall clock with its offset: starts at `clock_offset_ms`, changed by fault injection.
    clock: Arc<Clock>,
    groups: BTreeMap<GroupId, Group>,
    peers: Arc<Peers>,
    shutdown: watch::Sender<bool>,
}

impl Host {
    /// Opens every group, starts the transport on `listener` and initializes the groups that
    /// have never been (a no-op on restart).
    pub async fn start<S: GroupStorage>(
        config: HostConfig,
        listener: TcpListener,
        storage: &S,
    ) -> Result<Arc<Host>, HostError> {
        if let Some(problem) = config.raft.problem() {
            return Err(HostError::Config(problem));
        }
        let me = config.node_id;
        if !config.nodes.contains_key(&me) {
            return Err(HostError::Config(format!("node {me} is not in the list of nodes")));
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let others = config.nodes.values().filter(|n| n.id != me).map(|n| (n.id, n.raft_addr.clone())).collect();
        let limits = LinkLimits::from(&config.raft);
        let peers = Peers::new(me, pki::NAME_SUFFIX.into(), others, limits, config.tls.clone(), shutdown_rx);
        let raft_config = Arc::new(config.raft.openraft().validate().map_err(|e| HostError::Config(e.to_string()))?);
        let clock = Arc::new(Clock::new(config.raft.clock_offset_ms));
        let limits = BatchLimits {
            batch_commands_max: config.raft.batch_commands_max,
            batches_in_flight_max: config.raft.batches_in_flight_max,
            queue_commands_max: config.raft.propose_queue_commands_max,
        };
        let mut groups = BTreeMap::new();
        for group in 0..=config.raft.inventory_groups {
            let parts = storage.open(group).map_err(|reason| HostError::Open { group, reason })?;
            let (log, sm, reader) = (parts.log, parts.state_machine, parts.reader);
            let network =
                NetworkFactory { group, peers: peers.clone(), entries_bytes_max: config.raft.append_entries_bytes_max };
            let raft = Raft::new(me, raft_config.clone(), network, log, sm)
                .await
                .map_err(|e| HostError::Start { group, reason: e.to_string() })?;
            let core = RaftCore(raft.clone());
            let rpc_timeout = Duration::from_millis(config.raft.rpc_timeout_ms);
            let reads = ReadRounds::start(core.clone(), rpc_timeout);
            let stamps = Arc::new(GroupClock::default());
            let counters = Arc::new(GroupCounters::default());
            let proposer = Proposer::start(
                core.clone(),
                reads.clone(),
                reader.clone(),
                stamps,
                clock.clone(),
                counters.clone(),
                limits,
            );
            let refusal_limits = RefusalLimits {
                round_holds_max: config.raft.batch_commands_max,
                queue_holds_max: config.raft.propose_queue_commands_max,
                round_timeout_ms: config.raft.rpc_timeout_ms,
            };
            let leader = LinkedLeader { group, peers: peers.clone(), timeout: rpc_timeout };
            let refuser = Refuser::start(me, core, leader, reader.clone(), counters.clone(), refusal_limits);
            let failure = std::sync::OnceLock::new();
            groups.insert(group, Group { raft, reader, proposer, reads, refuser, counters, failure });
        }
        let searcher = std::sync::OnceLock::new();
        let host = Arc::new(Host { config, searcher, clock, groups, peers: peers.clone(), shutdown });
        peers.start(listener, handler(Arc::downgrade(&host)));
        if host.fresh().await {
            host.start_first_elections().await;
        }
        Ok(host)
    }

    /// Starts a new cluster's first elections, spreading the groups' first leaders over the
    /// nodes: once its links are up, each node initializes the groups it is the first choice for
    /// (group `g` goes to the `g mod n`th node by id), and wins their first elections. After an
    /// election timeout more, it initializes any group still untouched, so a new cluster still
    /// elects with a node down. Every node initializing every group at once works too, but the
    /// losers of that race fill the first lines of every log with errors, and one node would
    /// lead every group.
    async fn start_first_elections(self: &Arc<Self>) {
        let peers_wait = Duration::from_millis(PEERS_WAIT_BEFORE_INIT_MS);
        let after = Duration::from_millis(self.config.raft.election_timeout_max_ms);
        // Nothing here needs to wait for this node's own start to finish.
        let host = Arc::downgrade(self);
        tokio::spawn(async move {
            let Some(me) = host.upgrade() else { return };
            me.wait_for_peers(peers_wait).await;
            me.initialize(|group| me.first_choice(group)).await;
            drop(me);
            tokio::time::sleep(after).await;
            if let Some(host) = host.upgrade() {
                host.initialize(|_| true).await;
            }
        });
    }

    /// Whether this node is the first choice to lead `group` in a new cluster.
    fn first_choice(&self, group: GroupId) -> bool {
        let ids: Vec<NodeId> = self.config.nodes.keys().copied().collect();
        assert!(!ids.is_empty(), "a cluster has at least this node");
        ids[group as usize % ids.len()] == self.node_id()
    }

    /// Whether a group of this node has never been initialized (a new cluster, or a new node).
    async fn fresh(&self) -> bool {
        for g in self.groups.values() {
            if !g.raft.is_initialized().await.unwrap_or(true) {
                return true;
            }
        }
        false
    }

    /// Waits until this node has a link to every peer, for at most `wait`.
    async fn wait_for_peers(&self, wait: Duration) {
        let started = Instant::now();
        let all_up = || self.peers.peer_ids().all(|peer| self.peers.is_connected(peer));
        while !all_up() && started.elapsed() < wait {
            tokio::time::sleep(Duration::from_millis(PEERS_POLL_MS)).await;
        }
        let waited_ms = started.elapsed().as_millis() as u64;
        if all_up() {
            tracing::info!(waited_ms, "links to every peer up: starting the first elections");
        } else {
            tracing::warn!(waited_ms, "not every peer is reachable yet: starting the first elections anyway");
        }
    }

    /// Makes every node a voter of each `chosen` group this node has not heard of yet: a group
    /// with state, or whose vote or leader another node's election already set, is left as it is.
    ///
    /// The membership names nodes by id only: where a node is reached comes from each node's
    /// own config, and may differ between nodes (a proxy, a NAT), while the membership entry
    /// must be the same everywhere.
    async fn initialize(&self, chosen: impl Fn(GroupId) -> bool) {
        let members: BTreeMap<NodeId, BasicNode> =
            self.config.nodes.values().map(|n| (n.id, BasicNode::default())).collect();
        for (group, g) in self.groups.iter().filter(|(group, _)| chosen(**group)) {
            if g.raft.is_initialized().await.unwrap_or(true) {
                continue;
            }
            let contacted = {
                let metrics = g.raft.metrics();
                let m = metrics.borrow();
                m.current_leader.is_some() || m.vote.leader_id().get_term() > 0
            };
            if contacted {
                continue;
            }
            match g.raft.initialize(members.clone()).await {
                Ok(()) => tracing::info!(group, "group initialized"),
                Err(error) => tracing::debug!(group, %error, "group already initialized"),
            }
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    pub fn inventory_groups(&self) -> u32 {
        self.config.raft.inventory_groups
    }

    /// This node's wall clock, with the configured offset.
    pub fn now_ms(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Skews this node's clock (fault injection): stamps it gives as leader move with it.
    pub fn set_clock_offset(&self, offset_ms: i64) {
        tracing::warn!(offset_ms, "clock offset changed");
        self.clock.set_offset(offset_ms);
    }

    /// Resolves when a group stops on its own (a storage error, or a panic inside openraft):
    /// a node must not go on serving with a dead replica, so the caller stops the process.
    ///
    /// It looks every `FATAL_CHECK_INTERVAL_MS` rather than waiting on the groups' metrics:
    /// metrics change thousands of times a second under load, and each change would wake this
    /// watcher on another thread.
    pub async fn fatal(&self) -> String {
        let mut interval = tokio::time::interval(Duration::from_millis(FATAL_CHECK_INTERVAL_MS));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if *self.shutdown.borrow() {
                return std::future::pending().await;
            }
            for (group, g) in &self.groups {
                if let Some(error) = g.failure.get() {
                    return format!("group {group} stopped: its replica read {error}");
                }
                let metrics = g.raft.metrics();
                if let Err(error) = &metrics.borrow().running_state {
                    return format!("group {group} stopped: {error}");
                }
                // The core dropped its side without saying why: it is gone all the same.
                if metrics.has_changed().is_err() {
                    return format!("group {group} stopped");
                }
            }
        }
    }

    fn group(&self, group: GroupId) -> Result<&Group, Refusal> {
        self.groups.get(&group).ok_or(Refusal::NoSuchGroup)
    }

    fn leader_hint(&self, group: GroupId) -> Option<NodeId> {
        self.groups.get(&group).and_then(|g| g.raft.metrics().borrow().current_leader)
    }

    /// The leader of `group` as this node knows it.
    pub fn leader_of(&self, group: GroupId) -> Option<NodeId> {
        self.leader_hint(group)
    }

    /// Proposes `command` to `group` wherever its leader is, and returns what apply returned.
    pub async fn write(&self, group: GroupId, command: Command) -> Result<Outcome, ClusterError> {
        if let Some(refused) = self.refuse_here(group, &command).await {
            return Ok(refused);
        }
        let request = |target: NodeId| {
            let command = command.clone();
            async move {
                if target == self.node_id() {
                    self.propose_local(group, command).await
                } else {
                    if let Some(g) = self.groups.get(&group) {
                        GroupCounters::add(&g.counters.writes_forwarded, 1);
                    }
                    self.forward(target, Request::Write { group, command }).await.and_then(|r| match r {
                        Response::Write(result) => result,
                        other => Err(Refusal::Unavailable(format!("unexpected answer {other:?}"))),
                    })
                }
            }
        };
        self.at_leader(group, request).await
    }

    /// On a follower, a hold for seats its replica shows as taken: refused after a read point
    /// from the leader if they still are then (see `refusals`); `None` sends it to the leader.
    async fn refuse_here(&self, group: GroupId, command: &Command) -> Option<Outcome> {
        let g = self.groups.get(&group)?;
        let leader = g.raft.metrics().borrow().current_leader;
        if leader.is_none_or(|leader| leader == self.node_id()) {
            return None;
        }
        // A first look at this replica's state, without waiting: most holds look free.
        plainly_taken(g.reader.as_ref(), command, g.reader.last_applied_at())?;
        match g.refuser.check(command).await {
            Verdict::Taken(tickets) => Some(Outcome::Unavailable { tickets }),
            Verdict::Forward => None,
        }
    }

    /// The leader's side of a follower read: confirms this node leads the group with a quorum,
    /// and answers with the index the follower must apply and the group time to read at.
    async fn read_index(&self, group: GroupId) -> Result<ReadPoint, Refusal> {
        let g = self.group(group)?;
        let index = g.reads.read_index().await.map_err(|r| self.stopping(r))?;
        // Taken after the quorum answered: a time within the follower's request.
        let at = self.clock.now_ms().max(g.reader.last_applied_at());
        Ok(ReadPoint { index, at })
    }

    /// Answers `query` from `group` at the asked consistency.
    pub async fn read(
        &self,
        group: GroupId,
        query: Query,
        consistency: Consistency,
    ) -> Result<QueryResult, ClusterError> {
        if consistency == Consistency::Stale && self.groups.contains_key(&group) {
            return self.read_local(group, query, consistency).await.map_err(|r| self.cluster_error(group, r));
        }
        let request = |target: NodeId| {
            let query = query.clone();
            async move {
                if target == self.node_id() {
                    self.read_local(group, query, consistency).await
                } else {
                    self.forward(target, Request::Read { group, query, consistency }).await.and_then(|r| match r {
                        Response::Read(result) => result,
                        other => Err(Refusal::Unavailable(format!("unexpected answer {other:?}"))),
                    })
                }
            }
        };
        self.at_leader(group, request).await
    }

    /// Runs `attempt` against the group's leader, following redirects and waiting out elections,
    /// until it succeeds, fails for good, or `write_timeout_ms` runs out.
    async fn at_leader<T, F, Fut>(&self, group: GroupId, attempt: F) -> Result<T, ClusterError>
    where
        F: Fn(NodeId) -> Fut,
        Fut: std::future::Future<Output = Result<T, Refusal>>,
    {
        self.group(group).map_err(|r| self.cluster_error(group, r))?;
        let deadline = Instant::now() + Duration::from_millis(self.config.raft.write_timeout_ms);
        let mut backoff_ms = RETRY_BACKOFF_MIN_MS;
        let mut redirects = 0;
        let mut target = self.leader_hint(group);
        let mut last = Refusal::NotLeader { leader: None };
        loop {
            if let Some(node) = target {
                match attempt(node).await {
                    Ok(answer) => return Ok(answer),
                    Err(Refusal::NotLeader { leader: Some(next) })
                        if next != node && redirects < REDIRECTS_BEFORE_WAIT_MAX =>
                    {
                        redirects += 1;
                        target = Some(next);
                        continue;
                    }
                    Err(refusal @ (Refusal::NoSuchGroup | Refusal::ShuttingDown)) if node == self.node_id() => {
                        return Err(self.cluster_error(group, refusal));
                    }
                    Err(refusal) => last = refusal,
                }
            }
            if Instant::now() + Duration::from_millis(backoff_ms) > deadline {
                return Err(self.cluster_error(group, last));
            }
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(RETRY_BACKOFF_MAX_MS);
            redirects = 0;
            target = self.leader_hint(group);
        }
    }

    fn cluster_error(&self, group: GroupId, refusal: Refusal) -> ClusterError {
        match refusal {
            Refusal::NoSuchGroup => ClusterError::NoSuchGroup(group),
            Refusal::ShuttingDown if *self.shutdown.borrow() => ClusterError::ShuttingDown,
            other => ClusterError::Unavailable { group, reason: other.to_string() },
        }
    }

    async fn forward(&self, target: NodeId, request: Request) -> Result<Response, Refusal> {
        let timeout = Duration::from_millis(self.config.raft.rpc_timeout_ms);
        match self.peers.call(target, request, timeout).await {
            Ok(Response::Refused(refusal)) => Err(refusal),
            Ok(response) => Ok(response),
            Err(error) => Err(Refusal::Unavailable(error.to_string())),
        }
    }

    /// Proposes on this node's replica, which must be the leader; batched with the commands
    /// that arrive meanwhile (see `proposer`).
    async fn propose_local(&self, group: GroupId, command: Command) -> Result<Outcome, Refusal> {
        self.group(group)?.proposer.propose(command).await
    }

    /// A refusal as the caller should see it: while the node shuts down, groups stop, and
    /// that is not an outage.
    fn stopping(&self, refusal: Refusal) -> Refusal {
        match refusal {
            Refusal::Unavailable(_) if *self.shutdown.borrow() => Refusal::ShuttingDown,
            other => other,
        }
    }

    /// Reads this node's replica; for a linearizable read it must be the leader. A busy
    /// replica is asked again a few times; one that read corrupt data is stopped.
    async fn read_local(&self, group: GroupId, query: Query, consistency: Consistency) -> Result<QueryResult, Refusal> {
        let g = self.group(group)?;
        if consistency == Consistency::Linearizable {
            g.reads.ensure_linearizable().await.map_err(|r| self.stopping(r))?;
        }
        for attempt in 1.. {
            let error = match query_replica(g, &query).await {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            match after_failed_read(error.kind, attempt) {
                AfterFailedRead::Again { backoff_ms } => {
                    tracing::debug!(group, attempt, %error, "replica busy: reading again");
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                }
                AfterFailedRead::StopReplica => {
                    self.stop_replica(group, error.clone());
                    return Err(Refusal::Unavailable(format!("this node's replica stopped: {error}")));
                }
                AfterFailedRead::Stopping => return Err(self.stopping(Refusal::Unavailable(error.to_string()))),
                AfterFailedRead::Refuse => return Err(Refusal::Unavailable(error.to_string())),
            }
        }
        unreachable!("a read ends by its last attempt")
    }

    /// Stops this node's replica of `group` after it read data it cannot trust: any answer
    /// built on it could be wrong. `fatal` then reports it, and the node stops.
    fn stop_replica(&self, group: GroupId, error: SeamError) {
        let Some(g) = self.groups.get(&group) else { return };
        if g.failure.set(error.clone()).is_ok() {
            tracing::error!(group, %error, "replica read corrupt data: stopping it");
            let raft = g.raft.clone();
            tokio::spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
    }

    /// Handles a request from a peer.
    async fn handle(self: Arc<Self>, from: NodeId, request: Request) -> Response {
        match request {
            Request::Hello { .. } => Response::Refused(Refusal::Unavailable("hello after handshake".into())),
            Request::AppendEntries { group, rpc } => match self.group(group) {
                Ok(g) => Response::AppendEntries(g.raft.append_entries(rpc).await),
                Err(refusal) => Response::Refused(refusal),
            },
            Request::Vote { group, rpc } => match self.group(group) {
                Ok(g) => Response::Vote(g.raft.vote(rpc).await),
                Err(refusal) => Response::Refused(refusal),
            },
            Request::Snapshot { group, vote, meta, data } => match self.group(group) {
                Ok(g) => {
                    tracing::info!(group, from, bytes = data.len(), "installing snapshot from leader");
                    let snapshot = Snapshot { meta, snapshot: Box::new(data) };
                    Response::Snapshot(g.raft.install_full_snapshot(vote, snapshot).await)
                }
                Err(refusal) => Response::Refused(refusal),
            },
            Request::Write { group, command } => Response::Write(self.propose_local(group, command).await),
            Request::Read { group, query, consistency } => {
                Response::Read(self.read_local(group, query, consistency).await)
            }
            Request::Status => Response::Status(self.local_status()),
            Request::Search { groups, query } => Response::Search(self.search_local(groups, query).await),
            Request::ReadIndex { group } => Response::ReadIndex(self.read_index(group).await),
        }
    }

    /// Gives the host the node's search shard (once).
    pub fn set_searcher(&self, searcher: Arc<dyn Searcher>) {
        let _ = self.searcher.set(searcher);
    }

    fn search_local(
        &self,
        groups: Vec<GroupId>,
        query: SearchQuery,
    ) -> impl std::future::Future<Output = Result<SearchResult, Refusal>> {
        let searcher = self.searcher.get().cloned();
        async move {
            let Some(searcher) = searcher else { return Ok(SearchResult::default()) };
            tokio::task::spawn_blocking(move || searcher.search(&groups, &query))
                .await
                .map_err(|e| Refusal::Unavailable(format!("the search task ended: {e}")))?
                .map_err(|e| Refusal::Unavailable(e.to_string()))
        }
    }

    /// Searches every inventory group: this node's shard answers for the groups it has caught up
    /// with, and the other nodes, in turn, for the rest. Fails if some group has no replica able
    /// to answer: a result silently missing a group's events would look complete.
    pub async fn search(&self, query: SearchQuery) -> Result<SearchResult, ClusterError> {
        let wanted: Vec<GroupId> = (1..=self.inventory_groups()).collect();
        let keep = (query.offset + query.limit).min(model::SEARCH_HITS_MAX) as usize;
        let mut answers = Vec::new();
        let mut missing = wanted.clone();
        let local = self.search_local(missing.clone(), query.clone()).await.unwrap_or_default();
        missing.retain(|g| !local.groups.contains(g));
        answers.push(local);
        let timeout = Duration::from_millis(self.config.raft.rpc_timeout_ms);
        for peer in self.peers.peer_ids().collect::<Vec<_>>() {
            if missing.is_empty() {
                break;
            }
            let request = Request::Search { groups: missing.clone(), query: query.clone() };
            if let Ok(Response::Search(Ok(answer))) = self.peers.call(peer, request, timeout).await {
                missing.retain(|g| !answer.groups.contains(g));
                answers.push(answer);
            }
        }
        if let Some(&group) = missing.first() {
            let reason = "no reachable replica has its search index caught up".to_string();
            return Err(ClusterError::Unavailable { group, reason });
        }
        Ok(SearchResult::merge(answers, query.sort, keep))
    }

    /// This node's replicas as their metrics show them.
    pub fn local_status(&self) -> Vec<ReplicaStatus> {
        let me = self.node_id();
        self.groups
            .iter()
            .map(|(&group, g)| {
                let m = g.raft.metrics().borrow().clone();
                ReplicaStatus {
                    group,
                    node: me,
                    role: match m.state {
                        ServerState::Leader => Role::Leader,
                        ServerState::Follower => Role::Follower,
                        ServerState::Candidate => Role::Candidate,
                        ServerState::Learner => Role::Learner,
                        ServerState::Shutdown => Role::Shutdown,
                    },
                    term: m.current_term,
                    leader: m.current_leader,
                    applied_index: m.last_applied.map(|l| l.index),
                    last_log_index: m.last_log_index,
                    snapshot_index: m.snapshot.map(|l| l.index),
                    purged_index: m.purged.map(|l| l.index),
                }
            })
            .collect()
    }

    /// This node's groups for `/metrics`: each replica's state and the write path's counters.
    pub fn metrics_text(&self) -> String {
        let counters = self.groups.iter().map(|(&group, g)| (group, g.counters.clone())).collect();
        metrics::render(&self.local_status(), &counters)
    }

    /// Every node's replicas, asking each peer; a peer that does not answer is unreachable.
    pub async fn status(&self) -> ClusterStatus {
        let timeout = Duration::from_millis(STATUS_TIMEOUT_MS);
        let asks = self.config.nodes.values().map(|node| async move {
            let replicas = if node.id == self.node_id() {
                Some(self.local_status())
            } else {
                match self.peers.call(node.id, Request::Status, timeout).await {
                    Ok(Response::Status(replicas)) => Some(replicas),
                    _ => None,
                }
            };
            NodeStatus {
                id: node.id,
                raft_addr: node.raft_addr.clone(),
                http_addr: node.http_addr.clone(),
                reachable: replicas.is_some(),
                replicas: replicas.unwrap_or_default(),
            }
        });
        ClusterStatus {
            node: self.node_id(),
            inventory_groups: self.inventory_groups(),
            nodes: futures::future::join_all(asks).await,
        }
    }

    /// Waits until this node's replica of `group` has applied every entry committed before the
    /// call: a read point of the group's leader (a quorum confirmed it still leads), then this
    /// replica's apply catching up to it. Returns the index applied. A copy of the replica taken
    /// after it holds every write acknowledged before the call.
    pub async fn catch_up(&self, group: GroupId) -> Result<u64, ClusterError> {
        use crate::consensus::Core;
        let g = self.group(group).map_err(|r| self.cluster_error(group, r))?;
        let request = |target: NodeId| async move {
            if target == self.node_id() {
                self.read_index(group).await
            } else {
                self.forward(target, Request::ReadIndex { group }).await.and_then(|r| match r {
                    Response::ReadIndex(point) => point,
                    other => Err(Refusal::Unavailable(format!("unexpected answer {other:?}"))),
                })
            }
        };
        let point = self.at_leader(group, request).await?;
        let Some(index) = point.index else { return Ok(0) };
        let timeout = Duration::from_millis(self.config.raft.write_timeout_ms);
        RaftCore(g.raft.clone()).applied(index, timeout).await.map_err(|r| self.cluster_error(group, r))?;
        Ok(index)
    }

    /// Builds a snapshot of this node's replica of `group` now; raft then purges the log it
    /// covers, keeping `snapshot_logs_kept_max` entries.
    pub async fn snapshot(&self, group: GroupId) -> Result<(), ClusterError> {
        let g = self.group(group).map_err(|r| self.cluster_error(group, r))?;
        g.raft.trigger().snapshot().await.map_err(|e| ClusterError::Unavailable { group, reason: e.to_string() })
    }

    /// Stops every group and the transport.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        for (group, g) in &self.groups {
            if let Err(error) = g.raft.shutdown().await {
                tracing::warn!(group, %error, "group did not stop cleanly");
            }
        }
        tracing::info!(node = self.node_id(), "raft host stopped");
    }
}

/// What the host does after a read of its replica failed, on the `attempt`th try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFailedRead {
    /// Ask the replica again after a pause: it was busy.
    Again { backoff_ms: u64 },
    /// Stop the replica: its data cannot be trusted, and neither could any answer built on it.
    StopReplica,
    /// The node is stopping: say so.
    Stopping,
    /// Refuse the read as unavailable.
    Refuse,
}

/// The host's policy for failed reads, by kind: busy is asked again (with a doubling pause) up
/// to `BUSY_READ_ATTEMPTS_MAX` tries, corrupt stops the replica at once, the rest is refused.
fn after_failed_read(kind: ErrorKind, attempt: u32) -> AfterFailedRead {
    assert!(attempt >= 1, "attempts count from one");
    match kind {
        ErrorKind::Busy if attempt < BUSY_READ_ATTEMPTS_MAX => {
            let backoff_ms = RETRY_BACKOFF_MIN_MS.saturating_mul(1 << (attempt - 1).min(16));
            AfterFailedRead::Again { backoff_ms: backoff_ms.min(RETRY_BACKOFF_MAX_MS) }
        }
        ErrorKind::Corrupt => AfterFailedRead::StopReplica,
        ErrorKind::Stopped => AfterFailedRead::Stopping,
        ErrorKind::Busy | ErrorKind::NotFound => AfterFailedRead::Refuse,
    }
}

/// Asks a replica's state machine; queries that scan many rows run on the blocking pool.
async fn query_replica(g: &Group, query: &Query) -> Result<QueryResult, SeamError> {
    if !is_scan(query) {
        return g.reader.query(query);
    }
    let (reader, query) = (g.reader.clone(), query.clone());
    tokio::task::spawn_blocking(move || reader.query(&query))
        .await
        .map_err(|e| SeamError::stopped(format!("the read task ended: {e}")))?
}

/// The peer request handler: it holds the host weakly so that the host can be dropped.
fn handler(host: Weak<Host>) -> Handler {
    Arc::new(move |from, request| {
        let host = host.clone();
        Box::pin(async move {
            match host.upgrade() {
                Some(host) => host.handle(from, request).await,
                None => Response::Refused(Refusal::ShuttingDown),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_replica_is_asked_again_with_growing_pauses_then_refused() {
        let pauses: Vec<AfterFailedRead> =
            (1..=BUSY_READ_ATTEMPTS_MAX).map(|n| after_failed_read(ErrorKind::Busy, n)).collect();
        let again = |backoff_ms| AfterFailedRead::Again { backoff_ms };
        assert_eq!(pauses[..3], [again(20), again(40), again(80)]);
        assert_eq!(pauses.last(), Some(&AfterFailedRead::Refuse), "busy for good: refused, never forever");
    }

    #[test]
    fn corrupt_data_stops_the_replica_at_the_first_read() {
        assert_eq!(after_failed_read(ErrorKind::Corrupt, 1), AfterFailedRead::StopReplica);
        assert_eq!(after_failed_read(ErrorKind::NotFound, 1), AfterFailedRead::Refuse);
        assert_eq!(after_failed_read(ErrorKind::Stopped, 1), AfterFailedRead::Stopping);
    }
}

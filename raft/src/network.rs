//! openraft's network for one group: every message is tagged with the group and sent over the
//! node's shared link to the target node.

use std::future::Future;
use std::sync::Arc;

use model::{GroupId, NodeId};
use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::BasicNode;

use crate::link::Peers;
use crate::types::{Entry, Snapshot, TypeConfig, Vote};
use crate::wire::{Request, Response};

type RpcResult<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, BasicNode, E>>;

pub struct NetworkFactory {
    pub group: GroupId,
    pub peers: Arc<Peers>,
    /// Most bytes of entries one append-entries message carries (`append_entries_bytes_max`).
    pub entries_bytes_max: u64,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupClient;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> GroupClient {
        GroupClient {
            group: self.group,
            target,
            peers: self.peers.clone(),
            entries: EntriesBudget::new(self.entries_bytes_max),
        }
    }
}

/// Sends one group's raft messages to one target node.
pub struct GroupClient {
    group: GroupId,
    target: NodeId,
    peers: Arc<Peers>,
    /// How much of what openraft hands over goes in one message.
    entries: EntriesBudget,
}

/// The fewest bytes of entries an append-entries message may be cut down to.
const ENTRIES_BYTES_MIN: u64 = 64 << 10;

/// How many bytes of entries one append-entries message carries.
///
/// openraft 0.9 gives every append-entries message one heartbeat interval to be answered, and
/// retries the same range after a timeout. A follower that fell behind on big entries (a bulk
/// import) would be sent more than it can take in that time, again and again, and never catch
/// up. So a message carries a prefix of the entries within the budget and is answered as a
/// partial success; a message that was not answered (openraft dropped it at its timeout) halves
/// the budget, an answered one doubles it back towards the maximum. At least one entry always
/// goes, so replication moves whatever the budget.
#[derive(Debug)]
struct EntriesBudget {
    bytes: u64,
    bytes_max: u64,
    /// A message is on its way; still set at the next call, it was dropped unanswered.
    unanswered: bool,
}

impl EntriesBudget {
    fn new(bytes_max: u64) -> EntriesBudget {
        let bytes_max = bytes_max.max(ENTRIES_BYTES_MIN);
        EntriesBudget { bytes: bytes_max, bytes_max, unanswered: false }
    }

    /// How many of `entries` the next message carries; marks it as on its way.
    fn take(&mut self, entries: &[Entry]) -> usize {
        if std::mem::replace(&mut self.unanswered, true) {
            self.bytes = (self.bytes / 2).max(ENTRIES_BYTES_MIN);
        }
        let mut bytes = 0;
        let count = entries
            .iter()
            .take_while(|entry| {
                bytes += bincode::serialized_size(entry).unwrap_or(u64::MAX);
                bytes <= self.bytes
            })
            .count();
        count.max(1).min(entries.len())
    }

    /// The message was answered (`true`) or failed: the budget grows back, or shrinks.
    fn settled(&mut self, answered: bool) {
        self.unanswered = false;
        self.bytes =
            if answered { (self.bytes * 2).min(self.bytes_max) } else { (self.bytes / 2).max(ENTRIES_BYTES_MIN) };
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unexpected answer from node {0}: {1}")]
struct Unexpected(NodeId, String);

impl GroupClient {
    fn unexpected<E: std::error::Error>(&self, response: Response) -> RPCError<NodeId, BasicNode, E> {
        RPCError::Network(NetworkError::new(&Unexpected(self.target, format!("{response:?}"))))
    }
}

impl RaftNetwork<TypeConfig> for GroupClient {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let count = self.entries.take(&rpc.entries);
        let cut = (count < rpc.entries.len()).then(|| {
            rpc.entries.truncate(count);
            rpc.entries.last().map(|entry| entry.log_id)
        });
        let request = Request::AppendEntries { group: self.group, rpc };
        let answer = self.peers.call(self.target, request, option.hard_ttl()).await;
        self.entries.settled(matches!(answer, Ok(Response::AppendEntries(Ok(_)))));
        match answer {
            Ok(Response::AppendEntries(Ok(AppendEntriesResponse::Success))) if cut.is_some() => {
                Ok(AppendEntriesResponse::PartialSuccess(cut.flatten()))
            }
            Ok(Response::AppendEntries(Ok(response))) => Ok(response),
            Ok(Response::AppendEntries(Err(error))) => Err(RPCError::RemoteError(RemoteError::new(self.target, error))),
            Ok(other) => Err(self.unexpected(other)),
            Err(error) => Err(RPCError::Unreachable(Unreachable::new(&error))),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        let request = Request::Vote { group: self.group, rpc };
        match self.peers.call(self.target, request, option.hard_ttl()).await {
            Ok(Response::Vote(Ok(response))) => Ok(response),
            Ok(Response::Vote(Err(error))) => Err(RPCError::RemoteError(RemoteError::new(self.target, error))),
            Ok(other) => Err(self.unexpected(other)),
            Err(error) => Err(RPCError::Unreachable(Unreachable::new(&error))),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let request = Request::Snapshot { group: self.group, vote, meta: snapshot.meta, data: *snapshot.snapshot };
        let call = self.peers.call(self.target, request, option.hard_ttl());
        let answer = tokio::select! {
            answer = call => answer,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        match answer {
            Ok(Response::Snapshot(Ok(response))) => Ok(response),
            Ok(Response::Snapshot(Err(fatal))) => {
                Err(StreamingError::RemoteError(RemoteError::new(self.target, fatal)))
            }
            Ok(other) => {
                let error = Unexpected(self.target, format!("{other:?}"));
                Err(StreamingError::Network(NetworkError::new(&error)))
            }
            Err(error) => Err(StreamingError::Unreachable(Unreachable::new(&error))),
        }
    }
}

#[cfg(test)]
mod tests {
    use model::{Batch, Command};
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    use super::*;

    fn entry(index: u64, name_bytes: usize) -> Entry {
        let command = Command::CreatePerformer {
            request: index,
            name: "x".repeat(name_bytes),
            description: String::new(),
            genre: String::new(),
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Batch { at: 0, commands: vec![command] }),
        }
    }

    #[test]
    fn a_message_carries_entries_within_the_budget_and_at_least_one() {
        let mut budget = EntriesBudget::new(ENTRIES_BYTES_MIN);
        let small: Vec<Entry> = (1..=10).map(|i| entry(i, 1_000)).collect();
        assert_eq!(budget.take(&small), 10, "ten small entries fit");
        budget.settled(true);
        let big: Vec<Entry> = (1..=10).map(|i| entry(i, 30_000)).collect();
        assert_eq!(budget.take(&big), 2, "two 30 KB entries fit in 64 KiB");
        budget.settled(true);
        let huge = vec![entry(1, 1 << 20), entry(2, 1)];
        assert_eq!(budget.take(&huge), 1, "an entry above the budget still goes, alone");
    }

    #[test]
    fn an_unanswered_message_halves_the_budget_and_answers_restore_it() {
        let mut budget = EntriesBudget::new(1 << 20);
        let entries: Vec<Entry> = (1..=100).map(|i| entry(i, 20_000)).collect();
        let full = budget.take(&entries);
        assert!(full > 40 && full < 60, "about 1 MiB of 20 KB entries, not {full}");
        // openraft dropped that message at its timeout: the next carries about half.
        let halved = budget.take(&entries);
        assert!(halved * 2 <= full + 1 && halved >= full / 2 - 1, "{halved} is not half of {full}");
        budget.settled(false);
        assert!(budget.take(&entries) < halved, "a failed message shrinks the budget again");
        for _ in 0..8 {
            budget.settled(true);
            budget.take(&entries);
        }
        budget.settled(true);
        assert_eq!(budget.take(&entries), full, "answers grow the budget back to its maximum");
    }
}

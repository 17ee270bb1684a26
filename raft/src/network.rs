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
use crate::types::{Snapshot, TypeConfig, Vote};
use crate::wire::{Request, Response};

type RpcResult<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, BasicNode, E>>;

pub struct NetworkFactory {
    pub group: GroupId,
    pub peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupClient;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> GroupClient {
        GroupClient { group: self.group, target, peers: self.peers.clone() }
    }
}

/// Sends one group's raft messages to one target node.
pub struct GroupClient {
    group: GroupId,
    target: NodeId,
    peers: Arc<Peers>,
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
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let request = Request::AppendEntries { group: self.group, rpc };
        match self.peers.call(self.target, request, option.hard_ttl()).await {
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

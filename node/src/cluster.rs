//! The gateway's [`gateway::Cluster`] over this node's raft host.

use std::sync::Arc;

use model::{ClusterError, ClusterStatus, Command, Consistency, GroupId, Millis, NodeId, Outcome, Query, QueryResult};
use raft::Host;

pub struct HostCluster(pub Arc<Host>);

impl gateway::Cluster for HostCluster {
    fn node_id(&self) -> NodeId {
        self.0.node_id()
    }

    fn inventory_groups(&self) -> u32 {
        self.0.inventory_groups()
    }

    fn now_ms(&self) -> Millis {
        self.0.now_ms()
    }

    async fn write(&self, group: GroupId, command: Command) -> Result<Outcome, ClusterError> {
        self.0.write(group, command).await
    }

    async fn read(&self, group: GroupId, query: Query, consistency: Consistency) -> Result<QueryResult, ClusterError> {
        self.0.read(group, query, consistency).await
    }

    async fn status(&self) -> ClusterStatus {
        self.0.status().await
    }

    async fn snapshot(&self, group: GroupId) -> Result<(), ClusterError> {
        self.0.snapshot(group).await
    }
}

//! The gateway's [`gateway::Cluster`] over this node's raft host.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use model::{
    Backup, BackupError, BackupGroup, ClusterError, ClusterStatus, Command, Consistency, Faults, GroupId, Millis,
    NodeId, Outcome, Query, QueryResult, SearchQuery, SearchResult, SeatChanges,
};
use raft::Host;
use search::SearchShard;
use storage::DiskFaults;

pub struct HostCluster {
    pub host: Arc<Host>,
    /// This node's disk fault switches, for `inject_faults`.
    pub disk: Arc<DiskFaults>,
    /// This node's search shard, for its metrics and the search cache's key.
    pub shard: Arc<SearchShard>,
    /// Where this node's replicas publish their ticket changes, for the gateway's seat feeds.
    pub changes: Arc<storage::Changes>,
    /// Copies this node's database, for backups.
    pub checkpoints: storage::Checkpointer,
}

/// The description a backup folder holds beside its database.
pub const BACKUP_MANIFEST: &str = "backup.json";
/// The database's folder inside a backup folder (as inside a node's data folder).
pub const BACKUP_DB: &str = "db";

impl gateway::Cluster for HostCluster {
    fn node_id(&self) -> NodeId {
        self.host.node_id()
    }

    fn inventory_groups(&self) -> u32 {
        self.host.inventory_groups()
    }

    fn now_ms(&self) -> Millis {
        self.host.now_ms()
    }

    fn seat_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<SeatChanges>> {
        self.changes.subscribe_seats()
    }

    async fn write(&self, group: GroupId, command: Command) -> Result<Outcome, ClusterError> {
        self.host.write(group, command).await
    }

    async fn read(&self, group: GroupId, query: Query, consistency: Consistency) -> Result<QueryResult, ClusterError> {
        self.host.read(group, query, consistency).await
    }

    async fn status(&self) -> ClusterStatus {
        self.host.status().await
    }

    async fn snapshot(&self, group: GroupId) -> Result<(), ClusterError> {
        self.host.snapshot(group).await
    }

    async fn backup(&self, dir: std::path::PathBuf) -> Result<Backup, BackupError> {
        let (started_at, start) = (self.host.now_ms(), std::time::Instant::now());
        // Every replica first catches up with its leader, so that the copy holds every write
        // acknowledged before the backup was asked for. Every node hosts every group for now.
        let mut groups = Vec::new();
        for group in 0..=self.host.inventory_groups() {
            let applied_index = self.host.catch_up(group).await?;
            groups.push(BackupGroup { group, applied_index });
        }
        std::fs::create_dir(&dir).map_err(|e| BackupError::Refused(format!("cannot make {}: {e}", dir.display())))?;
        let checkpoints = self.checkpoints.clone();
        let db = dir.join(BACKUP_DB);
        tokio::task::spawn_blocking(move || checkpoints.create(&db))
            .await
            .map_err(|e| BackupError::Failed(e.to_string()))?
            .map_err(|e| BackupError::Failed(e.to_string()))?;
        let backup = Backup {
            node: self.host.node_id(),
            dir: dir.display().to_string(),
            groups,
            started_at,
            took_ms: start.elapsed().as_millis() as u64,
        };
        let manifest = serde_json::to_vec_pretty(&backup).map_err(|e| BackupError::Failed(e.to_string()))?;
        std::fs::write(dir.join(BACKUP_MANIFEST), manifest).map_err(|e| BackupError::Failed(e.to_string()))?;
        Ok(backup)
    }

    async fn search(&self, query: SearchQuery) -> Result<SearchResult, ClusterError> {
        self.host.search(query).await
    }

    fn searchable_events(&self) -> u64 {
        self.shard.searchable_events()
    }

    fn leads(&self, group: GroupId) -> bool {
        self.host.leader_of(group) == Some(self.host.node_id())
    }

    fn inject_faults(&self, faults: Faults) {
        tracing::warn!(?faults, "injecting faults");
        if let Some(offset_ms) = faults.clock_offset_ms {
            self.host.set_clock_offset(offset_ms);
        }
        if let Some(delay_ms) = faults.log_write_delay_ms {
            self.disk.write_delay_ms.store(delay_ms, Ordering::Relaxed);
        }
        if let Some(fail) = faults.log_write_fail {
            self.disk.write_fail.store(fail, Ordering::Relaxed);
        }
    }

    fn node_metrics(&self) -> String {
        let mut text = self.host.metrics_text();
        text.push_str(&self.shard.metrics());
        text
    }
}

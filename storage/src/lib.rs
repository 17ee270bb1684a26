//! Storage for Boxoffice: one RocksDB per node holding every raft group's log, vote, state
//! machine and snapshot, and the ticketing state machine itself.
//!
//! Layout:
//! - [`db`]: opening the database, its column families and key layout;
//! - [`writer`]: group commit of log writes, one fsync for everything queued;
//! - [`log_store`]: a group's raft log and vote (openraft storage-v2 `RaftLogStorage`);
//! - [`ledger`]: the deterministic ticketing state machine over rows;
//! - [`state_machine`]: applying entries to RocksDB, snapshots, and the query reader.
//!
//! [`Storage`] ties them together for the raft host: it opens one group's parts on demand.

// openraft's storage traits fix the error type (`StorageError`, about 224 bytes); helpers return
// it as the traits do rather than boxing and unboxing at every boundary.
#![allow(clippy::result_large_err)]

pub mod db;
pub mod ledger;
pub mod log_store;
pub mod state_machine;
pub mod writer;

use std::path::Path;
use std::sync::Arc;

use model::GroupId;
use raft::{GroupParts, GroupStorage, SeamError};
use rocksdb::DB;

pub use log_store::LogStore;
pub use state_machine::{Change, Changes, StateMachine};
pub use writer::{DiskFaults, LogWriter, WriteError};

/// A node's storage: its database and its log writer.
pub struct Storage {
    db: Arc<DB>,
    writer: LogWriter,
    faults: Arc<DiskFaults>,
    changes: Arc<Changes>,
    /// The receiving end of the change stream, until the search index takes it.
    change_stream: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Change>>>,
}

/// Changes waiting for the search index before a group is marked for a rebuild instead.
const CHANGES_QUEUED_MAX: usize = 65_536;

impl Storage {
    pub fn open(path: &Path) -> Result<Storage, db::OpenError> {
        let db = db::open(path)?;
        let faults = Arc::new(DiskFaults::default());
        let writer = LogWriter::start(db.clone(), faults.clone());
        let (changes, receiver) = Changes::channel(CHANGES_QUEUED_MAX);
        let changes = Arc::new(changes);
        Ok(Storage { db, writer, faults, changes, change_stream: std::sync::Mutex::new(Some(receiver)) })
    }

    /// The stream of searchable changes, once (the search index takes it).
    pub fn take_changes(&self) -> Option<tokio::sync::mpsc::Receiver<Change>> {
        self.change_stream.lock().expect("change stream lock").take()
    }

    /// The change stream's sender side, with the groups to rebuild.
    pub fn changes(&self) -> Arc<Changes> {
        self.changes.clone()
    }

    /// The switches that inject disk faults into this node's log writes.
    pub fn faults(&self) -> Arc<DiskFaults> {
        self.faults.clone()
    }

    /// What copies this node's database while it runs.
    pub fn checkpointer(&self) -> Checkpointer {
        Checkpointer { db: self.db.clone() }
    }
}

/// Copies a node's database, every group's log and state at one instant, while the node runs
/// (a RocksDB checkpoint: memtables flushed, then the files hard-linked where the folder is on
/// the same disk, copied where not). A node opens the copy as its own database.
#[derive(Clone)]
pub struct Checkpointer {
    db: Arc<DB>,
}

impl Checkpointer {
    /// Writes the copy into `dir`, which must not exist yet (its parent must).
    pub fn create(&self, dir: &Path) -> Result<(), rocksdb::Error> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)
    }
}

impl GroupStorage for Storage {
    type Log = LogStore;
    type StateMachine = StateMachine;

    fn open(&self, group: GroupId) -> Result<GroupParts<LogStore, StateMachine>, SeamError> {
        let log = LogStore::new(group, self.db.clone(), self.writer.clone());
        let (state_machine, reader) = StateMachine::open(group, self.db.clone(), self.changes.clone())?;
        Ok(GroupParts { log, state_machine, reader })
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};
    use raft::types::StorageError;
    use raft::TypeConfig;

    use super::*;

    /// A fresh database in a temporary folder per test; the folder lives as long as the stores.
    struct Fresh;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Fresh {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().expect("temporary folder");
            let storage = Storage::open(dir.path()).expect("database opens");
            let parts = storage.open(3).expect("group opens");
            Ok((dir, parts.log, parts.state_machine))
        }
    }

    /// A checkpoint holds what was written before it, opens as a database of its own, and
    /// refuses a folder that exists.
    #[tokio::test]
    async fn a_checkpoint_holds_what_was_written_and_opens_as_a_database() {
        use openraft::storage::RaftLogStorage;
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("db")).unwrap();
        let mut parts = storage.open(3).unwrap();
        let vote = openraft::Vote::new(7, 2);
        parts.log.save_vote(&vote).await.unwrap();
        let copy = dir.path().join("copy");
        storage.checkpointer().create(&copy).unwrap();
        assert!(storage.checkpointer().create(&copy).is_err(), "an existing folder is refused");
        let restored = Storage::open(&copy).unwrap();
        let mut parts = restored.open(3).unwrap();
        assert_eq!(parts.log.read_vote().await.unwrap(), Some(vote));
    }

    /// openraft's own conformance suite for storage-v2: log state, vote, append, truncate,
    /// purge, apply, membership and snapshots.
    #[test]
    fn storage_passes_the_openraft_suite() {
        Suite::test_all(Fresh).expect("every openraft storage test passes");
    }
}

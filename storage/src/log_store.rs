//! One group's raft log and vote, in the node's RocksDB (openraft storage-v2).
//!
//! Every change goes through the [`LogWriter`]: appended entries are readable at once and
//! reported flushed only once synced; votes, truncations and purges return once synced.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, StorageIOError};
use raft::types::{Entry, LogId, StorageError, Vote};
use raft::TypeConfig;
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};

use crate::db::{self, cf, CF_LOG, CF_RAFT};
use crate::writer::{LogWriter, WriteError};

const VOTE: &[u8] = b"v";
const PURGED: &[u8] = b"p";
const COMMITTED: &[u8] = b"c";

#[derive(Clone)]
pub struct LogStore {
    group: u32,
    db: Arc<DB>,
    writer: LogWriter,
}

fn read_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_error(e: WriteError) -> StorageError {
    StorageIOError::new(ErrorSubject::Logs, ErrorVerb::Write, openraft::AnyError::new(&e)).into()
}

impl LogStore {
    pub fn new(group: u32, db: Arc<DB>, writer: LogWriter) -> LogStore {
        LogStore { group, db, writer }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, tag: &[u8]) -> Result<Option<T>, StorageError> {
        let bytes = self.db.get_cf(cf(&self.db, CF_RAFT), db::key(self.group, tag)).map_err(read_error)?;
        bytes.map(|b| bincode::deserialize(&b).map_err(|e| read_error(*e))).transpose()
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let end = db::log_key(self.group, u64::MAX);
        let mut iter = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::From(&end, Direction::Reverse));
        match iter.next() {
            Some(Ok((key, value))) if key.starts_with(&db::group_prefix(self.group)) => {
                let entry: Entry = bincode::deserialize(&value).map_err(|e| read_error(*e))?;
                Ok(Some(entry.log_id))
            }
            Some(Err(e)) => Err(read_error(e)),
            _ => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let start_key = db::log_key(self.group, start);
        let iter = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::From(&start_key, Direction::Forward));
        let mut entries = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(read_error)?;
            if !key.starts_with(&db::group_prefix(self.group)) || !range.contains(&db::log_index(&key)) {
                break;
            }
            entries.push(bincode::deserialize(&value).map_err(|e| read_error(*e))?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT), db::key(self.group, VOTE), bincode::serialize(vote).expect("encodes"));
        self.writer.write(batch).await.map_err(|e| StorageIOError::write_vote(openraft::AnyError::error(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Only speeds up a restart (entries up to it are applied at once), so no sync needed.
        let value = bincode::serialize(&committed).expect("encodes");
        self.db
            .put_cf(cf(&self.db, CF_RAFT), db::key(self.group, COMMITTED), value)
            .map_err(|e| write_error(WriteError::Disk(e.to_string())))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = WriteBatch::default();
        let family = cf(&self.db, CF_LOG);
        for entry in entries {
            let value = bincode::serialize(&entry).expect("entries encode");
            batch.put_cf(family, db::log_key(self.group, entry.log_id.index), value);
        }
        // Written now, readable at once; openraft hears it is flushed only after the sync, so a
        // vote or a commit never counts an entry that a crash could lose.
        self.writer.append(batch, callback).await.map_err(write_error)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let from = db::log_key(self.group, log_id.index);
        let to = db::log_key(self.group, u64::MAX);
        batch.delete_range_cf(cf(&self.db, CF_LOG), from, to);
        self.writer.write(batch).await.map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT), db::key(self.group, PURGED), bincode::serialize(&log_id).expect("encodes"));
        let from = db::log_key(self.group, 0);
        let to = db::log_key(self.group, log_id.index + 1);
        batch.delete_range_cf(cf(&self.db, CF_LOG), from, to);
        self.writer.write(batch).await.map_err(write_error)
    }
}

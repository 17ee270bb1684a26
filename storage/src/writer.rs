//! Group commit of the log: every group's log writes land in RocksDB at once (in the WAL and
//! memtable, readable, not yet durable), and one thread syncs the WAL for all of them together.
//!
//! Appends are answered through openraft's flush callback only after the sync that covers them,
//! so openraft never counts an entry a crash could lose, while the group goes on proposing and
//! replicating meanwhile. Votes, truncations and purges wait for their sync before returning.
//! One fsync serves every write queued since the last one, from every group of the node.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::LogFlushed;
use raft::TypeConfig;
use rocksdb::{WriteBatch, WriteOptions, DB};
use tokio::sync::oneshot;

/// Syncs queued for the log thread before new writers wait.
const LOG_QUEUE_SYNCS_MAX: usize = 4_096;
/// Waiters one sync may answer.
const LOG_SYNC_WAITERS_MAX: usize = 4_096;

/// Why a log write did not become durable. Either way openraft stops the group, and the node
/// with it: a replica that cannot write its log must not vote or answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// RocksDB refused the write or its sync (a full disk, an I/O error).
    #[error("log write failed: {0}")]
    Disk(String),
    /// The sync thread is gone (the node is stopping, or the thread panicked).
    #[error("the log sync thread stopped")]
    Stopped,
}

/// Disk faults to inject into log writes (chaos testing): a slow disk and a full one.
#[derive(Debug, Default)]
pub struct DiskFaults {
    /// Added before every sync.
    pub write_delay_ms: AtomicU64,
    /// Every sync fails as on a full disk.
    pub write_fail: AtomicBool,
}

/// Someone waiting for the next sync.
enum Waiter {
    Append(LogFlushed<TypeConfig>),
    Done(oneshot::Sender<Result<(), WriteError>>),
}

#[derive(Clone)]
pub struct LogWriter {
    db: Arc<DB>,
    queue: std::sync::mpsc::SyncSender<Waiter>,
    /// Dropped with the last writer: ends the sync thread and waits for it.
    _thread: Arc<SyncThread>,
}

/// The log sync thread, stopped and joined when the last writer goes: the thread holds the
/// database, and a process that exited while it was closing it (or still syncing) would abort
/// in RocksDB's teardown ("pthread lock: invalid argument").
struct SyncThread {
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        // Every writer's sender is gone (a writer drops its `queue` before this, its last
        // shared part), so the thread sees its queue close and ends.
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                tracing::error!("the log sync thread panicked");
            }
        }
    }
}

impl LogWriter {
    pub fn start(db: Arc<DB>, faults: Arc<DiskFaults>) -> LogWriter {
        let (queue, waiters) = std::sync::mpsc::sync_channel::<Waiter>(LOG_QUEUE_SYNCS_MAX);
        let syncing = db.clone();
        let handle = std::thread::Builder::new()
            .name("log-sync".into())
            .spawn(move || run(syncing, waiters, faults))
            .expect("the log sync thread starts");
        let thread = SyncThread { handle: Some(handle) };
        LogWriter { db, queue, _thread: Arc::new(thread) }
    }

    /// Writes `batch` without waiting for the disk: readable at once, durable at the next sync.
    fn write_unsynced(&self, batch: WriteBatch) -> Result<(), WriteError> {
        let mut options = WriteOptions::default();
        options.set_sync(false);
        self.db.write_opt(batch, &options).map_err(|e| WriteError::Disk(e.to_string()))
    }

    async fn enqueue(&self, waiter: Waiter) -> Result<(), WriteError> {
        match self.queue.try_send(waiter) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::TrySendError::Full(waiter)) => {
                // The queue is bounded; waiting for room blocks, so wait on the blocking pool.
                let queue = self.queue.clone();
                tokio::task::spawn_blocking(move || queue.send(waiter))
                    .await
                    .map_err(|_| WriteError::Stopped)?
                    .map_err(|_| WriteError::Stopped)
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(WriteError::Stopped),
        }
    }

    /// Writes appended entries; `flushed` hears of it once they are synced.
    pub async fn append(&self, batch: WriteBatch, flushed: LogFlushed<TypeConfig>) -> Result<(), WriteError> {
        if let Err(error) = self.write_unsynced(batch) {
            flushed.log_io_completed(Err(std::io::Error::other(error.to_string())));
            return Err(error);
        }
        self.enqueue(Waiter::Append(flushed)).await
    }

    /// Writes `batch` and returns once it is synced to disk.
    pub async fn write(&self, batch: WriteBatch) -> Result<(), WriteError> {
        self.write_unsynced(batch)?;
        let (done, synced) = oneshot::channel();
        self.enqueue(Waiter::Done(done)).await?;
        synced.await.map_err(|_| WriteError::Stopped)?
    }
}

fn run(db: Arc<DB>, waiters: std::sync::mpsc::Receiver<Waiter>, faults: Arc<DiskFaults>) {
    while let Ok(first) = waiters.recv() {
        let mut round = vec![first];
        while round.len() < LOG_SYNC_WAITERS_MAX {
            match waiters.try_recv() {
                Ok(waiter) => round.push(waiter),
                Err(_) => break,
            }
        }
        let delay_ms = faults.write_delay_ms.load(Ordering::Relaxed);
        if delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        }
        // One fsync makes every write before it durable: the WAL is sequential.
        let result = match faults.write_fail.load(Ordering::Relaxed) {
            true => Err(WriteError::Disk("injected fault: no space left on device".into())),
            false => db.flush_wal(true).map_err(|e| WriteError::Disk(e.to_string())),
        };
        if let Err(error) = &result {
            tracing::error!(%error, "log sync failed");
        }
        for waiter in round {
            match waiter {
                Waiter::Append(flushed) => {
                    flushed.log_io_completed(result.clone().map_err(|e| std::io::Error::other(e.to_string())))
                }
                Waiter::Done(done) => {
                    let _ = done.send(result.clone());
                }
            }
        }
    }
}

//! Group commit of log writes: appends, votes and truncations of every group on the node go
//! through one thread that writes what has queued up and then syncs the WAL once for all of it.
//!
//! A caller is answered only after the sync, so when `append` returns (and openraft is told the
//! entries are flushed) they are on disk. Waiting writers of many groups share one fsync.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rocksdb::{WriteBatch, WriteOptions, DB};
use tokio::sync::oneshot;

/// Writes queued for the log thread before new writers wait.
const LOG_QUEUE_WRITES_MAX: usize = 4_096;
/// Writes one sync may carry.
const LOG_WRITES_PER_SYNC_MAX: usize = 1_024;

/// Disk faults to inject into log writes (chaos testing): a slow disk and a full one.
#[derive(Debug, Default)]
pub struct DiskFaults {
    /// Added before every sync round.
    pub write_delay_ms: AtomicU64,
    /// Every round fails as a full disk would.
    pub write_fail: AtomicBool,
}

struct Job {
    batch: WriteBatch,
    done: oneshot::Sender<Result<(), String>>,
}

#[derive(Clone)]
pub struct LogWriter {
    queue: std::sync::mpsc::SyncSender<Job>,
}

impl LogWriter {
    pub fn start(db: Arc<DB>, faults: Arc<DiskFaults>) -> LogWriter {
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(LOG_QUEUE_WRITES_MAX);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || run(db, jobs, faults))
            .expect("the log writer thread starts");
        LogWriter { queue }
    }

    /// Writes `batch` and returns once it is synced to disk.
    pub async fn write(&self, batch: WriteBatch) -> Result<(), String> {
        let (done, finished) = oneshot::channel();
        match self.queue.try_send(Job { batch, done }) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                // The queue is bounded; waiting for room blocks, so wait on the blocking pool.
                let queue = self.queue.clone();
                tokio::task::spawn_blocking(move || queue.send(job))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|_| "the log writer stopped".to_string())?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err("the log writer stopped".into()),
        }
        finished.await.map_err(|_| "the log writer stopped".to_string())?
    }
}

fn run(db: Arc<DB>, jobs: std::sync::mpsc::Receiver<Job>, faults: Arc<DiskFaults>) {
    let mut unsynced = WriteOptions::default();
    unsynced.set_sync(false);
    while let Ok(first) = jobs.recv() {
        let mut round = vec![first];
        while round.len() < LOG_WRITES_PER_SYNC_MAX {
            match jobs.try_recv() {
                Ok(job) => round.push(job),
                Err(_) => break,
            }
        }
        let delay_ms = faults.write_delay_ms.load(Ordering::Relaxed);
        if delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        }
        let mut dones = Vec::with_capacity(round.len());
        let mut result = match faults.write_fail.load(Ordering::Relaxed) {
            true => Err("injected fault: no space left on device".to_string()),
            false => Ok(()),
        };
        for job in round {
            if result.is_ok() {
                result = db.write_opt(job.batch, &unsynced).map_err(|e| e.to_string());
            }
            dones.push(job.done);
        }
        // One fsync makes every write of the round durable: the WAL is sequential.
        let result = result.and_then(|()| db.flush_wal(true).map_err(|e| e.to_string()));
        if let Err(error) = &result {
            tracing::error!(%error, "log write failed");
        }
        for done in dones {
            let _ = done.send(result.clone());
        }
    }
}

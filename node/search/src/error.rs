//! How the shard fails, sorted by what its caller can do about it: tantivy's many errors are
//! sorted here once, so that the node can tell the raft host without knowing tantivy.
//!
//! Each message carries its cause's text (the logs show errors by their message), so the cause
//! is not also given as a `source`, which would print it twice in a chain.

use std::path::PathBuf;

use tantivy::directory::error::LockError;
use tantivy::TantivyError;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The index's files are damaged, missing, unreadable or of a layout this build cannot read
    /// (tantivy's data corruption, open-read, I/O, incompatible-index, deserialize and
    /// open-directory errors): an answer read from them could be wrong. The index is derived,
    /// so removing its folder and restarting the node rebuilds it.
    #[error("the search index is damaged or unreadable: {0}")]
    Corrupt(TantivyError),
    /// Another writer holds the index's lock (another process on the same folder): it may be
    /// free a moment later.
    #[error("the search index is locked by another writer: {0}")]
    Busy(TantivyError),
    /// The index writer's threads ended (a worker panicked, a lock was poisoned): nothing more
    /// is written until the shard is opened again.
    #[error("the search index writer has stopped: {0}")]
    Stopped(TantivyError),
    /// Anything else tantivy reports: an invalid argument, a missing field, an internal error.
    #[error("the search index failed: {0}")]
    Index(TantivyError),
    /// The index's folder cannot be made, opened or cleared (permissions, a full disk).
    #[error("cannot {action} the search index folder {}: {cause}", path.display())]
    Folder { action: &'static str, path: PathBuf, cause: std::io::Error },
    /// A thread the shard needs could not be started.
    #[error("cannot start the thread {name}: {cause}")]
    Thread { name: &'static str, cause: std::io::Error },
}

impl From<TantivyError> for SearchError {
    fn from(error: TantivyError) -> Self {
        match error {
            TantivyError::DataCorruption(_)
            | TantivyError::OpenReadError(_)
            | TantivyError::OpenDirectoryError(_)
            | TantivyError::IoError(_)
            | TantivyError::IncompatibleIndex(_)
            | TantivyError::DeserializeError(_) => SearchError::Corrupt(error),
            TantivyError::LockFailure(LockError::LockBusy, _) => SearchError::Busy(error),
            TantivyError::ErrorInThread(_) | TantivyError::Poisoned => SearchError::Stopped(error),
            _ => SearchError::Index(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tantivy_errors_are_sorted_by_what_can_be_done() {
        let corrupt = TantivyError::IoError(std::sync::Arc::new(std::io::Error::other("short read")));
        assert!(matches!(SearchError::from(corrupt), SearchError::Corrupt(_)));
        let locked = TantivyError::LockFailure(LockError::LockBusy, None);
        assert!(matches!(SearchError::from(locked), SearchError::Busy(_)));
        let killed = TantivyError::ErrorInThread("An index writer was killed.".into());
        assert!(matches!(SearchError::from(killed), SearchError::Stopped(_)));
        let other = TantivyError::InvalidArgument("no".into());
        assert!(matches!(SearchError::from(other), SearchError::Index(_)));
    }
}

//! What the node gives the raft host: a group's storage, a reader of its applied state, and the
//! node's search shard. The storage crate and the node implement these traits; `host`,
//! `proposer` and `refusals` use them, and none of them defines them, so the arrows between
//! those modules run one way.
//!
//! Errors across this seam are typed by [`ErrorKind`], because the host treats them apart: a
//! [`ErrorKind::Corrupt`] replica is stopped (the node then exits rather than serve around it),
//! a [`ErrorKind::Busy`] one is asked again, and the others are answered as they are.

use std::sync::Arc;

use model::{BookingId, Command, GroupId, Millis, Query, QueryResult, SearchQuery, SearchResult, TicketId};
use openraft::storage::{RaftLogStorage, RaftStateMachine};

use crate::types::TypeConfig;

/// How a call across the seam failed, as the host must act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Stored data does not decode or breaks an invariant: the replica must stop, because any
    /// answer built on it could be wrong.
    Corrupt,
    /// The part is briefly unable to answer (a lock held, a queue full, a thread pool
    /// saturated): the same call may succeed a moment later.
    Busy,
    /// What was asked for is not there (a group this node does not hold, a shard that has not
    /// indexed a group yet).
    NotFound,
    /// The part has stopped or is stopping (its thread ended, the node shuts down).
    Stopped,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Busy => "busy",
            ErrorKind::NotFound => "not found",
            ErrorKind::Stopped => "stopped",
        })
    }
}

/// A failed call across the seam: its kind, and what happened, for the logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct SeamError {
    pub kind: ErrorKind,
    pub detail: String,
}

impl SeamError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> SeamError {
        SeamError { kind, detail: detail.into() }
    }

    pub fn corrupt(detail: impl Into<String>) -> SeamError {
        SeamError::new(ErrorKind::Corrupt, detail)
    }

    pub fn busy(detail: impl Into<String>) -> SeamError {
        SeamError::new(ErrorKind::Busy, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> SeamError {
        SeamError::new(ErrorKind::NotFound, detail)
    }

    pub fn stopped(detail: impl Into<String>) -> SeamError {
        SeamError::new(ErrorKind::Stopped, detail)
    }
}

/// Reads a group's applied state. Implemented by the storage crate.
pub trait StateReader: Send + Sync + 'static {
    fn query(&self, query: &Query) -> Result<QueryResult, SeamError>;

    /// The time of the last applied entry: the floor for the next stamp.
    fn last_applied_at(&self) -> Millis;

    /// Which of `tickets` of the booking's event a hold stamped `at` could not take, as the
    /// applied state stands: sold, or held by another booking beyond `at`.
    fn taken(&self, booking: BookingId, tickets: &[TicketId], at: Millis) -> Result<Vec<TicketId>, SeamError>;
}

/// For a hold, the tickets it could not take as `reader`'s applied state stands at `at`; `None`
/// for other commands, for holds that look possible, and when the state cannot be read (the
/// hold then goes through the log, where apply decides). The one test of every early refusal
/// (the leader's proposer, a follower's refuser): a hold under an idempotency key may be the
/// retry of one that took these very seats, which only apply knows, so it always goes through
/// the log.
pub fn plainly_taken(reader: &dyn StateReader, command: &Command, at: Millis) -> Option<Vec<TicketId>> {
    let Command::Hold { booking, tickets, idempotency: None, .. } = command else { return None };
    reader.taken(*booking, tickets, at).ok().filter(|taken| !taken.is_empty())
}

/// What one group runs on: its log, its state machine and a reader of its applied state.
pub struct GroupParts<L, S> {
    pub log: L,
    pub state_machine: S,
    pub reader: Arc<dyn StateReader>,
}

/// Opens the parts of one group. Implemented by the storage crate.
pub trait GroupStorage {
    type Log: RaftLogStorage<TypeConfig>;
    type StateMachine: RaftStateMachine<TypeConfig>;

    fn open(&self, group: GroupId) -> Result<GroupParts<Self::Log, Self::StateMachine>, SeamError>;
}

/// A node's search shard, as the host needs it. Implemented by the node over its shard.
pub trait Searcher: Send + Sync + 'static {
    /// Answers `query` for those of `groups` this node's index has caught up with; the result
    /// names the groups it covers.
    fn search(&self, groups: &[GroupId], query: &SearchQuery) -> Result<SearchResult, SeamError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_says_its_kind_first() {
        assert_eq!(SeamError::corrupt("row t/1 undecodable").to_string(), "corrupt: row t/1 undecodable");
        assert_eq!(SeamError::busy("queue full").kind, ErrorKind::Busy);
    }
}

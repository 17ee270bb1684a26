//! What the indexer is fed, as it needs it: the stream of changes out of this node's state
//! machines, and reads of this node's replicas of the inventory groups. The node implements
//! both over its storage and its raft host; this crate knows neither.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use model::{Event, EventId, GroupId};
use tokio::sync::mpsc;

/// Events whose searchable facts changed in one apply of a group: created, or tickets sold or
/// refunded. Every apply sends one, with or without events, so that the indexer knows the
/// applied index its documents reflect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub group: GroupId,
    /// The group's applied log index after this apply.
    pub applied: u64,
    pub events: Vec<EventId>,
}

/// What the stream holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Change(Change),
    /// Nothing queued now; more may come.
    Empty,
    /// The stream has ended: nothing more will come.
    Ended,
}

/// The change stream, taken without waiting. A change the stream could not carry (it was full,
/// or the replica installed a snapshot) is reported by [`Replicas::take_lost`] instead.
pub trait ChangeStream: Send {
    fn try_next(&mut self) -> Next;
}

impl ChangeStream for mpsc::Receiver<Change> {
    fn try_next(&mut self) -> Next {
        match self.try_recv() {
            Ok(change) => Next::Change(change),
            Err(mpsc::error::TryRecvError::Empty) => Next::Empty,
            Err(mpsc::error::TryRecvError::Disconnected) => Next::Ended,
        }
    }
}

/// This node's replicas of the inventory groups, as the indexer reads them: their applied
/// state, never a leader's (the index is of this node's replicas).
pub trait Replicas: Send + Sync {
    /// Why a read failed; the indexer logs it and leaves the group unserved or rebuilds it.
    type Error: std::fmt::Display;

    /// The inventory groups are `1..=inventory_groups()`.
    fn inventory_groups(&self) -> u32;

    /// Each group's applied index when its state machine opened: every later change comes
    /// through the stream, so a group indexed at exactly this point is current.
    fn opened(&self) -> BTreeMap<GroupId, u64>;

    /// The groups whose changes the stream did not carry since the last call: each must be
    /// rebuilt whole.
    fn take_lost(&self) -> BTreeSet<GroupId>;

    /// The group's applied index on this node now, if it has one.
    fn applied(&self, group: GroupId) -> Option<u64>;

    /// At most `limit` events of `group` with ids above `after`, in id order, each with how
    /// many of its tickets are sold; none past the last.
    fn events_after(
        &self,
        group: GroupId,
        after: EventId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(Event, u32)>, Self::Error>> + Send;

    /// Those of `events` that exist in `group`, each with how many of its tickets are sold.
    fn events(
        &self,
        group: GroupId,
        events: Vec<EventId>,
    ) -> impl Future<Output = Result<Vec<(Event, u32)>, Self::Error>> + Send;
}

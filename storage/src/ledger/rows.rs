//! Rows as the ledger sees them: the [`Rows`] it reads and writes through, how a row is encoded,
//! and the [`Fault`] that stops apply when a row cannot be read.

use std::ops::Range;
use std::sync::Arc;

use model::{EventId, SeatMap, TicketId};
use raft::ErrorKind;
use serde::{de::DeserializeOwned, Serialize};

use crate::ledger::keys;

/// A row that could not be read or decoded: the state machine cannot go on.
/// `kind` says whether asking again may help ([`ErrorKind::Busy`]) or the replica must stop
/// ([`ErrorKind::Corrupt`]).
#[derive(Debug, thiserror::Error)]
#[error("state machine row {key:?}: {reason}")]
pub struct Fault {
    pub key: Vec<u8>,
    pub reason: String,
    pub kind: ErrorKind,
}

impl Fault {
    /// A row that is there but does not make sense: undecodable, or a key too short.
    pub fn corrupt(key: &[u8], reason: impl Into<String>) -> Fault {
        Fault { key: key.to_vec(), reason: reason.into(), kind: ErrorKind::Corrupt }
    }
}

impl From<Fault> for raft::SeamError {
    fn from(fault: Fault) -> raft::SeamError {
        raft::SeamError::new(fault.kind, fault.to_string())
    }
}

/// A row as stored: key (without the group prefix) and value.
pub type RawRow = (Vec<u8>, Vec<u8>);

/// Raw rows of one group's state.
pub trait Rows {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Fault>;
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: Vec<u8>);

    /// Rows whose key starts with `prefix`, in key order, at most `limit`.
    fn scan(&self, prefix: &[u8], limit: usize) -> Result<Vec<RawRow>, Fault>;

    /// The price of each ticket of an event, or `None` if there is no such event. Events never
    /// change once created, so implementations may cache this.
    fn prices(&mut self, event: EventId) -> Result<Option<Arc<Vec<u64>>>, Fault> {
        Ok(self.seat_map(event)?.map(|m| Arc::new(m.prices())))
    }

    /// An event's seat map (cacheable like its prices).
    fn seat_map(&mut self, event: EventId) -> Result<Option<Arc<SeatMap>>, Fault> {
        Ok(read::<SeatMap, _>(self, &keys::seat_map(event))?.map(Arc::new))
    }

    /// The tickets of `event` this group sells, for an event in parts (`None`: all of them).
    /// Written with the event's seat map and never changed, so cacheable like it: every hold
    /// asks.
    fn part_tickets(&mut self, event: EventId) -> Result<Option<Range<TicketId>>, Fault> {
        read(self, &keys::part(event))
    }
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("domain records always encode")
}

pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, Fault> {
    bincode::deserialize(bytes).map_err(|e| Fault::corrupt(key, format!("undecodable: {e}")))
}

pub fn read<T: DeserializeOwned, R: Rows + ?Sized>(rows: &R, key: &[u8]) -> Result<Option<T>, Fault> {
    rows.get(key)?.map(|bytes| decode(key, &bytes)).transpose()
}

pub fn write<T: Serialize>(rows: &mut impl Rows, key: Vec<u8>, value: &T) {
    rows.put(key, encode(value));
}

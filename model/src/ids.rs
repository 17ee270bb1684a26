//! Identifiers.
//!
//! Venues, performers, users and events get sequential numbers from the placement group
//! (group 0). Tickets are numbered within their event, in seat-map order. A booking id is made
//! by the gateway that takes the request and carries its event id, so that any gateway can find
//! the group that owns a booking without asking anyone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub type NodeId = u64;
pub type GroupId = u32;
pub type VenueId = u64;
pub type PerformerId = u64;
pub type UserId = u64;
pub type EventId = u64;
/// A ticket's number within its event: the index of its seat in the seat map.
pub type TicketId = u32;

/// The placement group: it holds the catalog (venues, performers, users) and which inventory
/// group owns which event.
pub const PLACEMENT_GROUP: GroupId = 0;

/// A booking's id: the event it belongs to and a random nonce chosen by the gateway.
/// Text form: `{event}-{nonce as 16 hex digits}`, e.g. `17-9f86d081884c7d65`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BookingId {
    pub event: EventId,
    pub nonce: u64,
}

impl fmt::Display for BookingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:016x}", self.event, self.nonce)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a booking id looks like `17-9f86d081884c7d65`: an event number, a dash and 16 hex digits")]
pub struct BadBookingId;

impl FromStr for BookingId {
    type Err = BadBookingId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (event, nonce) = s.split_once('-').ok_or(BadBookingId)?;
        if nonce.len() != 16 {
            return Err(BadBookingId);
        }
        let event = event.parse().map_err(|_| BadBookingId)?;
        let nonce = u64::from_str_radix(nonce, 16).map_err(|_| BadBookingId)?;
        Ok(BookingId { event, nonce })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_id_round_trips_through_text() {
        let id = BookingId { event: 17, nonce: 0x9f86_d081_884c_7d65 };
        assert_eq!(id.to_string(), "17-9f86d081884c7d65");
        assert_eq!("17-9f86d081884c7d65".parse::<BookingId>(), Ok(id));
    }

    #[test]
    fn malformed_booking_ids_are_refused() {
        for bad in ["", "17", "17-", "x-9f86d081884c7d65", "17-9f86", "17-zz86d081884c7d65"] {
            assert_eq!(bad.parse::<BookingId>(), Err(BadBookingId), "{bad}");
        }
    }
}

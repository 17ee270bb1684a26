//! Inventory records: the state of each ticket and the bookings that hold or buy them.
//!
//! A hold ends by time alone (design rule 3): a ticket `Held { until }` is free for any command
//! stamped at or after `until`, and a held booking reads as expired from its `held_until` on.
//! Nothing has to run for that to be true.

use serde::{Deserialize, Serialize};

use crate::{BookingId, EventId, Millis, TicketId, UserId};

/// A ticket that is not available. Available tickets have no row at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketState {
    Held { booking: BookingId, until: Millis },
    Sold { booking: BookingId },
}

impl TicketState {
    /// Whether a command stamped `at` may take this ticket.
    pub fn is_free_at(&self, at: Millis) -> bool {
        match self {
            TicketState::Held { until, .. } => at >= *until,
            TicketState::Sold { .. } => false,
        }
    }

    pub fn booking(&self) -> BookingId {
        match self {
            TicketState::Held { booking, .. } | TicketState::Sold { booking } => *booking,
        }
    }
}

/// How a ticket reads to a fan at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TicketStatus {
    Available,
    Held,
    Sold,
}

impl TicketStatus {
    pub fn of(state: Option<&TicketState>, now: Millis) -> TicketStatus {
        match state {
            None => TicketStatus::Available,
            Some(s) if s.is_free_at(now) => TicketStatus::Available,
            Some(TicketState::Held { .. }) => TicketStatus::Held,
            Some(TicketState::Sold { .. }) => TicketStatus::Sold,
        }
    }
}

/// A booking's stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookingState {
    /// Tickets held until `Booking::held_until`; after that the booking reads as expired.
    Held,
    Confirmed {
        payment: String,
        at: Millis,
    },
    /// The fan let the tickets go before the hold ended.
    Released {
        at: Millis,
    },
}

/// How a booking reads to a fan at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BookingStatus {
    Held,
    Confirmed,
    Released,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub id: BookingId,
    pub event: EventId,
    pub user: UserId,
    pub tickets: Vec<TicketId>,
    pub total_cents: u64,
    /// When the hold ends (or ended): kept after a confirmation or release, for the record.
    pub held_until: Millis,
    pub state: BookingState,
    pub created_at: Millis,
}

impl Booking {
    pub fn status_at(&self, now: Millis) -> BookingStatus {
        match self.state {
            BookingState::Held if now >= self.held_until => BookingStatus::Expired,
            BookingState::Held => BookingStatus::Held,
            BookingState::Confirmed { .. } => BookingStatus::Confirmed,
            BookingState::Released { .. } => BookingStatus::Released,
        }
    }

    /// When the hold ends, for a booking that is (or was) held.
    pub fn held_until(&self) -> Option<Millis> {
        match self.state {
            BookingState::Held => Some(self.held_until),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: BookingId = BookingId { event: 1, nonce: 7 };

    #[test]
    fn a_hold_frees_its_ticket_exactly_when_it_ends() {
        let held = TicketState::Held { booking: B, until: 100 };
        assert!(!held.is_free_at(99));
        assert!(held.is_free_at(100));
        assert_eq!(TicketStatus::of(Some(&held), 99), TicketStatus::Held);
        assert_eq!(TicketStatus::of(Some(&held), 100), TicketStatus::Available);
        assert!(!TicketState::Sold { booking: B }.is_free_at(u64::MAX));
    }

    #[test]
    fn a_held_booking_reads_as_expired_after_its_hold() {
        let booking = Booking {
            id: B,
            event: 1,
            user: 2,
            tickets: vec![3],
            total_cents: 10,
            held_until: 100,
            state: BookingState::Held,
            created_at: 0,
        };
        assert_eq!(booking.status_at(99), BookingStatus::Held);
        assert_eq!(booking.status_at(100), BookingStatus::Expired);
    }
}

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

/// What one apply of a group did to its tickets: each ticket whose row it wrote, with the row's
/// new value (`None`: the row is gone, the ticket free). Replicas publish these in log order for
/// the seat feeds that keep fans' seat maps current; `Reset` says that the replica's rows were
/// replaced whole (a snapshot installed), so a feed must read its event again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatChanges {
    Applied {
        group: crate::GroupId,
        /// The group's applied log index after the apply.
        applied: u64,
        tickets: Vec<(EventId, TicketId, Option<TicketState>)>,
    },
    Reset {
        group: crate::GroupId,
    },
}

/// How a ticket reads to a fan at a given time.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// A payment was started: the hold still ends at `held_until` (extended once, boundedly, when
    /// the payment started), and a captured payment confirms the booking even after it.
    PaymentPending {
        payment: String,
        since: Millis,
    },
    Confirmed {
        payment: String,
        at: Millis,
    },
    /// The fan let the tickets go before the hold ended.
    Released {
        at: Millis,
    },
    /// A payment was captured after the hold ended and the tickets went to others: refunded.
    Refunded {
        payment: String,
        at: Millis,
    },
}

/// How a booking reads to a fan at a given time.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BookingStatus {
    Held,
    PaymentPending,
    Confirmed,
    Released,
    Expired,
    Refunded,
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
    /// How long the hold was granted for: bounds how far a payment may extend it.
    pub hold_ttl_ms: u64,
    pub state: BookingState,
    pub created_at: Millis,
    /// Why the last payment failed (a declined card), while the booking stays payable.
    pub last_payment_error: Option<String>,
}

impl Booking {
    pub fn status_at(&self, now: Millis) -> BookingStatus {
        match self.state {
            BookingState::Held | BookingState::PaymentPending { .. } if now >= self.held_until => {
                BookingStatus::Expired
            }
            BookingState::Held => BookingStatus::Held,
            BookingState::PaymentPending { .. } => BookingStatus::PaymentPending,
            BookingState::Confirmed { .. } => BookingStatus::Confirmed,
            BookingState::Released { .. } => BookingStatus::Released,
            BookingState::Refunded { .. } => BookingStatus::Refunded,
        }
    }

    /// Whether the booking still holds or owns its tickets at `at` (for per-fan limits).
    pub fn is_live_at(&self, at: Millis) -> bool {
        match self.state {
            BookingState::Held | BookingState::PaymentPending { .. } => at < self.held_until,
            BookingState::Confirmed { .. } => true,
            BookingState::Released { .. } | BookingState::Refunded { .. } => false,
        }
    }

    /// The payment in progress or captured, if any.
    pub fn payment(&self) -> Option<&str> {
        match &self.state {
            BookingState::PaymentPending { payment, .. }
            | BookingState::Confirmed { payment, .. }
            | BookingState::Refunded { payment, .. } => Some(payment),
            BookingState::Held | BookingState::Released { .. } => None,
        }
    }

    /// When the hold ends, for a booking that is (or was) held.
    pub fn held_until(&self) -> Option<Millis> {
        match self.state {
            BookingState::Held | BookingState::PaymentPending { .. } => Some(self.held_until),
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
            hold_ttl_ms: 100,
            state: BookingState::Held,
            last_payment_error: None,
            created_at: 0,
        };
        assert_eq!(booking.status_at(99), BookingStatus::Held);
        assert_eq!(booking.status_at(100), BookingStatus::Expired);
    }
}

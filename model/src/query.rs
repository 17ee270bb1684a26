//! Reads a group answers from its state machine.

use serde::{Deserialize, Serialize};

use crate::{
    Booking, BookingId, Event, EventId, Millis, Performer, PerformerId, Placement, SeatMap, TicketId, TicketState,
    User, Venue, VenueId,
};

/// Most events one `UpcomingEvents` query returns.
pub const UPCOMING_EVENTS_MAX: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Query {
    Event(EventId),
    SeatMap(EventId),
    /// The tickets of an event that have a row (held or sold, maybe with an ended hold).
    Tickets(EventId),
    /// The same rows with the applied index they are read at, read in one view of the replica:
    /// what a seat feed starts from before it follows the group's [`crate::SeatChanges`].
    SeatStates(EventId),
    Booking(BookingId),
    /// Events starting at or after `from`, earliest first, at most `limit`.
    UpcomingEvents {
        from: Millis,
        limit: u32,
    },
    UserByEmail(String),
    User(crate::UserId),
    Venue(VenueId),
    Performer(PerformerId),
    Placement(EventId),
    /// Every ticket row and every booking of an event: for operators and the chaos checker.
    EventState(EventId),
    /// A digest of the replica's whole state at its applied index, to compare replicas.
    Digest,
    /// A fan's bookings in this group, newest last.
    FanBookings(crate::UserId),
    /// Bookings waiting for a payment, at most `limit`.
    PendingPayments {
        limit: u32,
    },
    /// Events with ids above `after`, in id order, at most `limit`, with their sold counts: for
    /// (re)building a search index.
    EventsAfter {
        after: EventId,
        limit: u32,
    },
    /// These events with their sold counts (those that exist).
    IndexEntries(Vec<EventId>),
    /// An event's waiting room.
    Room(EventId),
    /// The events of this group that have a waiting room, at most `limit`.
    Rooms {
        limit: u32,
    },
    /// The stamp of the oldest idempotency record or webhook event id the group remembers, if
    /// any: whether a `Prune` has anything to do.
    OldestRemembered,
    /// An event's parts (placement group): those recorded, or one part in the event's group for
    /// an event placed whole; `None` if there is no such event.
    Parts(EventId),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QueryResult {
    Event(Option<Event>),
    SeatMap(Option<SeatMap>),
    Tickets(Vec<(TicketId, TicketState)>),
    SeatStates {
        /// The group's applied log index the rows are read at.
        applied: u64,
        tickets: Vec<(TicketId, TicketState)>,
    },
    Booking(Option<Booking>),
    Events(Vec<Event>),
    User(Option<User>),
    Venue(Option<Venue>),
    Performer(Option<Performer>),
    Placement(Option<Placement>),
    EventState {
        tickets: Vec<(TicketId, TicketState)>,
        bookings: Vec<Booking>,
    },
    Digest {
        applied_index: Option<u64>,
        digest: String,
    },
    Bookings(Vec<Booking>),
    /// Events and how many of their tickets are sold.
    IndexEntries(Vec<(Event, u32)>),
    Room(Option<crate::room::RoomState>),
    Rooms(Vec<EventId>),
    OldestRemembered(Option<Millis>),
    Parts(Option<crate::EventParts>),
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began: served by the leader after it
    /// confirms its leadership.
    Linearizable,
    /// Any replica's applied state: may trail the leader by a moment (design rule 8).
    Stale,
}

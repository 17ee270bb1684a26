//! Commands, the only way state changes (design rule 1), and the outcome apply returns for each.
//!
//! A raft entry carries a [`Batch`]: the time the leader stamped on it and the commands, applied
//! in order. Apply never reads a clock (rule 2): every time it needs is `Batch::at`.

use serde::{Deserialize, Serialize};

use crate::room::{Admission, Place, RoomReport, RoomSettings, RoomState};
use crate::{
    Booking, BookingId, Event, EventId, EventParts, GroupId, Millis, NodeId, Performer, Placement, SeatMap, TicketId,
    UserId, VenueId,
};

/// What one raft entry carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The leader's clock when it proposed the entry, made monotonic for the group.
    pub at: Millis,
    pub commands: Vec<Command>,
}

/// What apply returns for one entry: one outcome per command, in order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Outcomes(pub Vec<Outcome>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    // Placement group (0).
    /// Create a venue. `request` is a random number the gateway draws once per request: applied
    /// again (a write the router retried), the command answers with the venue it created.
    CreateVenue { request: u64, name: String, address: String, city: String, seat_map: SeatMap },
    /// Create a performer; `request` as for a venue.
    CreatePerformer { request: u64, name: String, description: String, genre: String },
    /// Sign a fan up. The email is already normalized, the password already hashed.
    CreateUser { name: String, email: String, password_hash: String },
    /// Give a new event its id and the inventory group that will own it, one of `groups`
    /// inventory groups (numbered 1 to `groups`).
    PlaceEvent { groups: u32 },
    /// Give `count` new events their ids and groups at once (a bulk import).
    PlaceEvents { groups: u32, count: u32 },

    // Inventory groups (1..).
    /// Create an event with its tickets, one per seat of the copied seat map, all available.
    CreateEvent { event: Event, seat_map: SeatMap },
    /// Create many events at once (a bulk import); existing ones are left as they are.
    CreateEvents { events: Vec<(Event, SeatMap)> },
    /// Hold every one of `tickets` for `ttl_ms`, or none of them (rule 5), if the fan then holds
    /// or owns at most `fan_tickets_max` tickets of the event.
    Hold {
        booking: BookingId,
        user: UserId,
        tickets: Vec<TicketId>,
        ttl_ms: u64,
        fan_tickets_max: u32,
        idempotency: Option<Idempotency>,
    },
    /// Hold the best `quantity` free seats together (same row, side by side where possible),
    /// best price tier first, within a section and a price if given: picked by apply, atomically.
    HoldBest {
        booking: BookingId,
        user: UserId,
        quantity: u32,
        section: Option<String>,
        max_price_cents: Option<u64>,
        ttl_ms: u64,
        fan_tickets_max: u32,
        idempotency: Option<Idempotency>,
    },
    /// Give back a held booking's tickets.
    Release { booking: BookingId, user: UserId },
    /// A payment was started at the provider: the booking waits for it, its hold extended to at
    /// most `created_at + hold ttl + extension_ms` (never an endless hold).
    StartPayment {
        booking: BookingId,
        user: UserId,
        payment: String,
        extension_ms: u64,
        idempotency: Option<Idempotency>,
    },
    /// The provider captured the payment. Confirms the booking while its hold runs, and after it
    /// ended if the tickets are still free (rule 6); otherwise the outcome says to refund.
    PaymentSucceeded {
        booking: BookingId,
        payment: String,
        /// The provider's event id, so that a webhook sent twice is applied once.
        event: Option<String>,
    },
    /// The provider declined the payment: the booking is payable again while its hold runs.
    PaymentFailed { booking: BookingId, payment: String, reason: String, event: Option<String> },
    /// The provider refunded the payment.
    PaymentRefunded { booking: BookingId, payment: String, event: Option<String> },

    // Waiting rooms (the event's inventory group). Appended last: older logs still decode.
    /// Set an event's waiting room. `draw_key` is drawn by the gateway; apply keeps the first
    /// one, and changes neither it nor the on-sale time once the on-sale has passed.
    RoomConfigure { event: EventId, settings: RoomSettings, draw_key: [u8; 16] },
    /// A node's report on the fans it holds in the event's room.
    RoomReport { event: EventId, node: NodeId, report: RoomReport },
    /// The leader's tick: moves the watermark over as many reported places as the rate and the
    /// shopping limit allow. Applies only as the step after the last.
    RoomTick { event: EventId, step: u64 },
    /// Admission for up to `count` fans whose places were passed while no node counted them
    /// (they came back, or moved from a node that died); as many as the shopping limit allows.
    RoomLateAdmit { event: EventId, node: NodeId, boot: u64, seq: u64, count: u32 },
    /// A hold (`Hold` or `HoldBest`) under an admission: one booking per place, while the
    /// admission lasts, by the fan it was given to.
    Admitted { admission: Admission, hold: Box<Command> },
    /// Forgets the idempotency records and webhook event ids stamped `window_ms` or longer
    /// before this entry's stamp, oldest first, at most `records_max` of them: the group's
    /// leader proposes it while its replica has such records, so that what fans and the
    /// provider make the group remember does not grow without end.
    Prune { window_ms: u64, records_max: u32 },

    // Events over several groups (see [`crate::parts`]). Appended last: older logs still decode.
    /// Give a new event its id and one part per run of `bounds` (part `i` owns tickets
    /// `bounds[i]..bounds[i + 1]`), each in its own inventory group of `groups`: part 0 where
    /// `PlaceEvent` would put the event, the others in the groups after it, wrapping around.
    PlaceEventParts { groups: u32, bounds: Vec<TicketId> },
    /// Create part `part` of an event in this group: the seat map, and the tickets
    /// `first..end` as the only ones this group sells. Part 0 also creates the event's record
    /// (its listing and search entry); the other parts keep no record of their own.
    CreateEventPart { event: Event, seat_map: SeatMap, part: u32, first: TicketId, end: TicketId },
}

/// An `Idempotency-Key` and a fingerprint of the request it came with: a retry with the same key
/// gets the first answer; the same key with another request is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: u64,
}

/// The longest an idempotency key (and a webhook's event id) is remembered: apply forgets a
/// record this old whether or not a `Prune` removed it. A node's `idempotency_window_ms` picks
/// a window up to this.
pub const IDEMPOTENCY_WINDOW_HARD_MAX_MS: u64 = 24 * 60 * 60 * 1000;

/// The shortest window a `Prune` may forget after: a retry a second later still gets its answer.
pub const IDEMPOTENCY_WINDOW_MIN_MS: u64 = 1_000;

/// Most records one `Prune` forgets, whatever it asks: a backlog goes over several entries,
/// never in one giant write batch.
pub const PRUNE_RECORDS_HARD_MAX: u32 = 10_000;

impl Command {
    /// Whether this command belongs in the placement group rather than an inventory group.
    pub fn is_placement(&self) -> bool {
        matches!(
            self,
            Command::CreateVenue { .. }
                | Command::CreatePerformer { .. }
                | Command::CreateUser { .. }
                | Command::PlaceEvent { .. }
                | Command::PlaceEvents { .. }
                | Command::PlaceEventParts { .. }
        )
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateVenue { .. } => "create_venue",
            Command::CreatePerformer { .. } => "create_performer",
            Command::CreateUser { .. } => "create_user",
            Command::PlaceEvent { .. } => "place_event",
            Command::PlaceEvents { .. } => "place_events",
            Command::CreateEvents { .. } => "create_events",
            Command::CreateEvent { .. } => "create_event",
            Command::Hold { .. } => "hold",
            Command::HoldBest { .. } => "hold_best",
            Command::Release { .. } => "release",
            Command::StartPayment { .. } => "start_payment",
            Command::PaymentSucceeded { .. } => "payment_succeeded",
            Command::PaymentFailed { .. } => "payment_failed",
            Command::PaymentRefunded { .. } => "payment_refunded",
            Command::RoomConfigure { .. } => "room_configure",
            Command::RoomReport { .. } => "room_report",
            Command::RoomTick { .. } => "room_tick",
            Command::RoomLateAdmit { .. } => "room_late_admit",
            Command::Admitted { .. } => "admitted",
            Command::Prune { .. } => "prune",
            Command::PlaceEventParts { .. } => "place_event_parts",
            Command::CreateEventPart { .. } => "create_event_part",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    VenueCreated(VenueId),
    PerformerCreated(Performer),
    UserCreated(UserId),
    EmailTaken,
    EventPlaced(Placement),
    EventsPlaced(Vec<Placement>),
    /// How many of a bulk import's events were new.
    EventsCreated(u32),
    EventCreated(Event),
    /// The event already exists: creating it again changes nothing.
    EventExists(Event),
    NoSuchEvent,
    /// The booking holds its tickets (a retried hold gets the same answer).
    Held(Booking),
    /// None of the tickets were held because these are held or sold.
    Unavailable {
        tickets: Vec<TicketId>,
    },
    /// None of the tickets were held because these do not exist for the event.
    UnknownTickets {
        tickets: Vec<TicketId>,
    },
    /// A booking with this id exists with another fan or other tickets.
    BookingIdTaken,
    NoSuchBooking,
    /// The booking belongs to another fan.
    NotYours,
    Released(Booking),
    /// The booking waits for its payment.
    PaymentPending(Booking),
    Confirmed(Booking),
    /// The booking as it stands after a payment failed or was refunded.
    Updated(Booking),
    /// The fan would hold or own more than the event allows.
    FanLimit {
        held: u32,
        max: u32,
    },
    /// No `quantity` free seats match (best available).
    NoSeats,
    /// The idempotency key was used before with another request.
    IdempotencyMismatch,
    /// This webhook event was applied before: nothing changed.
    AlreadyApplied,
    /// The hold ended and some of its tickets went to others: the payment must be refunded.
    HoldLost {
        booking: Booking,
        tickets: Vec<TicketId>,
    },
    /// The booking is no longer in a state this command applies to (e.g. confirming a released
    /// booking); the booking as it stands.
    WrongState(Booking),
    /// The command was malformed; the gateway should have refused it first.
    Rejected(String),
    /// The room as it stands after a configure.
    RoomConfigured(RoomState),
    /// A report was kept; `at` is the entry's stamp (the node's clock sample).
    RoomReported {
        at: Millis,
    },
    /// A tick applied: how many places it passed, and the watermark after it.
    RoomTicked {
        admitted: u64,
        watermark: Option<Place>,
    },
    /// How many of a late admission's fans were admitted, and when.
    LateAdmitted {
        granted: u32,
        at: Millis,
    },
    /// The event has no waiting room.
    NoRoom,
    /// The event sells through its waiting room: a hold needs an admission.
    AdmissionRequired,
    /// The admission ended, or is another fan's, or another event's.
    AdmissionInvalid(String),
    /// A booking was already made under this place.
    AdmissionSpent,
    /// How many remembered records a `Prune` forgot, and whether more are due.
    Pruned {
        records: u32,
        more: bool,
    },
    /// An event placed in parts: its id, and each part's group and tickets.
    PartsPlaced(EventParts),
}

/// Most events one bulk command places or creates.
pub const BULK_EVENTS_MAX: u32 = 10_000;
/// Seats over all the events of one bulk import (each event copies its venue's map): ten
/// thousand events of a small hall, or ten of a stadium, but not ten thousand stadiums.
pub const BULK_SEATS_MAX: usize = 2_000_000;

/// The group a placement picks for the `n`-th event (ids start at 1): round robin over the
/// inventory groups 1..=groups.
pub fn group_for_new_event(event: u64, groups: u32) -> GroupId {
    assert!(groups >= 1, "a cluster has at least one inventory group");
    1 + ((event.saturating_sub(1)) % groups as u64) as GroupId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_spread_round_robin_over_inventory_groups() {
        let groups: Vec<_> = (1..=5).map(|e| group_for_new_event(e, 3)).collect();
        assert_eq!(groups, vec![1, 2, 3, 1, 2]);
    }
}

//! What a chaos run records and what the checker reads: every request with its real-time start
//! and end and what came back (the history, one JSON object per line), the waiting room's
//! history (tickets, admissions, holds under them, admin samples, faults: [`RoomRecord`]), and
//! the cluster's final state read after the faults healed.
//!
//! Times are of two kinds and never mixed:
//! - `start_ms`/`end_ms`: the runner's real time (one monotonic clock for the whole run, in ms);
//! - `*_at_ms` of a booking: the group's time, stamped by its leader (design rule 2). Group time
//!   only moves forward in log order, but may run ahead of or behind real time (clock skew).

use serde::{Deserialize, Serialize};

/// One request and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Unique within the history.
    pub id: u64,
    /// The fan (user id) who sent it.
    pub fan: u64,
    pub op: Op,
    /// Real time when the request was sent and when its answer (or failure) came.
    pub start_ms: u64,
    pub end_ms: u64,
    pub result: Result,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Op {
    /// `POST /events/{event}/bookings {ticketIds}`.
    Hold { event: u64, tickets: Vec<u32> },
    /// `DELETE /bookings/{booking}`.
    Release { booking: String },
    /// `POST /bookings/{booking}/payment {cardNumber}`.
    Pay { booking: String, card: String },
    /// `GET /bookings/{booking}` (a linearizable read).
    ReadBooking { booking: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Result {
    /// A 2xx answer, with the booking as it came back: for a hold the new booking, for a
    /// release the released booking, for a payment the confirmed booking, for a read the
    /// booking as read.
    Ok { booking: Booking },
    /// A definite refusal (a 4xx): the request changed nothing. `tickets` names the tickets a
    /// 409 said were taken, if any.
    Fail { status: u16, tickets: Vec<u32> },
    /// No definite answer (timeout, lost connection, 5xx): it may or may not have taken effect.
    Unknown { reason: String },
}

/// A booking as the API shows it, times in group time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub id: String,
    pub event: u64,
    pub fan: u64,
    pub tickets: Vec<u32>,
    /// "held", "expired", "confirmed" or "released". "held" and "expired" are one stored state
    /// read at different times by clocks that may disagree.
    pub status: String,
    /// When the hold began.
    pub created_at_ms: u64,
    /// When the hold ends (or ended), whatever happened to the booking since.
    pub held_until_ms: u64,
    /// When the payment confirmed it, if it did.
    pub confirmed_at_ms: Option<u64>,
    /// When the fan released it, if they did.
    pub released_at_ms: Option<u64>,
}

/// The cluster after the run, read once every fault healed and the replicas caught up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalState {
    pub events: Vec<FinalEvent>,
    pub replicas: Vec<ReplicaDigest>,
    /// Every payment the provider holds, as it reports them.
    #[serde(default)]
    pub payments: Vec<FinalPayment>,
}

/// One payment at the provider after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalPayment {
    pub id: String,
    pub booking: String,
    /// `succeeded` once captured.
    pub status: String,
    pub amount: u64,
    pub amount_refunded: u64,
}

/// One event's tickets and every booking ever made for it, from its group's leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalEvent {
    pub event: u64,
    /// Groups the event is sold by: each keeps its own group time.
    #[serde(default = "one_part")]
    pub parts: u32,
    /// Tickets that have a row (held, possibly with an ended hold, or sold); the rest are free.
    pub tickets: Vec<FinalTicket>,
    pub bookings: Vec<Booking>,
}

/// Histories written before events had parts: one each.
fn one_part() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalTicket {
    pub id: u32,
    /// "held" or "sold".
    pub state: String,
    pub booking: String,
    /// For a held ticket, when its hold ends (group time).
    pub until_ms: Option<u64>,
}

/// One replica's digest of its group's state at its applied index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaDigest {
    pub group: u32,
    pub node: u64,
    pub applied_index: u64,
    pub digest: String,
}

/// Reads a history file: one [`Entry`] per line; blank lines are skipped.
pub fn parse_history(text: &str) -> std::result::Result<Vec<Entry>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| serde_json::from_str(line).map_err(|e| format!("history line {}: {e}", n + 1)))
        .collect()
}

/// A place in the waiting room's line, as tickets and admissions carry it: compared by
/// (class, primary, node, seq), the order the room admits in.
pub use model::room::Place;

/// One thing the waiting room's workload saw or did, in the order it was recorded (the room's
/// history, `room.jsonl`, one object per line). Times are the runner's real time, as in
/// [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum RoomRecord {
    /// The room under test, recorded first: the checks of holds need its event.
    Room {
        event: u64,
        rate_per_min: u64,
        shopping_max: u64,
        admission_ms: u64,
        abandon_ms: u64,
        /// When the on-sale was due, in the runner's real time.
        on_sale_ms: u64,
    },
    /// A join (without a ticket) gave `fan` a place at `node`.
    Ticket { fan: u64, place: Place, node: u64, at_ms: u64, presale: bool },
    /// `fan` came back with its ticket at `node`, after its stream to `from_node` ended.
    Resume { fan: u64, place: Place, from_node: u64, node: u64, at_ms: u64 },
    /// `node` admitted `fan` at `place` with `token`.
    Admission {
        fan: u64,
        place: Place,
        token: String,
        node: u64,
        at_ms: u64,
        /// The fan waited on one stream from its join to its admission, never dropping or
        /// resuming: only such admissions show the order the room admits in.
        steady: bool,
        /// When the stream that got the admission got its ticket.
        since_ms: u64,
    },
    /// A hold on the room's event, as history entry `entry` records it, sent with the
    /// admission `token` (none: sent without one).
    Hold {
        entry: u64,
        fan: u64,
        event: u64,
        token: Option<String>,
        /// The place the token names.
        place: Option<Place>,
        start_ms: u64,
        end_ms: u64,
        answer: HoldAnswer,
    },
    /// The room's admin view (`GET /admin/events/{event}/waiting-room`) read through `node`,
    /// the request sent at `at_ms`.
    Sample { node: u64, at_ms: u64, watermark: Option<Place>, shopping: u64, shopping_max: u64 },
    /// A fault done to `nodes` (every node for faults of every link), from `start_ms` until it
    /// was undone at `end_ms`; `kind` is the fault's name, or `exited` for a node that stopped
    /// on its own and was restarted.
    Fault { kind: String, nodes: Vec<u64>, start_ms: u64, end_ms: u64 },
}

/// What came of a hold on the room's event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum HoldAnswer {
    /// A 2xx: this booking was made.
    Ok { booking: String },
    /// A 4xx: nothing was made.
    Fail { status: u16 },
    /// No definite answer.
    Unknown,
}

/// Reads a room history file: one [`RoomRecord`] per line; blank lines are skipped.
pub fn parse_room_history(text: &str) -> std::result::Result<Vec<RoomRecord>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| serde_json::from_str(line).map_err(|e| format!("room history line {}: {e}", n + 1)))
        .collect()
}

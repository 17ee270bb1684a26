//! What a chaos run records and what the checker reads: every request with its real-time start
//! and end and what came back (the history, one JSON object per line), and the cluster's final
//! state read after the faults healed.
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
    /// Tickets that have a row (held, possibly with an ended hold, or sold); the rest are free.
    pub tickets: Vec<FinalTicket>,
    pub bookings: Vec<Booking>,
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

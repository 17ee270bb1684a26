//! The ticketing state machine: `apply(command, at, rows) -> outcome`, deterministic.
//!
//! It reads and writes rows through [`Rows`], so that it runs the same over RocksDB (the state
//! machine) and over a map (its unit tests). It never reads a clock: `at` is the entry's stamp.
//! Every command is idempotent: applying the same command twice leaves the state as once and
//! answers alike, so the router may retry a write whose answer it lost.
//!
//! Row keys (inside a group's prefix) start with a one-byte tag; `0x00` is reserved for the
//! state machine's own metadata.

use std::sync::Arc;

use model::{
    group_for_new_event, normalize_email, Command, Event, EventId, Millis, Outcome, Performer, Placement, SeatMap,
    User, Venue,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use booking::HoldRequest;

pub mod booking;

/// The longest hold apply accepts: a day. Settings pick far shorter ones.
pub const HOLD_TTL_HARD_MAX_MS: u64 = 24 * 60 * 60 * 1000;

/// A row that could not be read or decoded: the state machine cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("state machine row {key:?}: {reason}")]
pub struct Fault {
    pub key: Vec<u8>,
    pub reason: String,
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
}

pub mod keys {
    //! Row keys within a group. Numbers are big endian so that keys sort by them.
    use model::{BookingId, EventId, Millis, TicketId};

    pub const META: &[u8] = &[0x00];
    pub const COUNTERS: &[u8] = b"c";

    fn tagged(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
        key.push(tag);
        parts.iter().for_each(|p| key.extend_from_slice(p));
        key
    }

    pub fn venue(id: u64) -> Vec<u8> {
        tagged(b'v', &[&id.to_be_bytes()])
    }
    pub fn performer(id: u64) -> Vec<u8> {
        tagged(b'p', &[&id.to_be_bytes()])
    }
    pub fn user(id: u64) -> Vec<u8> {
        tagged(b'u', &[&id.to_be_bytes()])
    }
    pub fn email(email: &str) -> Vec<u8> {
        tagged(b'm', &[email.as_bytes()])
    }
    /// What a catalog create made, by the request number its gateway drew: the new id.
    pub fn created(request: u64) -> Vec<u8> {
        tagged(b'r', &[&request.to_be_bytes()])
    }
    pub fn placement(event: EventId) -> Vec<u8> {
        tagged(b'l', &[&event.to_be_bytes()])
    }
    pub fn event(event: EventId) -> Vec<u8> {
        tagged(b'e', &[&event.to_be_bytes()])
    }
    pub fn seat_map(event: EventId) -> Vec<u8> {
        tagged(b's', &[&event.to_be_bytes()])
    }
    /// Index of events by start time: `i{starts_at}{event}`, empty value.
    pub fn starts(starts_at: Millis, event: EventId) -> Vec<u8> {
        tagged(b'i', &[&starts_at.to_be_bytes(), &event.to_be_bytes()])
    }
    pub const STARTS_PREFIX: &[u8] = b"i";
    pub fn event_of_starts(key: &[u8]) -> Option<EventId> {
        key.get(9..17).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
    pub fn ticket(event: EventId, ticket: TicketId) -> Vec<u8> {
        tagged(b't', &[&event.to_be_bytes(), &ticket.to_be_bytes()])
    }
    /// Whether `key` is a ticket row's.
    pub fn is_ticket(key: &[u8]) -> bool {
        key.len() == 13 && key[0] == b't'
    }
    pub fn tickets_of(event: EventId) -> Vec<u8> {
        tagged(b't', &[&event.to_be_bytes()])
    }
    pub fn ticket_of_key(key: &[u8]) -> Option<TicketId> {
        key.get(9..13).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }
    pub fn booking(id: BookingId) -> Vec<u8> {
        tagged(b'b', &[&id.event.to_be_bytes(), &id.nonce.to_be_bytes()])
    }
    pub fn bookings_of(event: EventId) -> Vec<u8> {
        tagged(b'b', &[&event.to_be_bytes()])
    }
    /// A fan's booking: `f{user}{event}{nonce}`, empty value.
    pub fn fan_booking(user: u64, id: BookingId) -> Vec<u8> {
        tagged(b'f', &[&user.to_be_bytes(), &id.event.to_be_bytes(), &id.nonce.to_be_bytes()])
    }
    pub fn fan_bookings(user: u64) -> Vec<u8> {
        tagged(b'f', &[&user.to_be_bytes()])
    }
    pub fn fan_bookings_of(user: u64, event: EventId) -> Vec<u8> {
        tagged(b'f', &[&user.to_be_bytes(), &event.to_be_bytes()])
    }
    pub fn booking_of_fan_key(key: &[u8]) -> Option<BookingId> {
        let event = u64::from_be_bytes(key.get(9..17)?.try_into().ok()?);
        let nonce = u64::from_be_bytes(key.get(17..25)?.try_into().ok()?);
        Some(BookingId { event, nonce })
    }
    /// A booking waiting for its payment: `q{event}{nonce}` → since.
    pub fn pending(id: BookingId) -> Vec<u8> {
        tagged(b'q', &[&id.event.to_be_bytes(), &id.nonce.to_be_bytes()])
    }
    pub const PENDING_PREFIX: &[u8] = b"q";
    pub fn booking_of_pending_key(key: &[u8]) -> Option<BookingId> {
        let event = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
        let nonce = u64::from_be_bytes(key.get(9..17)?.try_into().ok()?);
        Some(BookingId { event, nonce })
    }
    /// An idempotency key of a fan: `k{user}{key}` → the first answer.
    pub fn idempotency(user: u64, key: &str) -> Vec<u8> {
        tagged(b'k', &[&user.to_be_bytes(), key.as_bytes()])
    }
    /// How many tickets of an event are sold: `n{event}` → u32.
    pub fn sold(event: EventId) -> Vec<u8> {
        tagged(b'n', &[&event.to_be_bytes()])
    }
    pub const EVENTS_PREFIX: &[u8] = b"e";
    pub fn event_of_key(key: &[u8]) -> Option<EventId> {
        key.get(1..9).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
    /// A webhook event applied: `w{event id}` → when.
    pub fn webhook(event: &str) -> Vec<u8> {
        tagged(b'w', &[event.as_bytes()])
    }
}

/// The next id of each kind of catalog record; ids start at 1.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counters {
    venue: u64,
    performer: u64,
    user: u64,
    event: u64,
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("domain records always encode")
}

pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, Fault> {
    bincode::deserialize(bytes).map_err(|e| Fault { key: key.to_vec(), reason: format!("undecodable: {e}") })
}

fn read<T: DeserializeOwned, R: Rows + ?Sized>(rows: &R, key: &[u8]) -> Result<Option<T>, Fault> {
    rows.get(key)?.map(|bytes| decode(key, &bytes)).transpose()
}

fn write<T: Serialize>(rows: &mut impl Rows, key: Vec<u8>, value: &T) {
    rows.put(key, encode(value));
}

/// Applies one command stamped `at`.
pub fn apply(command: &Command, at: Millis, rows: &mut impl Rows) -> Result<Outcome, Fault> {
    match command {
        Command::CreateVenue { request, name, address, city, seat_map } => {
            create_venue(rows, *request, name, address, city, seat_map)
        }
        Command::CreatePerformer { request, name, description, genre } => {
            create_performer(rows, *request, name, description, genre)
        }
        Command::CreateUser { name, email, password_hash } => create_user(rows, name, email, password_hash),
        Command::PlaceEvent { groups } => place_event(rows, *groups),
        Command::PlaceEvents { groups, count } => place_events(rows, *groups, *count),
        Command::CreateEvents { events } => create_events(rows, events),
        Command::CreateEvent { event, seat_map } => create_event(rows, event, seat_map),
        Command::Hold { booking, user, tickets, ttl_ms, fan_tickets_max, idempotency } => {
            let request = HoldRequest {
                booking: *booking,
                user: *user,
                ttl_ms: *ttl_ms,
                fan_tickets_max: *fan_tickets_max,
                idempotency: idempotency.as_ref(),
            };
            booking::hold(rows, at, &request, tickets)
        }
        Command::HoldBest {
            booking,
            user,
            quantity,
            section,
            max_price_cents,
            ttl_ms,
            fan_tickets_max,
            idempotency,
        } => {
            let request = HoldRequest {
                booking: *booking,
                user: *user,
                ttl_ms: *ttl_ms,
                fan_tickets_max: *fan_tickets_max,
                idempotency: idempotency.as_ref(),
            };
            booking::hold_best(rows, at, &request, *quantity, section.as_deref(), *max_price_cents)
        }
        Command::Release { booking, user } => booking::release(rows, at, *booking, *user),
        Command::StartPayment { booking, user, payment, extension_ms, idempotency } => {
            booking::start_payment(rows, at, *booking, *user, payment, *extension_ms, idempotency.as_ref())
        }
        Command::PaymentSucceeded { booking, payment, event } => {
            booking::payment_succeeded(rows, at, *booking, payment, event.as_deref())
        }
        Command::PaymentFailed { booking, payment, reason, event } => {
            booking::payment_failed(rows, at, *booking, payment, reason, event.as_deref())
        }
        Command::PaymentRefunded { booking, payment, event } => {
            booking::payment_refunded(rows, at, *booking, payment, event.as_deref())
        }
    }
}

fn next_id(rows: &mut impl Rows, pick: impl Fn(&mut Counters) -> &mut u64) -> Result<u64, Fault> {
    let mut counters: Counters = read(rows, keys::COUNTERS)?.unwrap_or_default();
    let slot = pick(&mut counters);
    *slot += 1;
    let id = *slot;
    write(rows, keys::COUNTERS.to_vec(), &counters);
    Ok(id)
}

/// The id a catalog create with this request number already made, if any.
fn created_by(rows: &impl Rows, request: u64) -> Result<Option<u64>, Fault> {
    read(rows, &keys::created(request))
}

fn create_venue(
    rows: &mut impl Rows,
    request: u64,
    name: &str,
    address: &str,
    city: &str,
    map: &SeatMap,
) -> Result<Outcome, Fault> {
    if let Some(id) = created_by(rows, request)? {
        return Ok(Outcome::VenueCreated(id));
    }
    if let Some(problem) = map.problem() {
        return Ok(Outcome::Rejected(problem));
    }
    let id = next_id(rows, |c| &mut c.venue)?;
    let venue = Venue { id, name: name.into(), address: address.into(), city: city.into(), seat_map: map.clone() };
    write(rows, keys::venue(id), &venue);
    write(rows, keys::created(request), &id);
    Ok(Outcome::VenueCreated(id))
}

fn create_performer(
    rows: &mut impl Rows,
    request: u64,
    name: &str,
    description: &str,
    genre: &str,
) -> Result<Outcome, Fault> {
    if let Some(id) = created_by(rows, request)? {
        let performer = read::<Performer, _>(rows, &keys::performer(id))?;
        // Both rows are written together and never deleted.
        let performer = performer.expect("a request's performer row exists");
        return Ok(Outcome::PerformerCreated(performer));
    }
    let id = next_id(rows, |c| &mut c.performer)?;
    let performer = Performer { id, name: name.into(), description: description.into(), genre: genre.into() };
    write(rows, keys::performer(id), &performer);
    write(rows, keys::created(request), &id);
    Ok(Outcome::PerformerCreated(performer))
}

fn create_user(rows: &mut impl Rows, name: &str, email: &str, password_hash: &str) -> Result<Outcome, Fault> {
    if email != normalize_email(email) || email.is_empty() {
        return Ok(Outcome::Rejected("emails are stored normalized".into()));
    }
    if let Some(id) = read::<u64, _>(rows, &keys::email(email))? {
        // The same sign-up applied again (a retried write) answers as the first time did.
        let user: Option<User> = read(rows, &keys::user(id))?;
        let same = user.is_some_and(|u| u.name == name && u.password_hash == password_hash);
        return Ok(if same { Outcome::UserCreated(id) } else { Outcome::EmailTaken });
    }
    let id = next_id(rows, |c| &mut c.user)?;
    let user = User { id, name: name.into(), email: email.into(), password_hash: password_hash.into() };
    write(rows, keys::user(id), &user);
    write(rows, keys::email(email), &id);
    Ok(Outcome::UserCreated(id))
}

fn place_event(rows: &mut impl Rows, groups: u32) -> Result<Outcome, Fault> {
    if groups == 0 {
        return Ok(Outcome::Rejected("a cluster has at least one inventory group".into()));
    }
    let event = next_id(rows, |c| &mut c.event)?;
    let placement = Placement { event, group: group_for_new_event(event, groups) };
    write(rows, keys::placement(event), &placement);
    Ok(Outcome::EventPlaced(placement))
}

fn place_events(rows: &mut impl Rows, groups: u32, count: u32) -> Result<Outcome, Fault> {
    if groups == 0 || count == 0 || count > model::BULK_EVENTS_MAX {
        return Ok(Outcome::Rejected(format!("a bulk import places 1 to {} events", model::BULK_EVENTS_MAX)));
    }
    let mut placed = Vec::with_capacity(count as usize);
    for _ in 0..count {
        match place_event(rows, groups)? {
            Outcome::EventPlaced(placement) => placed.push(placement),
            other => return Ok(other),
        }
    }
    Ok(Outcome::EventsPlaced(placed))
}

fn create_events(rows: &mut impl Rows, events: &[(Event, SeatMap)]) -> Result<Outcome, Fault> {
    if events.len() > model::BULK_EVENTS_MAX as usize {
        return Ok(Outcome::Rejected(format!("a bulk import creates at most {} events", model::BULK_EVENTS_MAX)));
    }
    // Checked whole before anything is written: all or nothing, like any command.
    if let Some(problem) = events.iter().find_map(|(e, map)| {
        map.problem().or_else(|| {
            (map.seat_count() != e.ticket_count as usize).then(|| "a ticket count is not its seat map's".into())
        })
    }) {
        return Ok(Outcome::Rejected(problem));
    }
    let mut created = 0;
    for (event, map) in events {
        if let Outcome::EventCreated(_) = create_event(rows, event, map)? {
            created += 1;
        }
    }
    Ok(Outcome::EventsCreated(created))
}

fn create_event(rows: &mut impl Rows, event: &Event, map: &SeatMap) -> Result<Outcome, Fault> {
    if let Some(existing) = read::<Event, _>(rows, &keys::event(event.id))? {
        return Ok(Outcome::EventExists(existing));
    }
    if let Some(problem) = map.problem() {
        return Ok(Outcome::Rejected(problem));
    }
    if map.seat_count() != event.ticket_count as usize {
        return Ok(Outcome::Rejected("the event's ticket count is not its seat map's".into()));
    }
    write(rows, keys::event(event.id), event);
    write(rows, keys::seat_map(event.id), map);
    rows.put(keys::starts(event.starts_at, event.id), Vec::new());
    Ok(Outcome::EventCreated(event.clone()))
}

/// The state machine's own record, kept beside the rows and written in the same batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    pub last_applied: Option<raft::types::LogId>,
    pub membership: raft::types::StoredMembership,
    /// The stamp of the last applied entry: time in the group never goes below it.
    pub last_at: Millis,
}

#[cfg(test)]
pub(crate) mod tests;

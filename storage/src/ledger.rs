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
    group_for_new_event, normalize_email, Booking, BookingId, BookingState, Command, Event, EventId, Millis, Outcome,
    Performer, Placement, SeatMap, TicketId, TicketState, User, Venue, BOOKING_TICKETS_HARD_MAX,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The longest hold apply accepts: a day. Settings pick far shorter ones.
pub const HOLD_TTL_HARD_MAX_MS: u64 = 24 * 60 * 60 * 1000;

/// A row that could not be read or decoded: the state machine cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("state machine row {key:?}: {reason}")]
pub struct Fault {
    pub key: Vec<u8>,
    pub reason: String,
}

/// Raw rows of one group's state.
pub trait Rows {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Fault>;
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: Vec<u8>);

    /// The price of each ticket of an event, or `None` if there is no such event. Events never
    /// change once created, so implementations may cache this.
    fn prices(&mut self, event: EventId) -> Result<Option<Arc<Vec<u64>>>, Fault> {
        let map: Option<SeatMap> = read(self, &keys::seat_map(event))?;
        Ok(map.map(|m| Arc::new(m.prices())))
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
        Command::CreateVenue { name, address, city, seat_map } => create_venue(rows, name, address, city, seat_map),
        Command::CreatePerformer { name, description, genre } => create_performer(rows, name, description, genre),
        Command::CreateUser { name, email, password_hash } => create_user(rows, name, email, password_hash),
        Command::PlaceEvent { groups } => place_event(rows, *groups),
        Command::CreateEvent { event, seat_map } => create_event(rows, event, seat_map),
        Command::Hold { booking, user, tickets, ttl_ms } => hold(rows, at, *booking, *user, tickets, *ttl_ms),
        Command::Release { booking, user } => release(rows, at, *booking, *user),
        Command::Confirm { booking, user, payment } => confirm(rows, at, *booking, *user, payment),
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

fn create_venue(rows: &mut impl Rows, name: &str, address: &str, city: &str, map: &SeatMap) -> Result<Outcome, Fault> {
    if let Some(problem) = map.problem() {
        return Ok(Outcome::Rejected(problem));
    }
    let id = next_id(rows, |c| &mut c.venue)?;
    let venue = Venue { id, name: name.into(), address: address.into(), city: city.into(), seat_map: map.clone() };
    write(rows, keys::venue(id), &venue);
    Ok(Outcome::VenueCreated(id))
}

fn create_performer(rows: &mut impl Rows, name: &str, description: &str, genre: &str) -> Result<Outcome, Fault> {
    let id = next_id(rows, |c| &mut c.performer)?;
    let performer = Performer { id, name: name.into(), description: description.into(), genre: genre.into() };
    write(rows, keys::performer(id), &performer);
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

/// What is wrong with a list of tickets to hold, if anything.
fn ticket_list_problem(tickets: &[TicketId]) -> Option<String> {
    if tickets.is_empty() || tickets.len() > BOOKING_TICKETS_HARD_MAX {
        return Some(format!("a booking holds 1 to {BOOKING_TICKETS_HARD_MAX} tickets"));
    }
    let mut sorted = tickets.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1]).then(|| "a ticket appears twice".into())
}

fn hold(
    rows: &mut impl Rows,
    at: Millis,
    id: BookingId,
    user: u64,
    tickets: &[TicketId],
    ttl_ms: u64,
) -> Result<Outcome, Fault> {
    if let Some(problem) = ticket_list_problem(tickets) {
        return Ok(Outcome::Rejected(problem));
    }
    if ttl_ms == 0 || ttl_ms > HOLD_TTL_HARD_MAX_MS {
        return Ok(Outcome::Rejected(format!("a hold lasts 1 to {HOLD_TTL_HARD_MAX_MS} ms")));
    }
    let Some(prices) = rows.prices(id.event)? else {
        return Ok(Outcome::NoSuchEvent);
    };
    let unknown: Vec<TicketId> = tickets.iter().copied().filter(|&t| t as usize >= prices.len()).collect();
    if !unknown.is_empty() {
        return Ok(Outcome::UnknownTickets { tickets: unknown });
    }
    if let Some(existing) = read::<Booking, _>(rows, &keys::booking(id))? {
        let same = existing.user == user && existing.tickets == tickets;
        return Ok(if same { Outcome::Held(existing) } else { Outcome::BookingIdTaken });
    }
    let mut unavailable = Vec::new();
    // The test-only switch that breaks the one check that keeps seats from being sold twice.
    let tickets_to_check = if cfg!(feature = "chaos-skip-availability-check") { &[][..] } else { tickets };
    for &ticket in tickets_to_check {
        let state: Option<TicketState> = read(rows, &keys::ticket(id.event, ticket))?;
        if state.is_some_and(|s| !s.is_free_at(at)) {
            unavailable.push(ticket);
        }
    }
    if !unavailable.is_empty() {
        return Ok(Outcome::Unavailable { tickets: unavailable });
    }
    let until = at + ttl_ms;
    for &ticket in tickets {
        write(rows, keys::ticket(id.event, ticket), &TicketState::Held { booking: id, until });
    }
    let booking = Booking {
        id,
        event: id.event,
        user,
        tickets: tickets.to_vec(),
        total_cents: tickets.iter().map(|&t| prices[t as usize]).sum(),
        held_until: until,
        state: BookingState::Held,
        created_at: at,
    };
    write(rows, keys::booking(id), &booking);
    Ok(Outcome::Held(booking))
}

/// Reads a booking that `user` may act on, or the outcome that says why not.
fn owned_booking(rows: &impl Rows, id: BookingId, user: u64) -> Result<Result<Booking, Outcome>, Fault> {
    Ok(match read::<Booking, _>(rows, &keys::booking(id))? {
        None => Err(Outcome::NoSuchBooking),
        Some(b) if b.user != user => Err(Outcome::NotYours),
        Some(b) => Ok(b),
    })
}

fn release(rows: &mut impl Rows, at: Millis, id: BookingId, user: u64) -> Result<Outcome, Fault> {
    let mut booking = match owned_booking(rows, id, user)? {
        Ok(b) => b,
        Err(outcome) => return Ok(outcome),
    };
    match booking.state {
        BookingState::Released { .. } => return Ok(Outcome::Released(booking)),
        BookingState::Confirmed { .. } => return Ok(Outcome::WrongState(booking)),
        BookingState::Held => {}
    }
    for &ticket in &booking.tickets {
        let key = keys::ticket(id.event, ticket);
        let state: Option<TicketState> = read(rows, &key)?;
        // Only this booking's own holds go: an ended hold may already be someone else's.
        if matches!(state, Some(TicketState::Held { booking, .. }) if booking == id) {
            rows.delete(key);
        }
    }
    booking.state = BookingState::Released { at };
    write(rows, keys::booking(id), &booking);
    Ok(Outcome::Released(booking))
}

fn confirm(rows: &mut impl Rows, at: Millis, id: BookingId, user: u64, payment: &str) -> Result<Outcome, Fault> {
    let mut booking = match owned_booking(rows, id, user)? {
        Ok(b) => b,
        Err(outcome) => return Ok(outcome),
    };
    match &booking.state {
        BookingState::Confirmed { payment: p, .. } if p == payment => return Ok(Outcome::Confirmed(booking)),
        BookingState::Confirmed { .. } | BookingState::Released { .. } => return Ok(Outcome::WrongState(booking)),
        BookingState::Held => {}
    }
    let mut lost = Vec::new();
    for &ticket in &booking.tickets {
        let state: Option<TicketState> = read(rows, &keys::ticket(id.event, ticket))?;
        // A ticket is still ours if nobody else holds it now: free, or held by this booking
        // (even if that hold ended, rule 6).
        if state.is_some_and(|s| s.booking() != id && !s.is_free_at(at)) {
            lost.push(ticket);
        }
    }
    if !lost.is_empty() {
        return Ok(Outcome::HoldLost { booking, tickets: lost });
    }
    for &ticket in &booking.tickets {
        write(rows, keys::ticket(id.event, ticket), &TicketState::Sold { booking: id });
    }
    booking.state = BookingState::Confirmed { payment: payment.into(), at };
    write(rows, keys::booking(id), &booking);
    Ok(Outcome::Confirmed(booking))
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
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use model::{Row, Seat, Section, VenueSummary};

    use super::*;

    #[derive(Default)]
    pub struct MapRows(pub BTreeMap<Vec<u8>, Vec<u8>>);

    impl Rows for MapRows {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Fault> {
            Ok(self.0.get(key).cloned())
        }
        fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
            self.0.insert(key, value);
        }
        fn delete(&mut self, key: Vec<u8>) {
            self.0.remove(&key);
        }
    }

    pub fn map(seats: usize) -> SeatMap {
        let seats = (0..seats).map(|n| Seat { number: (n + 1).to_string(), x: n as f32, y: 0.0 }).collect();
        SeatMap {
            sections: vec![Section {
                name: "Floor".into(),
                price_cents: 5_000,
                rows: vec![Row { name: "A".into(), seats }],
            }],
        }
    }

    pub fn event(id: EventId, seats: usize) -> Event {
        Event {
            id,
            name: "Show".into(),
            description: String::new(),
            category: "concert".into(),
            starts_at: 1_000_000,
            venue: VenueSummary {
                id: 1,
                name: "Hall".into(),
                address: String::new(),
                city: "Oslo".into(),
                capacity: seats as u32,
            },
            performers: vec![],
            ticket_count: seats as u32,
            created_at: 0,
        }
    }

    fn setup(seats: usize) -> MapRows {
        let mut rows = MapRows::default();
        let outcome =
            apply(&Command::CreateEvent { event: event(1, seats), seat_map: map(seats) }, 0, &mut rows).unwrap();
        assert!(matches!(outcome, Outcome::EventCreated(_)));
        rows
    }

    const A: BookingId = BookingId { event: 1, nonce: 1 };
    const B: BookingId = BookingId { event: 1, nonce: 2 };

    fn hold_cmd(booking: BookingId, user: u64, tickets: &[u32], ttl_ms: u64) -> Command {
        Command::Hold { booking, user, tickets: tickets.to_vec(), ttl_ms }
    }

    #[test]
    fn a_hold_is_all_or_nothing() {
        let mut rows = setup(4);
        assert!(matches!(apply(&hold_cmd(A, 1, &[0, 1], 100), 10, &mut rows).unwrap(), Outcome::Held(_)));
        let outcome = apply(&hold_cmd(B, 2, &[1, 2], 100), 20, &mut rows).unwrap();
        assert_eq!(outcome, Outcome::Unavailable { tickets: vec![1] });
        // Ticket 2 was not held by the refused booking.
        assert!(matches!(apply(&hold_cmd(B, 2, &[2], 100), 30, &mut rows).unwrap(), Outcome::Held(_)));
    }

    #[test]
    fn a_hold_ends_by_time_alone() {
        let mut rows = setup(1);
        apply(&hold_cmd(A, 1, &[0], 100), 0, &mut rows).unwrap();
        assert!(matches!(apply(&hold_cmd(B, 2, &[0], 100), 99, &mut rows).unwrap(), Outcome::Unavailable { .. }));
        assert!(matches!(apply(&hold_cmd(B, 2, &[0], 100), 100, &mut rows).unwrap(), Outcome::Held(_)));
        // The first fan pays late: the ticket is someone else's now.
        let late = apply(&Command::Confirm { booking: A, user: 1, payment: "ch_1".into() }, 150, &mut rows).unwrap();
        assert!(matches!(late, Outcome::HoldLost { tickets, .. } if tickets == vec![0]));
    }

    #[test]
    fn a_late_payment_confirms_when_the_tickets_are_still_free() {
        let mut rows = setup(1);
        apply(&hold_cmd(A, 1, &[0], 100), 0, &mut rows).unwrap();
        let late = apply(&Command::Confirm { booking: A, user: 1, payment: "ch_1".into() }, 500, &mut rows).unwrap();
        assert!(matches!(late, Outcome::Confirmed(_)));
        assert!(matches!(apply(&hold_cmd(B, 2, &[0], 100), 600, &mut rows).unwrap(), Outcome::Unavailable { .. }));
    }

    #[test]
    fn every_command_is_idempotent() {
        let mut rows = setup(2);
        let hold = hold_cmd(A, 1, &[0, 1], 100);
        let first = apply(&hold, 0, &mut rows).unwrap();
        assert_eq!(apply(&hold, 5, &mut rows).unwrap(), first);
        let confirm = Command::Confirm { booking: A, user: 1, payment: "ch_1".into() };
        let first = apply(&confirm, 10, &mut rows).unwrap();
        assert_eq!(apply(&confirm, 20, &mut rows).unwrap(), first);
        let other_payment = Command::Confirm { booking: A, user: 1, payment: "ch_2".into() };
        assert!(matches!(apply(&other_payment, 30, &mut rows).unwrap(), Outcome::WrongState(_)));
        let signup = Command::CreateUser { name: "Ann".into(), email: "ann@x.org".into(), password_hash: "h".into() };
        let first = apply(&signup, 0, &mut rows).unwrap();
        assert_eq!(apply(&signup, 1, &mut rows).unwrap(), first);
        let other = Command::CreateUser { name: "Bob".into(), email: "ann@x.org".into(), password_hash: "g".into() };
        assert_eq!(apply(&other, 2, &mut rows).unwrap(), Outcome::EmailTaken);
    }

    #[test]
    fn release_frees_only_its_own_holds() {
        let mut rows = setup(1);
        apply(&hold_cmd(A, 1, &[0], 100), 0, &mut rows).unwrap();
        apply(&hold_cmd(B, 2, &[0], 100), 100, &mut rows).unwrap();
        // A's hold ended and B holds the ticket: A releasing must not free B's hold.
        assert!(matches!(
            apply(&Command::Release { booking: A, user: 1 }, 110, &mut rows).unwrap(),
            Outcome::Released(_)
        ));
        let c = BookingId { event: 1, nonce: 3 };
        assert!(matches!(apply(&hold_cmd(c, 3, &[0], 100), 120, &mut rows).unwrap(), Outcome::Unavailable { .. }));
        assert_eq!(apply(&Command::Release { booking: B, user: 1 }, 130, &mut rows).unwrap(), Outcome::NotYours);
        assert!(matches!(
            apply(&Command::Release { booking: B, user: 2 }, 130, &mut rows).unwrap(),
            Outcome::Released(_)
        ));
        assert!(matches!(apply(&hold_cmd(c, 3, &[0], 100), 140, &mut rows).unwrap(), Outcome::Held(_)));
    }

    #[test]
    fn bad_holds_are_refused_without_changing_anything() {
        let mut rows = setup(2);
        let before = rows.0.clone();
        assert!(matches!(apply(&hold_cmd(A, 1, &[], 100), 0, &mut rows).unwrap(), Outcome::Rejected(_)));
        assert!(matches!(apply(&hold_cmd(A, 1, &[0, 0], 100), 0, &mut rows).unwrap(), Outcome::Rejected(_)));
        assert!(matches!(apply(&hold_cmd(A, 1, &[0], 0), 0, &mut rows).unwrap(), Outcome::Rejected(_)));
        assert_eq!(
            apply(&hold_cmd(A, 1, &[0, 7], 100), 0, &mut rows).unwrap(),
            Outcome::UnknownTickets { tickets: vec![7] }
        );
        let other_event = BookingId { event: 9, nonce: 1 };
        assert_eq!(apply(&hold_cmd(other_event, 1, &[0], 100), 0, &mut rows).unwrap(), Outcome::NoSuchEvent);
        assert_eq!(rows.0, before);
    }

    #[test]
    fn placement_gives_sequential_ids_round_robin() {
        let mut rows = MapRows::default();
        let placed: Vec<_> = (0..3)
            .map(|_| match apply(&Command::PlaceEvent { groups: 2 }, 0, &mut rows).unwrap() {
                Outcome::EventPlaced(p) => (p.event, p.group),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(placed, vec![(1, 1), (2, 2), (3, 1)]);
    }
}

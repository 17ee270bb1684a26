//! The ticketing state machine: `apply(command, at, rows) -> outcome`, deterministic.
//!
//! It reads and writes rows through [`Rows`], so that it runs the same over RocksDB (the state
//! machine) and over a map (its unit tests). It never reads a clock: `at` is the entry's stamp.
//! Every command is idempotent: applying the same command twice leaves the state as once and
//! answers alike, so the router may retry a write whose answer it lost.
//!
//! Layout: this module applies a command and keeps the catalog (venues, performers, fans,
//! placements, events, and an event's parts: a group sells only its part's tickets); [`booking`] holds, releases and pays; [`room`] keeps an event's waiting
//! room (settings, node reports, the ticks that admit fans, and the holds made under an
//! admission: a hold on an event whose room is enabled needs one, and a booking made under one
//! ends its fan's shopping when it is released or confirmed); [`idempotency`] remembers the
//! first answer under each idempotency key and the webhook events applied, and forgets them
//! after their window (`Prune`); [`rows`] is the row interface and
//! its encoding; [`keys`] the row keys; `invariants` the assertions that follow every change of
//! a seat's owner (a ticket held, sold or freed agrees with its booking, and no ticket sold to
//! one booking is taken by another) and every admission (the watermark never moves back, the
//! shopping limit holds), checked in every build: a ledger that breaks them stops the process
//! rather than sell a seat twice.

use std::ops::Range;

use model::{
    group_for_new_event, normalize_email, Command, Event, EventParts, Millis, Outcome, Performer, Placement, SeatMap,
    TicketId, User, Venue,
};
use serde::{Deserialize, Serialize};

use booking::HoldRequest;
use rows::{read, write};

pub mod booking;
pub mod idempotency;
mod invariants;
pub mod keys;
pub mod room;
pub mod rows;

pub use booking::HOLD_TTL_HARD_MAX_MS;
pub use rows::{decode, encode, Fault, RawRow, Rows};

/// The next id of each kind of catalog record; ids start at 1.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counters {
    venue: u64,
    performer: u64,
    user: u64,
    event: u64,
}

/// Applies one command stamped `at`.
pub fn apply(command: &Command, at: Millis, rows: &mut impl Rows) -> Result<Outcome, Fault> {
    let outcome = dispatch(command, at, rows)?;
    // A booking made under an admission ends or extends its fan's shopping with it.
    room::after_booking(rows, at, &outcome)?;
    Ok(outcome)
}

fn dispatch(command: &Command, at: Millis, rows: &mut impl Rows) -> Result<Outcome, Fault> {
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
        Command::Hold { booking, .. } | Command::HoldBest { booking, .. } => {
            if room::requires_admission(rows, booking.event)? {
                return Ok(Outcome::AdmissionRequired);
            }
            hold(command, at, rows)
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
        Command::RoomConfigure { event, settings, draw_key } => room::configure(rows, at, *event, settings, *draw_key),
        Command::RoomReport { event, node, report } => room::report(rows, at, *event, *node, report),
        Command::RoomTick { event, step } => room::tick(rows, at, *event, *step),
        Command::RoomLateAdmit { event, node, boot, seq, count } => {
            let late = room::LateAdmission { node: *node, boot: *boot, seq: *seq, count: *count };
            room::late_admit(rows, at, *event, &late)
        }
        Command::Admitted { admission, hold: inner } => {
            room::admitted(rows, at, admission, inner, |rows| hold(inner, at, rows))
        }
        Command::Prune { window_ms, records_max } => idempotency::prune(rows, at, *window_ms, *records_max),
        Command::PlaceEventParts { groups, bounds } => place_event_parts(rows, *groups, bounds),
        Command::CreateEventPart { event, seat_map, part, first, end } => {
            create_event_part(rows, event, seat_map, *part, *first..*end)
        }
    }
}

/// Applies a hold (`Hold` or `HoldBest`) as it stands, whether its event sells through a room or
/// not: the caller decided it may.
fn hold(command: &Command, at: Millis, rows: &mut impl Rows) -> Result<Outcome, Fault> {
    match command {
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
        _ => Ok(Outcome::Rejected("an admission goes with a hold".into())),
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

/// Places an event in parts: part 0 where `place_event` would put it, each next part in the
/// group after, so that the parts' first leaders fall on different nodes.
fn place_event_parts(rows: &mut impl Rows, groups: u32, bounds: &[TicketId]) -> Result<Outcome, Fault> {
    let parts = bounds.len().saturating_sub(1) as u32;
    if parts == 0 || parts > groups {
        return Ok(Outcome::Rejected(format!("an event has 1 to {groups} groups (the cluster's), not {parts}")));
    }
    // Checked before the id is taken: a refusal changes nothing.
    let check = EventParts { event: 0, groups: vec![1; parts as usize], bounds: bounds.to_vec() };
    if let Some(problem) = check.problem() {
        return Ok(Outcome::Rejected(problem));
    }
    let event = next_id(rows, |c| &mut c.event)?;
    let home = group_for_new_event(event, groups);
    let part_groups = (0..parts).map(|i| 1 + (home - 1 + i) % groups).collect();
    let record = EventParts { event, groups: part_groups, bounds: bounds.to_vec() };
    write(rows, keys::placement(event), &Placement { event, group: home });
    write(rows, keys::parts(event), &record);
    Ok(Outcome::PartsPlaced(record))
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

/// Creates part `part` of an event in this group: the tickets `tickets` are the only ones it
/// sells. Part 0 is the event as listings and search see it; the others keep its seat map alone.
fn create_event_part(
    rows: &mut impl Rows,
    event: &Event,
    map: &SeatMap,
    part: u32,
    tickets: Range<TicketId>,
) -> Result<Outcome, Fault> {
    if rows.get(&keys::part(event.id))?.is_some() {
        return Ok(Outcome::EventExists(event.clone()));
    }
    if let Some(problem) = map.problem() {
        return Ok(Outcome::Rejected(problem));
    }
    if map.seat_count() != event.ticket_count as usize {
        return Ok(Outcome::Rejected("the event's ticket count is not its seat map's".into()));
    }
    if tickets.is_empty() || tickets.end > event.ticket_count {
        return Ok(Outcome::Rejected(format!("a part sells some of the event's {} tickets", event.ticket_count)));
    }
    if part == 0 {
        if let outcome @ (Outcome::Rejected(_) | Outcome::EventExists(_)) = create_event(rows, event, map)? {
            return Ok(outcome);
        }
    } else {
        write(rows, keys::seat_map(event.id), map);
    }
    write(rows, keys::part(event.id), &tickets);
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

#[cfg(test)]
mod room_tests;

#[cfg(test)]
mod idempotency_tests;

#[cfg(test)]
mod parts_tests;

//! The inventory commands: holding seats (chosen or best available), releasing them, and a
//! booking's payment from start to capture, failure or refund.
//!
//! Rows this module keeps beside tickets and bookings (keys in [`crate::ledger::keys`]):
//! - `f{user}{event}{nonce}`: a fan's bookings, for per-fan limits and "my bookings";
//! - `q{event}{nonce}`: bookings waiting for a payment, for the reconciliation task;
//!
//! and, through [`crate::ledger::idempotency`], the first answer under each idempotency key and
//! the webhook events already applied.

use std::collections::HashSet;

use model::{
    Booking, BookingId, BookingState, Idempotency, Millis, Outcome, TicketId, TicketState, BOOKING_TICKETS_HARD_MAX,
};

use crate::ledger::idempotency::{first_time, remember, remembered};
use crate::ledger::invariants;
use crate::ledger::keys;
use crate::ledger::rows::{read, write, Fault, Rows};

/// The longest hold apply accepts: a day. Settings pick far shorter ones.
pub const HOLD_TTL_HARD_MAX_MS: u64 = 24 * 60 * 60 * 1000;

/// Most of a fan's bookings for one event that a per-fan limit looks at; past it, the fan is
/// refused (a fan with a thousand bookings for one event is not a fan).
const FAN_BOOKINGS_SCANNED_MAX: usize = model::FAN_BOOKINGS_PER_EVENT_MAX;

/// What a hold asks for, whichever way its seats are chosen.
pub struct HoldRequest<'a> {
    pub booking: BookingId,
    pub user: u64,
    pub ttl_ms: u64,
    pub fan_tickets_max: u32,
    pub idempotency: Option<&'a Idempotency>,
}

/// Holds the given tickets (all or none).
pub fn hold(rows: &mut impl Rows, at: Millis, request: &HoldRequest, tickets: &[TicketId]) -> Result<Outcome, Fault> {
    if let Some(outcome) = remembered(rows, request.user, request.idempotency, at)? {
        return Ok(outcome);
    }
    let outcome = hold_tickets(rows, at, request, tickets)?;
    remember(rows, request.user, request.idempotency, at, &outcome);
    Ok(outcome)
}

/// Holds the best `quantity` free seats together, chosen here, in the log's order.
pub fn hold_best(
    rows: &mut impl Rows,
    at: Millis,
    request: &HoldRequest,
    quantity: u32,
    section: Option<&str>,
    max_price_cents: Option<u64>,
) -> Result<Outcome, Fault> {
    if let Some(outcome) = remembered(rows, request.user, request.idempotency, at)? {
        return Ok(outcome);
    }
    let outcome = match best_seats(rows, at, request.booking, quantity, section, max_price_cents)? {
        Ok(tickets) => hold_tickets(rows, at, request, &tickets)?,
        Err(outcome) => outcome,
    };
    remember(rows, request.user, request.idempotency, at, &outcome);
    Ok(outcome)
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

fn hold_tickets(
    rows: &mut impl Rows,
    at: Millis,
    request: &HoldRequest,
    tickets: &[TicketId],
) -> Result<Outcome, Fault> {
    let id = request.booking;
    if let Some(problem) = ticket_list_problem(tickets) {
        return Ok(Outcome::Rejected(problem));
    }
    if request.ttl_ms == 0 || request.ttl_ms > HOLD_TTL_HARD_MAX_MS {
        return Ok(Outcome::Rejected(format!("a hold lasts 1 to {HOLD_TTL_HARD_MAX_MS} ms")));
    }
    let Some(prices) = rows.prices(id.event)? else {
        return Ok(Outcome::NoSuchEvent);
    };
    let unknown: Vec<TicketId> = tickets.iter().copied().filter(|&t| t as usize >= prices.len()).collect();
    if !unknown.is_empty() {
        return Ok(Outcome::UnknownTickets { tickets: unknown });
    }
    if let Some(part) = rows.part_tickets(id.event)? {
        let elsewhere: Vec<TicketId> = tickets.iter().copied().filter(|t| !part.contains(t)).collect();
        if !elsewhere.is_empty() {
            let detail = format!("tickets {elsewhere:?} of event {} are sold by another of its groups", id.event);
            return Ok(Outcome::Rejected(detail));
        }
    }
    if let Some(existing) = read::<Booking, _>(rows, &keys::booking(id))? {
        let same = existing.user == request.user && existing.tickets == tickets;
        return Ok(if same { Outcome::Held(existing) } else { Outcome::BookingIdTaken });
    }
    let unavailable = taken(rows, id, tickets, at)?;
    if !unavailable.is_empty() {
        return Ok(Outcome::Unavailable { tickets: unavailable });
    }
    // Counting a fan's tickets reads every booking of theirs for the event: only with a limit.
    if request.fan_tickets_max > 0 {
        let held = fan_tickets(rows, request.user, id.event, at)?;
        if held + tickets.len() as u64 > u64::from(request.fan_tickets_max) {
            return Ok(Outcome::FanLimit { held: held.min(u32::MAX as u64) as u32, max: request.fan_tickets_max });
        }
    }
    let until = at + request.ttl_ms;
    for &ticket in tickets {
        write(rows, keys::ticket(id.event, ticket), &TicketState::Held { booking: id, until });
    }
    let booking = Booking {
        id,
        event: id.event,
        user: request.user,
        tickets: tickets.to_vec(),
        total_cents: tickets.iter().map(|&t| prices[t as usize]).sum(),
        held_until: until,
        hold_ttl_ms: request.ttl_ms,
        state: BookingState::Held,
        created_at: at,
        last_payment_error: None,
    };
    write(rows, keys::booking(id), &booking);
    rows.put(keys::fan_booking(request.user, id), Vec::new());
    invariants::assert_held(rows, &booking)?;
    Ok(Outcome::Held(booking))
}

/// The tickets a hold stamped `at` for booking `id` could not take.
fn taken(rows: &impl Rows, id: BookingId, tickets: &[TicketId], at: Millis) -> Result<Vec<TicketId>, Fault> {
    // The test-only switch that breaks the one check that keeps seats from being sold twice, so
    // that the chaos runner can show it catches a broken state machine (`scripts/chaos-broken`).
    let tickets = if cfg!(feature = "chaos-skip-availability-check") { &[][..] } else { tickets };
    let mut taken = Vec::new();
    for &ticket in tickets {
        let state: Option<TicketState> = read(rows, &keys::ticket(id.event, ticket))?;
        if state.is_some_and(|s| s.booking() != id && !s.is_free_at(at)) {
            taken.push(ticket);
        }
    }
    Ok(taken)
}

/// How many tickets of `event` the fan holds or owns at `at`; past the scan limit, as many as
/// could possibly count.
fn fan_tickets(rows: &impl Rows, user: u64, event: u64, at: Millis) -> Result<u64, Fault> {
    let mine = rows.scan(&keys::fan_bookings_of(user, event), FAN_BOOKINGS_SCANNED_MAX + 1)?;
    if mine.len() > FAN_BOOKINGS_SCANNED_MAX {
        return Ok(u64::MAX / 2);
    }
    let mut held = 0;
    for (key, _) in mine {
        let Some(id) = keys::booking_of_fan_key(&key) else { continue };
        if let Some(booking) = read::<Booking, _>(rows, &keys::booking(id))? {
            if booking.is_live_at(at) {
                held += booking.tickets.len() as u64;
            }
        }
    }
    Ok(held)
}

/// Picks `quantity` free seats: in the best price tier first (within the section and price
/// asked), the first row with that many side by side; failing that, the first row with that many
/// at all; failing that, the best free seats anywhere allowed.
fn best_seats(
    rows: &mut impl Rows,
    at: Millis,
    id: BookingId,
    quantity: u32,
    section: Option<&str>,
    max_price_cents: Option<u64>,
) -> Result<Result<Vec<TicketId>, Outcome>, Fault> {
    if quantity == 0 || quantity as usize > BOOKING_TICKETS_HARD_MAX {
        return Ok(Err(Outcome::Rejected(format!("a booking holds 1 to {BOOKING_TICKETS_HARD_MAX} tickets"))));
    }
    let Some(map) = rows.seat_map(id.event)? else { return Ok(Err(Outcome::NoSuchEvent)) };
    // An event in parts: this group offers its own part's seats only.
    let part = rows.part_tickets(id.event)?.unwrap_or(0..u32::MAX);
    let taken: HashSet<TicketId> = rows
        .scan(&keys::tickets_of(id.event), model::VENUE_SEATS_MAX)?
        .into_iter()
        .filter_map(|(key, value)| {
            let ticket = keys::ticket_of_key(&key)?;
            let state: TicketState = bincode::deserialize(&value).ok()?;
            (!state.is_free_at(at)).then_some(ticket)
        })
        .collect();
    // Free tickets of each allowed row, rows grouped by section, best price first.
    let mut first = 0u32;
    let mut sections = Vec::new();
    for s in &map.sections {
        let mut free_rows = Vec::new();
        for row in &s.rows {
            let ids = (first..first + row.seats.len() as u32).collect::<Vec<_>>();
            first += row.seats.len() as u32;
            free_rows.push(ids.into_iter().map(|t| (t, part.contains(&t) && !taken.contains(&t))).collect::<Vec<_>>());
        }
        let allowed =
            section.is_none_or(|name| name == s.name) && max_price_cents.is_none_or(|max| s.price_cents <= max);
        if allowed {
            sections.push((s.price_cents, free_rows));
        }
    }
    sections.sort_by_key(|(price, _)| std::cmp::Reverse(*price));
    let n = quantity as usize;
    let all_rows = || sections.iter().flat_map(|(_, rows)| rows.iter());
    let adjacent = all_rows().find_map(|row| {
        row.windows(n).find(|w| w.iter().all(|(_, free)| *free)).map(|w| w.iter().map(|(t, _)| *t).collect())
    });
    let same_row = || {
        all_rows().find_map(|row| {
            let free: Vec<TicketId> = row.iter().filter(|(_, f)| *f).map(|(t, _)| *t).collect();
            (free.len() >= n).then(|| free[..n].to_vec())
        })
    };
    let anywhere = || {
        let free: Vec<TicketId> =
            all_rows().flat_map(|row| row.iter().filter(|(_, f)| *f).map(|(t, _)| *t)).take(n).collect();
        (free.len() == n).then_some(free)
    };
    Ok(adjacent.or_else(same_row).or_else(anywhere).ok_or(Outcome::NoSeats))
}

/// Reads a booking that `user` may act on, or the outcome that says why not.
fn owned_booking(rows: &impl Rows, id: BookingId, user: u64) -> Result<Result<Booking, Outcome>, Fault> {
    Ok(match read::<Booking, _>(rows, &keys::booking(id))? {
        None => Err(Outcome::NoSuchBooking),
        Some(b) if b.user != user => Err(Outcome::NotYours),
        Some(b) => Ok(b),
    })
}

/// Frees the tickets this booking still holds (an ended hold may already be someone else's).
fn free_own_holds(rows: &mut impl Rows, booking: &Booking) -> Result<(), Fault> {
    for &ticket in &booking.tickets {
        let key = keys::ticket(booking.event, ticket);
        let state: Option<TicketState> = read(rows, &key)?;
        if matches!(state, Some(TicketState::Held { booking: b, .. }) if b == booking.id) {
            rows.delete(key);
        }
    }
    Ok(())
}

fn save(rows: &mut impl Rows, booking: &Booking) {
    write(rows, keys::booking(booking.id), booking);
}

fn set_pending(rows: &mut impl Rows, booking: &Booking, since: Option<Millis>) {
    match since {
        Some(since) => write(rows, keys::pending(booking.id), &since),
        None => rows.delete(keys::pending(booking.id)),
    }
}

pub fn release(rows: &mut impl Rows, at: Millis, id: BookingId, user: u64) -> Result<Outcome, Fault> {
    let mut booking = match owned_booking(rows, id, user)? {
        Ok(b) => b,
        Err(outcome) => return Ok(outcome),
    };
    match booking.state {
        BookingState::Released { .. } => return Ok(Outcome::Released(booking)),
        BookingState::Confirmed { .. } | BookingState::Refunded { .. } => return Ok(Outcome::WrongState(booking)),
        BookingState::Held | BookingState::PaymentPending { .. } => {}
    }
    free_own_holds(rows, &booking)?;
    set_pending(rows, &booking, None);
    booking.state = BookingState::Released { at };
    save(rows, &booking);
    invariants::assert_freed(rows, &booking, at)?;
    Ok(Outcome::Released(booking))
}

/// A payment started: the booking waits for it, its hold extended within its bound.
pub fn start_payment(
    rows: &mut impl Rows,
    at: Millis,
    id: BookingId,
    user: u64,
    payment: &str,
    extension_ms: u64,
    idempotency: Option<&Idempotency>,
) -> Result<Outcome, Fault> {
    if let Some(outcome) = remembered(rows, user, idempotency, at)? {
        return Ok(outcome);
    }
    let outcome = match owned_booking(rows, id, user)? {
        Err(outcome) => outcome,
        Ok(booking) => start(rows, at, booking, payment, extension_ms)?,
    };
    remember(rows, user, idempotency, at, &outcome);
    Ok(outcome)
}

fn start(
    rows: &mut impl Rows,
    at: Millis,
    mut booking: Booking,
    payment: &str,
    extension_ms: u64,
) -> Result<Outcome, Fault> {
    match &booking.state {
        BookingState::PaymentPending { payment: p, .. } if p == payment => return Ok(Outcome::PaymentPending(booking)),
        BookingState::Held => {}
        _ => return Ok(Outcome::WrongState(booking)),
    }
    if at >= booking.held_until {
        // The hold ended: paying takes the seats back only if nobody else has them (rule 6).
        let lost = taken(rows, booking.id, &booking.tickets, at)?;
        if !lost.is_empty() {
            return Ok(Outcome::HoldLost { booking, tickets: lost });
        }
    }
    // Never an endless hold: at most the first hold's length plus one extension.
    let bound = booking.created_at + booking.hold_ttl_ms + extension_ms;
    booking.held_until = booking.held_until.max((at + extension_ms).min(bound));
    invariants::assert_none_sold_to_another(rows, booking.id, &booking.tickets)?;
    for &ticket in &booking.tickets {
        write(
            rows,
            keys::ticket(booking.event, ticket),
            &TicketState::Held { booking: booking.id, until: booking.held_until },
        );
    }
    booking.state = BookingState::PaymentPending { payment: payment.into(), since: at };
    booking.last_payment_error = None;
    set_pending(rows, &booking, Some(at));
    save(rows, &booking);
    invariants::assert_held(rows, &booking)?;
    Ok(Outcome::PaymentPending(booking))
}

pub fn payment_succeeded(
    rows: &mut impl Rows,
    at: Millis,
    id: BookingId,
    payment: &str,
    event: Option<&str>,
) -> Result<Outcome, Fault> {
    if let Some(outcome) = first_time(rows, at, event)? {
        return Ok(outcome);
    }
    let Some(mut booking) = read::<Booking, _>(rows, &keys::booking(id))? else { return Ok(Outcome::NoSuchBooking) };
    match &booking.state {
        BookingState::Confirmed { payment: p, .. } if p == payment => return Ok(Outcome::Confirmed(booking)),
        BookingState::Confirmed { .. } | BookingState::Released { .. } | BookingState::Refunded { .. } => {
            return Ok(Outcome::WrongState(booking))
        }
        BookingState::Held | BookingState::PaymentPending { .. } => {}
    }
    // The tickets are still ours if nobody else holds them now: free, or held by this booking
    // (even if that hold ended, rule 6).
    let lost = taken(rows, id, &booking.tickets, at)?;
    if !lost.is_empty() {
        return Ok(Outcome::HoldLost { booking, tickets: lost });
    }
    for &ticket in &booking.tickets {
        write(rows, keys::ticket(id.event, ticket), &TicketState::Sold { booking: id });
    }
    set_pending(rows, &booking, None);
    booking.state = BookingState::Confirmed { payment: payment.into(), at };
    booking.last_payment_error = None;
    save(rows, &booking);
    count_sold(rows, booking.event, booking.tickets.len() as i64)?;
    invariants::assert_sold(rows, &booking)?;
    Ok(Outcome::Confirmed(booking))
}

pub fn payment_failed(
    rows: &mut impl Rows,
    at: Millis,
    id: BookingId,
    payment: &str,
    reason: &str,
    event: Option<&str>,
) -> Result<Outcome, Fault> {
    if let Some(outcome) = first_time(rows, at, event)? {
        return Ok(outcome);
    }
    let Some(mut booking) = read::<Booking, _>(rows, &keys::booking(id))? else { return Ok(Outcome::NoSuchBooking) };
    if matches!(&booking.state, BookingState::PaymentPending { payment: p, .. } if p == payment) {
        // Payable again, with the hold it has left.
        booking.state = BookingState::Held;
        booking.last_payment_error = Some(reason.into());
        set_pending(rows, &booking, None);
        save(rows, &booking);
    }
    Ok(Outcome::Updated(booking))
}

pub fn payment_refunded(
    rows: &mut impl Rows,
    at: Millis,
    id: BookingId,
    payment: &str,
    event: Option<&str>,
) -> Result<Outcome, Fault> {
    if let Some(outcome) = first_time(rows, at, event)? {
        return Ok(outcome);
    }
    let Some(mut booking) = read::<Booking, _>(rows, &keys::booking(id))? else { return Ok(Outcome::NoSuchBooking) };
    match &booking.state {
        BookingState::Refunded { .. } => return Ok(Outcome::Updated(booking)),
        // A refund of another payment than the one that bought the booking changes nothing.
        BookingState::Confirmed { payment: p, .. } if p != payment => return Ok(Outcome::Updated(booking)),
        BookingState::Confirmed { .. } => {
            for &ticket in &booking.tickets {
                let key = keys::ticket(id.event, ticket);
                if read::<TicketState, _>(rows, &key)? == Some(TicketState::Sold { booking: id }) {
                    rows.delete(key);
                }
            }
            count_sold(rows, booking.event, -(booking.tickets.len() as i64))?;
        }
        BookingState::Held | BookingState::PaymentPending { .. } => free_own_holds(rows, &booking)?,
        BookingState::Released { .. } => {}
    }
    set_pending(rows, &booking, None);
    booking.state = BookingState::Refunded { payment: payment.into(), at };
    save(rows, &booking);
    invariants::assert_freed(rows, &booking, at)?;
    Ok(Outcome::Updated(booking))
}

/// Keeps the count of an event's sold tickets (for search's "has tickets left").
fn count_sold(rows: &mut impl Rows, event: u64, change: i64) -> Result<(), Fault> {
    let sold: u32 = read(rows, &keys::sold(event))?.unwrap_or(0);
    let sold = (i64::from(sold) + change).max(0) as u32;
    write(rows, keys::sold(event), &sold);
    Ok(())
}

//! Holding tickets, and a booking's life after: reading it, releasing it, paying for it.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use model::{
    Booking, BookingId, BookingState, BookingStatus, Command, Consistency, EventId, GroupId, Millis, Outcome, Query,
    QueryResult, TicketId,
};
use serde::Deserialize;

use crate::auth::Fan;
use crate::cluster::Cluster;
use crate::extract::{JsonBody, PathParams};
use crate::metrics::PaymentOutcome;
use crate::payment::{Card, Charge};
use crate::problem::Problem;
use crate::state::{if_not_found, no_booking, no_event, unexpected, AppState, Shared};
use crate::validate::{self, FieldError};
use crate::views::BookingView;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldRequest {
    ticket_ids: Vec<TicketId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    card_number: String,
}

/// `POST /events/{eventId}/bookings`: hold tickets, all of them or none.
pub async fn create<C: Cluster>(
    Fan(user): Fan,
    State(state): State<AppState<C>>,
    PathParams(event): PathParams<EventId>,
    JsonBody(body): JsonBody<HoldRequest>,
) -> Result<Response, Problem> {
    validate::ticket_list(&body.ticket_ids, state.config.tickets_per_booking_max)?;
    let group = state.group_of(event).await?;
    let map = state.seat_map(event, group).await?;
    let unknown = validate::unknown_tickets(&body.ticket_ids, map.seat_count());
    if !unknown.is_empty() {
        return Err(Problem::unknown_tickets(&unknown));
    }
    let booking = BookingId { event, nonce: rand::random() };
    let command = Command::Hold { booking, user, tickets: body.ticket_ids, ttl_ms: state.config.hold_ttl_ms };
    match state.write(group, command).await? {
        Outcome::Held(held) => {
            state.metrics.count_hold(true);
            tracing::info!(booking = %held.id, user, tickets = held.tickets.len(), "tickets held");
            let location = format!("/bookings/{}", held.id);
            let view = BookingView::new(&held, &map, state.now());
            Ok((StatusCode::CREATED, [(LOCATION, location)], Json(view)).into_response())
        }
        Outcome::Unavailable { tickets } => {
            state.metrics.count_hold(false);
            Err(Problem::tickets_unavailable(&tickets))
        }
        Outcome::UnknownTickets { tickets } => Err(Problem::unknown_tickets(&tickets)),
        Outcome::NoSuchEvent => Err(no_event(event)),
        // Two random 64-bit nonces met: vanishingly rare, and a retry draws a new one.
        Outcome::BookingIdTaken => {
            Err(Problem::conflict("booking-id-taken", "Booking id taken", "the booking id clashed; please retry"))
        }
        Outcome::Rejected(reason) => Err(Problem::invalid(reason)),
        other => Err(unexpected("hold", &other)),
    }
}

/// `GET /bookings/{bookingId}`: one of the fan's bookings.
pub async fn get_booking<C: Cluster>(
    Fan(user): Fan,
    State(state): State<AppState<C>>,
    PathParams(raw): PathParams<String>,
) -> Result<Json<BookingView>, Problem> {
    let id = parse_booking_id(&raw)?;
    let (group, booking) = state.booking(id).await?;
    if booking.user != user {
        return Err(not_yours(id));
    }
    Ok(Json(view(&state, group, &booking).await?))
}

/// `DELETE /bookings/{bookingId}`: give a held booking's tickets back.
pub async fn release<C: Cluster>(
    Fan(user): Fan,
    State(state): State<AppState<C>>,
    PathParams(raw): PathParams<String>,
) -> Result<Json<BookingView>, Problem> {
    let id = parse_booking_id(&raw)?;
    let group = state.group_of(id.event).await.map_err(|p| if_not_found(p, || no_booking(id)))?;
    match state.write(group, Command::Release { booking: id, user }).await? {
        Outcome::Released(booking) => {
            tracing::info!(booking = %id, user, "booking released");
            Ok(Json(view(&state, group, &booking).await?))
        }
        Outcome::NotYours => Err(not_yours(id)),
        Outcome::NoSuchBooking => Err(no_booking(id)),
        Outcome::WrongState(booking) => Err(wrong_state(&booking, state.now())),
        Outcome::Rejected(reason) => Err(Problem::invalid(reason)),
        other => Err(unexpected("release", &other)),
    }
}

/// `POST /bookings/{bookingId}/payment`: pay for a held booking and confirm it.
///
/// The order matters for design rule 6: charge only when the booking can still be confirmed,
/// confirm with the charge's id, and refund whenever the confirmation does not take.
pub async fn pay<C: Cluster>(
    Fan(user): Fan,
    State(state): State<AppState<C>>,
    PathParams(raw): PathParams<String>,
    JsonBody(body): JsonBody<PaymentRequest>,
) -> Result<Json<BookingView>, Problem> {
    let id = parse_booking_id(&raw)?;
    let card = Card::parse(&body.card_number).map_err(|error| {
        Problem::invalid(error.to_string()).with("errors", [FieldError::new("cardNumber", error.to_string())])
    })?;
    let (group, booking) = state.booking(id).await?;
    if booking.user != user {
        return Err(not_yours(id));
    }
    let now = state.now();
    match booking.status_at(now) {
        // Paid already: answer as is, never charge twice.
        BookingStatus::Confirmed => return Ok(Json(view(&state, group, &booking).await?)),
        BookingStatus::Released => return Err(wrong_state(&booking, now)),
        BookingStatus::Expired => ensure_tickets_free(&state, group, &booking, now).await?,
        BookingStatus::Held => {}
    }
    let charge = match state.payments.charge(id, booking.total_cents, &card).await {
        Ok(charge) => charge,
        Err(declined) => {
            state.metrics.count_payment(PaymentOutcome::Declined);
            tracing::info!(booking = %id, user, reason = %declined.reason, "payment declined");
            return Err(Problem::payment_declined(declined.reason));
        }
    };
    state.metrics.count_payment(PaymentOutcome::Charged);
    let confirmed = confirm(&state, group, id, user, &charge).await?;
    tracing::info!(booking = %id, user, charge = %charge.id, "booking confirmed");
    Ok(Json(view(&state, group, &confirmed).await?))
}

/// Confirms a charged booking; refunds the charge unless the booking ends paid with it.
async fn confirm<C: Cluster>(
    state: &Shared<C>,
    group: GroupId,
    id: BookingId,
    user: u64,
    charge: &Charge,
) -> Result<Booking, Problem> {
    let command = Command::Confirm { booking: id, user, payment: charge.id.clone() };
    let outcome = match state.write(group, command).await {
        Ok(outcome) => outcome,
        Err(problem) => {
            // The command may still apply, so refunding now could refund a sold booking. A retry
            // by the fan reads the booking first, and the provider hands back the same charge.
            tracing::warn!(booking = %id, charge = %charge.id, "confirmation unknown after charging");
            return Err(problem);
        }
    };
    let problem = match outcome {
        Outcome::Confirmed(booking) => return Ok(settle(state, booking, charge).await),
        Outcome::WrongState(booking) if is_confirmed(&booking) => return Ok(settle(state, booking, charge).await),
        Outcome::HoldLost { tickets, .. } => Problem::tickets_unavailable(&tickets),
        Outcome::WrongState(booking) => wrong_state(&booking, state.now()),
        Outcome::NotYours => not_yours(id),
        Outcome::NoSuchBooking => no_booking(id),
        Outcome::Rejected(reason) => Problem::invalid(reason),
        other => unexpected("confirm", &other),
    };
    refund(state, id, charge).await;
    Err(problem)
}

/// A booking that ended confirmed: if it was confirmed with another charge (a concurrent
/// payment won), ours is surplus and goes back.
async fn settle<C: Cluster>(state: &Shared<C>, booking: Booking, charge: &Charge) -> Booking {
    let paid_with_ours = matches!(&booking.state, BookingState::Confirmed { payment, .. } if *payment == charge.id);
    if !paid_with_ours {
        refund(state, booking.id, charge).await;
    }
    booking
}

fn is_confirmed(booking: &Booking) -> bool {
    matches!(booking.state, BookingState::Confirmed { .. })
}

/// Refunds a charge. A failure leaves money taken without a booking, which an operator must
/// settle by hand: it is logged at error with everything needed.
async fn refund<C: Cluster>(state: &Shared<C>, booking: BookingId, charge: &Charge) {
    match state.payments.refund(&charge.id).await {
        Ok(()) => {
            state.metrics.count_payment(PaymentOutcome::Refunded);
            tracing::info!(%booking, charge = %charge.id, "charge refunded");
        }
        Err(error) => {
            tracing::error!(%booking, charge = %charge.id, %error, "refund failed: settle by hand")
        }
    }
}

/// Before charging for an expired hold: its tickets must not have gone to someone else since.
async fn ensure_tickets_free<C: Cluster>(
    state: &Shared<C>,
    group: GroupId,
    booking: &Booking,
    now: Millis,
) -> Result<(), Problem> {
    let rows = match state.read(group, Query::Tickets(booking.event), Consistency::Linearizable).await? {
        QueryResult::Tickets(rows) => rows,
        other => return Err(unexpected("tickets", &other)),
    };
    let taken: Vec<TicketId> = rows
        .iter()
        .filter(|(ticket, s)| booking.tickets.contains(ticket) && s.booking() != booking.id && !s.is_free_at(now))
        .map(|(ticket, _)| *ticket)
        .collect();
    if taken.is_empty() {
        Ok(())
    } else {
        Err(Problem::tickets_unavailable(&taken))
    }
}

async fn view<C: Cluster>(state: &Shared<C>, group: GroupId, booking: &Booking) -> Result<BookingView, Problem> {
    let map = state.seat_map(booking.event, group).await?;
    Ok(BookingView::new(booking, &map, state.now()))
}

fn parse_booking_id(raw: &str) -> Result<BookingId, Problem> {
    raw.parse().map_err(|error: model::BadBookingId| Problem::bad_request(error.to_string()))
}

fn not_yours(id: BookingId) -> Problem {
    Problem::forbidden(format!("booking {id} belongs to another fan"))
}

/// A booking that is no longer in a state the request applies to.
fn wrong_state(booking: &Booking, now: Millis) -> Problem {
    let status = status_name(booking.status_at(now));
    Problem::conflict("booking-state", "Booking in the wrong state", format!("booking {} is {status}", booking.id))
        .with("bookingStatus", status)
}

fn status_name(status: BookingStatus) -> &'static str {
    match status {
        BookingStatus::Held => "held",
        BookingStatus::Confirmed => "confirmed",
        BookingStatus::Released => "released",
        BookingStatus::Expired => "expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking(state: BookingState) -> Booking {
        let id = BookingId { event: 3, nonce: 0xab };
        Booking { id, event: 3, user: 1, tickets: vec![0], total_cents: 5, held_until: 5, state, created_at: 0 }
    }

    #[test]
    fn a_wrong_state_names_the_status_as_it_reads_now() {
        let problem = wrong_state(&booking(BookingState::Released { at: 1 }), 10);
        assert_eq!(problem.status(), StatusCode::CONFLICT);
        assert_eq!(problem.detail(), "booking 3-00000000000000ab is released");
        assert_eq!(problem.extension("bookingStatus"), Some(&"released".into()));
        let expired = wrong_state(&booking(BookingState::Held), 10);
        assert_eq!(expired.extension("bookingStatus"), Some(&"expired".into()));
    }

    #[test]
    fn status_names_match_the_json_of_the_status() {
        for status in [BookingStatus::Held, BookingStatus::Confirmed, BookingStatus::Released, BookingStatus::Expired] {
            assert_eq!(serde_json::to_value(status).unwrap(), status_name(status));
        }
    }

    #[test]
    fn malformed_booking_ids_are_bad_requests() {
        assert_eq!(parse_booking_id("nope").unwrap_err().status(), StatusCode::BAD_REQUEST);
        assert_eq!(parse_booking_id("3-00000000000000ab").unwrap(), BookingId { event: 3, nonce: 0xab });
    }
}

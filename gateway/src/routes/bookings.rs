//! Holding tickets, and a booking's life after: reading it, releasing it, paying for it.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use model::room::Admission;
use model::{
    Booking, BookingId, BookingState, BookingStatus, Command, EventId, GroupId, Millis, Outcome, SeatMap, TicketId,
    UserId,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::admission::{AdmissionError, AdmissionSigner};
use crate::auth::Fan;
use crate::cluster::Cluster;
use crate::extract::{Keyed, PathParams};
use crate::metrics::PaymentOutcome;
use crate::parts::{best_available_order, part_of_tickets};
use crate::payment::{Card, ProviderError};
use crate::problem::Problem;
use crate::settle::{captured, Settled};
use crate::state::{no_booking, no_event, unexpected, AppState, Shared};
use crate::validate::{self, FieldError};
use crate::views::BookingView;

/// Chosen seats (`ticketIds`), or the best `quantity` free seats, in a section and under a price
/// if given.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HoldRequest {
    ticket_ids: Option<Vec<TicketId>>,
    quantity: Option<u32>,
    section: Option<String>,
    max_price: Option<u64>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequest {
    /// Pay at once with this card (the provider's server-side confirmation); without it the
    /// answer gives the checkout page to send the fan to.
    card_number: Option<String>,
    /// Where the checkout page sends the fan back to.
    return_url: Option<String>,
}

/// The header a hold on an event with a waiting room carries its admission token in.
pub const ADMISSION_TOKEN_HEADER: &str = "admission-token";

/// `POST /events/{eventId}/bookings`: hold tickets, all of them or none. On an event that sells
/// through its waiting room, only with the admission token the room gave the fan.
#[utoipa::path(post, path = "/events/{eventId}/bookings", tag = "bookings", request_body = HoldRequest,
    security(("fan" = []), ("fan" = [], "admission" = [])),
    params(("eventId" = u64, Path, description = "The event"), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer, once"),
        ("Admission-Token" = Option<String>, Header, description = "The waiting room's admission, on an event that sells through it")),
    responses((status = 201, description = "The booking, its tickets held", body = BookingView,
        headers(("Location" = String, description = "The booking's URL")))))]
pub async fn create<C: Cluster>(
    Fan(user): Fan,
    State(state): State<AppState<C>>,
    PathParams(event): PathParams<EventId>,
    headers: HeaderMap,
    Keyed { body, idempotency }: Keyed<HoldRequest>,
) -> Result<Response, Problem> {
    let parts = state.parts_of(event).await?;
    let home = parts.home();
    let map = state.seat_map(event, home).await?;
    let (ttl_ms, fan_tickets_max) = (state.config.hold_ttl_ms, state.config.tickets_per_fan_max);
    let outcome = match (body.ticket_ids, body.quantity) {
        (Some(tickets), None) => {
            validate::ticket_list(&tickets, state.config.tickets_per_booking_max)?;
            let unknown = validate::unknown_tickets(&tickets, map.seat_count());
            if !unknown.is_empty() {
                return Err(Problem::unknown_tickets(&unknown));
            }
            let part = part_of_tickets(&parts, &tickets)?;
            let booking = parts.booking_id(part, rand::random());
            let command = Command::Hold { booking, user, tickets, ttl_ms, fan_tickets_max, idempotency };
            let command = under_admission(&state, event, home, user, &headers, command).await?;
            state.write(parts.groups[part as usize], command).await?
        }
        (None, Some(quantity)) => {
            let max = state.config.tickets_per_booking_max as u32;
            if quantity == 0 || quantity > max {
                return Err(Problem::invalid(format!("quantity is 1 to {max}")));
            }
            if let Some(name) = &body.section {
                if !map.sections.iter().any(|s| &s.name == name) {
                    return Err(Problem::invalid(format!("event {event} has no section `{name}`")));
                }
            }
            let order = best_available_order(&parts, &map, body.section.as_deref(), body.max_price, user);
            let hold = |part| {
                let booking = parts.booking_id(part, rand::random());
                let (section, max_price_cents, idempotency) =
                    (body.section.clone(), body.max_price, idempotency.clone());
                Command::HoldBest {
                    booking,
                    user,
                    quantity,
                    section,
                    max_price_cents,
                    ttl_ms,
                    fan_tickets_max,
                    idempotency,
                }
            };
            let mut outcome = Outcome::NoSeats;
            // Each part's group picks among its own seats; the next is asked only if it has none.
            for part in order {
                let command = under_admission(&state, event, home, user, &headers, hold(part)).await?;
                outcome = state.write(parts.groups[part as usize], command).await?;
                if outcome != Outcome::NoSeats {
                    break;
                }
            }
            outcome
        }
        _ => return Err(Problem::invalid("give either ticketIds (the seats) or quantity (the best seats)")),
    };
    held(&state, event, &map, outcome)
}

/// The answer to a hold, from what its group applied.
fn held<C: Cluster>(state: &Shared<C>, event: EventId, map: &SeatMap, outcome: Outcome) -> Result<Response, Problem> {
    match outcome {
        Outcome::Held(held) => {
            state.metrics.count_hold(true);
            tracing::debug!(booking = %held.id, user = held.user, tickets = held.tickets.len(), "tickets held");
            let location = format!("/bookings/{}", held.id);
            let view = BookingView::new(&held, map, state.now());
            Ok((StatusCode::CREATED, [(LOCATION, location)], Json(view)).into_response())
        }
        Outcome::Unavailable { tickets } => {
            state.metrics.count_hold(false);
            Err(Problem::tickets_unavailable(&tickets))
        }
        Outcome::NoSeats => {
            state.metrics.count_hold(false);
            Err(Problem::conflict("no-seats", "No seats", "no free seats match: try fewer, another section or price"))
        }
        Outcome::FanLimit { held, max } => Err(fan_limit(held, max)),
        Outcome::UnknownTickets { tickets } => Err(Problem::unknown_tickets(&tickets)),
        Outcome::NoSuchEvent => Err(no_event(event)),
        Outcome::IdempotencyMismatch => Err(idempotency_mismatch()),
        // Two random 64-bit nonces met: vanishingly rare, and a retry draws a new one.
        Outcome::BookingIdTaken => {
            Err(Problem::conflict("booking-id-taken", "Booking id taken", "the booking id clashed; please retry"))
        }
        Outcome::Rejected(reason) => Err(Problem::invalid(reason)),
        Outcome::AdmissionRequired => Err(join_the_room(event)),
        Outcome::AdmissionInvalid(detail) => Err(Problem::waiting_room(event, detail)),
        Outcome::AdmissionSpent => Err(Problem::waiting_room(event, "this admission already made a booking")),
        other => Err(unexpected("hold", &other)),
    }
}

/// `hold` as it goes to the group: under the fan's admission if the event's room is on, as it is
/// otherwise (a token sent anyway is ignored).
async fn under_admission<C: Cluster>(
    state: &Shared<C>,
    event: EventId,
    group: GroupId,
    user: UserId,
    headers: &HeaderMap,
    hold: Command,
) -> Result<Command, Problem> {
    let Some(room) = state.room(event, group).await? else { return Ok(hold) };
    if !room.settings.enabled {
        return Ok(hold);
    }
    let admission = admission_of(&state.admissions, headers, event, user, state.now())?;
    tracing::debug!(event, user, seq = admission.place.seq, "hold under admission");
    Ok(Command::Admitted { admission, hold: Box::new(hold) })
}

/// The admission the `Admission-Token` header grants `user` on `event` at `now`; a problem that
/// sends the fan to the waiting room otherwise.
fn admission_of(
    signer: &AdmissionSigner,
    headers: &HeaderMap,
    event: EventId,
    user: UserId,
    now: Millis,
) -> Result<Admission, Problem> {
    let header = headers.get(ADMISSION_TOKEN_HEADER).ok_or_else(|| join_the_room(event))?;
    let not_valid = || Problem::waiting_room(event, "the admission token is not valid");
    let token = header.to_str().map_err(|_| not_valid())?.trim();
    let claims = signer.verify(token, now).map_err(|error| match error {
        AdmissionError::Expired => {
            Problem::waiting_room(event, "the admission token has expired: join the waiting room again")
        }
        AdmissionError::Malformed | AdmissionError::BadSignature => not_valid(),
    })?;
    if claims.event != event {
        return Err(Problem::waiting_room(event, "the admission token is for another event"));
    }
    if claims.user != user {
        return Err(Problem::waiting_room(event, "the admission token is another fan's"));
    }
    Ok(Admission { place: claims.place, user: claims.user, expires_at: claims.expires_at })
}

fn join_the_room(event: EventId) -> Problem {
    Problem::waiting_room(
        event,
        format!("event {event} sells through its waiting room: join it for an admission token"),
    )
}

fn idempotency_mismatch() -> Problem {
    Problem::invalid("this Idempotency-Key was used with another request: use a new key for a new request")
}

/// `GET /bookings/{bookingId}`: one of the fan's bookings.
#[utoipa::path(get, path = "/bookings/{bookingId}", tag = "bookings", security(("fan" = [])), params(("bookingId" = String, Path, description = "A booking id: `{event}-{nonce as 16 hex digits}`", pattern = "^[0-9]{1,20}-[0-9a-f]{16}$")),
    responses((status = 200, description = "The booking", body = BookingView)))]
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
#[utoipa::path(delete, path = "/bookings/{bookingId}", tag = "bookings", security(("fan" = [])), params(("bookingId" = String, Path, description = "A booking id: `{event}-{nonce as 16 hex digits}`", pattern = "^[0-9]{1,20}-[0-9a-f]{16}$")),
    responses((status = 200, description = "The booking, released", body = BookingView)))]
pub async fn release<C: Cluster>(
    Fan(user): Fan,
    State(state): State<AppState<C>>,
    PathParams(raw): PathParams<String>,
) -> Result<Json<BookingView>, Problem> {
    let id = parse_booking_id(&raw)?;
    let group = state.group_of_booking(id).await?;
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

/// `POST /bookings/{bookingId}/payment`: start paying for a held booking. Without a card the
/// answer (202) says where the fan's checkout page is, and the provider's webhook confirms the
/// booking later; with a card the gateway confirms at the provider at once and answers with the
/// booking confirmed (200), declined (402, still payable), or lost (409, refunded).
#[utoipa::path(post, path = "/bookings/{bookingId}/payment", tag = "bookings", request_body = PaymentRequest,
    security(("fan" = [])), params(("bookingId" = String, Path, description = "A booking id: `{event}-{nonce as 16 hex digits}`", pattern = "^[0-9]{1,20}-[0-9a-f]{16}$"), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer, once")),
    responses((status = 200, description = "Paid: the booking, confirmed", body = BookingView),
        (status = 202, description = "Pay on the checkout page at `checkoutUrl`", body = BookingView)))]
pub async fn pay<C: Cluster>(
    Fan(user): Fan,
    State(state): State<AppState<C>>,
    PathParams(raw): PathParams<String>,
    Keyed { body, idempotency }: Keyed<PaymentRequest>,
) -> Result<Response, Problem> {
    let id = parse_booking_id(&raw)?;
    if let Some(problem) =
        body.return_url.as_deref().and_then(|url| validate::return_url_problem(url, &state.config.public_origins))
    {
        let detail = format!("returnUrl {problem}");
        return Err(Problem::invalid(detail.clone()).with("errors", [FieldError::new("returnUrl", detail)]));
    }
    let card = body.card_number.as_deref().map(Card::parse).transpose().map_err(|error| {
        Problem::invalid(error.to_string()).with("errors", [FieldError::new("cardNumber", error.to_string())])
    })?;
    let (group, booking) = state.booking(id).await?;
    if booking.user != user {
        return Err(not_yours(id));
    }
    let now = state.now();
    match booking.status_at(now) {
        // Paid already: answer as is, never charge twice.
        BookingStatus::Confirmed => return ok(&state, group, &booking, StatusCode::OK, None).await,
        // An ended hold may still be paid for while nobody else took its seats (rule 6).
        BookingStatus::Held | BookingStatus::PaymentPending | BookingStatus::Expired => {}
        _ => return Err(wrong_state(&booking, now)),
    }
    let return_url = body.return_url.as_deref();
    let intent = state.payments.create_intent(id, booking.total_cents, return_url).await.map_err(provider_problem)?;
    if intent.succeeded() {
        // Paid on the checkout page already; the webhook may not be here yet.
        return settled(&state, group, captured(&state, group, id, &intent.id, None).await?).await;
    }
    let extension_ms = state.config.payment_hold_extension_ms;
    let start = Command::StartPayment { booking: id, user, payment: intent.id.clone(), extension_ms, idempotency };
    let pending = match state.write(group, start).await? {
        Outcome::PaymentPending(b) => b,
        Outcome::WrongState(b) if matches!(b.state, BookingState::Confirmed { .. }) => {
            return ok(&state, group, &b, StatusCode::OK, None).await
        }
        Outcome::WrongState(b) => return Err(wrong_state(&b, state.now())),
        Outcome::HoldLost { tickets, .. } => return Err(Problem::tickets_unavailable(&tickets)),
        Outcome::IdempotencyMismatch => return Err(idempotency_mismatch()),
        Outcome::NotYours => return Err(not_yours(id)),
        Outcome::NoSuchBooking => return Err(no_booking(id)),
        other => return Err(unexpected("start payment", &other)),
    };
    let Some(card) = card else {
        tracing::info!(booking = %id, payment = %intent.id, "payment started");
        return ok(&state, group, &pending, StatusCode::ACCEPTED, Some(intent.checkout_url)).await;
    };
    match state.payments.confirm(&intent.id, &card).await {
        Ok(intent) if intent.succeeded() => {
            state.metrics.count_payment(PaymentOutcome::Charged);
            settled(&state, group, captured(&state, group, id, &intent.id, None).await?).await
        }
        Ok(_) => Err(Problem::unavailable("the payment provider did not settle the payment; ask again")),
        Err(ProviderError::Declined(reason)) => {
            state.metrics.count_payment(PaymentOutcome::Declined);
            tracing::info!(booking = %id, user, %reason, "payment declined");
            let failed =
                Command::PaymentFailed { booking: id, payment: intent.id, reason: reason.clone(), event: None };
            state.write(group, failed).await?;
            Err(Problem::payment_declined(reason))
        }
        // Confirmed before (a retry): what the provider has is what counts.
        Err(ProviderError::Refused(_)) => {
            let intent = state.payments.intent(&intent.id).await.map_err(provider_problem)?;
            if !intent.succeeded() {
                return Err(Problem::conflict(
                    "payment-state",
                    "Payment not possible",
                    "the payment cannot be confirmed",
                ));
            }
            settled(&state, group, captured(&state, group, id, &intent.id, None).await?).await
        }
        Err(error) => Err(provider_problem(error)),
    }
}

fn provider_problem(error: ProviderError) -> Problem {
    match error {
        ProviderError::Declined(reason) => Problem::payment_declined(reason),
        ProviderError::Refused(reason) => Problem::conflict("payment-refused", "Payment refused", reason),
        ProviderError::Unavailable(reason) => Problem::unavailable(reason),
    }
}

/// The answer for a settled payment: the confirmed booking, or 409 with the money refunded.
async fn settled<C: Cluster>(state: &Shared<C>, group: GroupId, settled: Settled) -> Result<Response, Problem> {
    match settled {
        Settled::Confirmed(booking) => ok(state, group, &booking, StatusCode::OK, None).await,
        Settled::Refunded { tickets, .. } if !tickets.is_empty() => {
            Err(Problem::tickets_unavailable(&tickets).with("refunded", true))
        }
        Settled::Refunded { .. } => Err(Problem::conflict(
            "booking-state",
            "Booking no longer payable",
            "the booking could not be paid for; the payment was refunded",
        )
        .with("refunded", true)),
    }
}

async fn ok<C: Cluster>(
    state: &Shared<C>,
    group: GroupId,
    booking: &Booking,
    status: StatusCode,
    checkout_url: Option<String>,
) -> Result<Response, Problem> {
    let mut view = view(state, group, booking).await?;
    view.checkout_url = checkout_url;
    Ok((status, Json(view)).into_response())
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
        BookingStatus::PaymentPending => "paymentPending",
        BookingStatus::Confirmed => "confirmed",
        BookingStatus::Released => "released",
        BookingStatus::Expired => "expired",
        BookingStatus::Refunded => "refunded",
    }
}

/// The refusal of a hold past the per-fan limit, in words that are true: past the bookings apply
/// looks at, it counts the fan as holding everything, and the count means nothing.
fn fan_limit(held: u32, max: u32) -> Problem {
    let detail = if held == u32::MAX {
        format!(
            "this account has made over {} bookings for this event (released and expired ones \
             included), and a fan may hold or own at most {max} of its tickets: no more holds",
            model::FAN_BOOKINGS_PER_EVENT_MAX
        )
    } else {
        format!("a fan may hold or own {max} tickets of this event and you have {held}")
    };
    Problem::conflict("fan-limit", "Ticket limit reached", detail).with("ticketsPerFanMax", max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::AdmissionClaims;
    use model::room::{Place, CLASS_ONSALE};

    fn booking(state: BookingState) -> Booking {
        let id = BookingId { event: 3, nonce: 0xab };
        Booking {
            id,
            event: 3,
            user: 1,
            tickets: vec![0],
            total_cents: 5,
            held_until: 5,
            hold_ttl_ms: 5,
            state,
            created_at: 0,
            last_payment_error: None,
        }
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
    fn a_fan_past_the_bookings_apply_counts_is_told_so_not_given_a_count() {
        let over = fan_limit(u32::MAX, 8);
        assert_eq!(over.status(), StatusCode::CONFLICT);
        assert!(over.detail().contains("over 1000 bookings for this event"), "{}", over.detail());
        assert!(!over.detail().contains(&u32::MAX.to_string()));
        assert_eq!(over.extension("ticketsPerFanMax"), Some(&8.into()));
        assert_eq!(fan_limit(6, 8).detail(), "a fan may hold or own 8 tickets of this event and you have 6");
    }

    #[test]
    fn status_names_match_the_json_of_the_status() {
        for status in [
            BookingStatus::Held,
            BookingStatus::PaymentPending,
            BookingStatus::Confirmed,
            BookingStatus::Released,
            BookingStatus::Expired,
            BookingStatus::Refunded,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status_name(status));
        }
    }

    const NOW: Millis = 1_800_000_000_000;

    fn signer() -> AdmissionSigner {
        AdmissionSigner::new(b"secret")
    }

    fn claims() -> AdmissionClaims {
        let place = Place { class: CLASS_ONSALE, primary: NOW, node: 1, seq: 3 };
        AdmissionClaims { event: 42, user: 7, place, expires_at: NOW + 60_000 }
    }

    fn headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ADMISSION_TOKEN_HEADER, token.parse().unwrap());
        headers
    }

    fn refusal(headers: &HeaderMap, event: EventId, user: UserId, now: Millis) -> Problem {
        let problem = admission_of(&signer(), headers, event, user, now).unwrap_err();
        assert_eq!(problem.status(), StatusCode::FORBIDDEN);
        assert_eq!(problem.slug(), "waiting-room");
        let join = format!("/events/{event}/waiting-room");
        assert_eq!(problem.extension("waitingRoom"), Some(&serde_json::json!({"event": event, "join": join})));
        problem
    }

    #[test]
    fn a_valid_token_grants_its_place() {
        let token = signer().sign(&claims());
        let admission = admission_of(&signer(), &headers(&token), 42, 7, NOW).unwrap();
        assert_eq!(admission, Admission { place: claims().place, user: 7, expires_at: NOW + 60_000 });
    }

    #[test]
    fn no_token_sends_the_fan_to_the_room() {
        let problem = refusal(&HeaderMap::new(), 42, 7, NOW);
        assert_eq!(problem.detail(), "event 42 sells through its waiting room: join it for an admission token");
    }

    #[test]
    fn each_wrong_token_is_told_apart() {
        let token = signer().sign(&claims());
        let expired = refusal(&headers(&token), 42, 7, NOW + 60_000);
        assert_eq!(expired.detail(), "the admission token has expired: join the waiting room again");
        assert_eq!(refusal(&headers(&token), 43, 7, NOW).detail(), "the admission token is for another event");
        assert_eq!(refusal(&headers(&token), 42, 8, NOW).detail(), "the admission token is another fan's");
        let forged = AdmissionSigner::new(b"other").sign(&claims());
        assert_eq!(refusal(&headers(&forged), 42, 7, NOW).detail(), "the admission token is not valid");
        assert_eq!(refusal(&headers("junk"), 42, 7, NOW).detail(), "the admission token is not valid");
    }

    #[test]
    fn malformed_booking_ids_are_bad_requests() {
        assert_eq!(parse_booking_id("nope").unwrap_err().status(), StatusCode::BAD_REQUEST);
        assert_eq!(parse_booking_id("3-00000000000000ab").unwrap(), BookingId { event: 3, nonce: 0xab });
    }
}

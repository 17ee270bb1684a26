//! `POST /webhooks/payments`: the payment provider tells the cluster what became of a payment.
//!
//! The signature is checked first (a forged or stale one is refused with 400 and logged); then
//! the event is applied once, however often the provider sends it and in whatever order: every
//! command it becomes is idempotent and carries the provider's event id. A success for a booking
//! its payment has confirmed already is answered after a read, without a write.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use model::{BookingId, Command};

use crate::cluster::Cluster;
use crate::payment::WebhookEvent;
use crate::problem::Problem;
use crate::settle::{captured, confirmed_by};
use crate::state::AppState;
use crate::webhook::{verify, SIGNATURE_HEADER};

#[utoipa::path(post, path = "/webhooks/payments", tag = "payments",
    params(("Sandbox-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`")),
    request_body(content = Object, content_type = "application/json", description = "The provider's event"),
    responses((status = 200, description = "Applied (or nothing to do)")))]
pub async fn payment_event<C: Cluster>(
    State(state): State<AppState<C>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let secret = &state.config.payment_webhook_secret;
    if secret.is_empty() {
        return Err(Problem::not_found("payment webhooks are not configured on this node"));
    }
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let now_s = (state.now() / 1000) as i64;
    if let Err(error) = verify(secret, signature, &body, now_s, state.config.webhook_tolerance_s) {
        tracing::warn!(%error, bytes = body.len(), "webhook refused");
        return Err(Problem::bad_request(format!("webhook refused: {error}")));
    }
    let event: WebhookEvent =
        serde_json::from_slice(&body).map_err(|e| Problem::bad_request(format!("the event is not readable: {e}")))?;
    tracing::info!(event = %event.id, kind = %event.kind, "webhook received");
    match event.kind.as_str() {
        "payment_intent.succeeded" => succeeded(&state, &event).await,
        "payment_intent.payment_failed" => failed(&state, &event).await,
        "charge.refunded" => refunded(&state, &event).await,
        // Events of kinds the cluster does not act on are acknowledged, or they come back forever.
        _ => Ok(StatusCode::OK),
    }
}

fn booking_of(event: &WebhookEvent) -> Result<(BookingId, String), Problem> {
    let booking = event.booking().ok_or_else(|| Problem::bad_request("the event names no booking"))?;
    let payment = event.payment_id().ok_or_else(|| Problem::bad_request("the event names no payment"))?;
    Ok((booking, payment.to_string()))
}

async fn succeeded<C: Cluster>(state: &AppState<C>, event: &WebhookEvent) -> Result<StatusCode, Problem> {
    let (booking, payment) = booking_of(event)?;
    let Ok(group) = state.group_of_booking(booking).await else {
        tracing::error!(%booking, payment, "a payment for an unknown event: refunding");
        state.payments.refund(&payment).await.map_err(|e| Problem::unavailable(e.to_string()))?;
        return Ok(StatusCode::OK);
    };
    // Most success webhooks come after the fan's own request confirmed the booking (paid with a
    // card, or back from the checkout page), and some come twice: a read shows that, and spares
    // the group a log entry on every replica. Anything else goes to the state machine.
    if confirmed_by(state, group, booking, &payment).await? {
        state.metrics.count_success_webhook(false);
        return Ok(StatusCode::OK);
    }
    state.metrics.count_success_webhook(true);
    captured(state, group, booking, &payment, Some(event.id.clone())).await?;
    Ok(StatusCode::OK)
}

async fn failed<C: Cluster>(state: &AppState<C>, event: &WebhookEvent) -> Result<StatusCode, Problem> {
    let (booking, payment) = booking_of(event)?;
    let reason =
        event.intent().and_then(|i| i.last_payment_error).map(|e| e.message).unwrap_or_else(|| "declined".into());
    let group = state.group_of_booking(booking).await?;
    let command = Command::PaymentFailed { booking, payment, reason, event: Some(event.id.clone()) };
    state.write(group, command).await?;
    Ok(StatusCode::OK)
}

async fn refunded<C: Cluster>(state: &AppState<C>, event: &WebhookEvent) -> Result<StatusCode, Problem> {
    let payment = event.payment_id().ok_or_else(|| Problem::bad_request("the event names no payment"))?.to_string();
    // A refund names its payment; the payment names the booking.
    let intent = state.payments.intent(&payment).await.map_err(|e| Problem::unavailable(e.to_string()))?;
    let booking: BookingId =
        intent.booking_id.parse().map_err(|_| Problem::bad_request("the payment names no booking"))?;
    let group = state.group_of_booking(booking).await?;
    state.write(group, Command::PaymentRefunded { booking, payment, event: Some(event.id.clone()) }).await?;
    Ok(StatusCode::OK)
}

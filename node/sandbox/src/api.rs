//! The API the gateways call: `/v1/…`, JSON in camelCase, behind `Authorization: Bearer <key>`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::ApiError;
use crate::extract::{Id, IdempotencyKey, JsonBody, Params};
use crate::objects::{Confirm, CreateIntent, CreateRefund, Intent, Refund};
use crate::store::EventRecord;

/// The default and the largest page of a listing.
const LIST_DEFAULT: usize = 100;
const LIST_MAX: usize = 1_000_000;

pub fn routes(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/v1/payment_intents", post(create_intent).get(list_intents))
        .route("/v1/payment_intents/{id}", get(show_intent))
        .route("/v1/payment_intents/{id}/confirm", post(confirm))
        .route("/v1/refunds", post(create_refund).get(list_refunds))
        .route("/v1/events", get(list_events))
        .route_layer(middleware::from_fn_with_state(app, authenticate))
}

async fn authenticate(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let given = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let token = given.and_then(|value| value.strip_prefix("Bearer ")).map(str::trim);
    match token {
        Some(token) if same(token.as_bytes(), app.config.api_key.as_bytes()) => next.run(request).await,
        _ => ApiError::unauthorized().into_response(),
    }
}

/// Compares in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

async fn create_intent(
    State(app): State<Arc<App>>,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(request): JsonBody<CreateIntent>,
) -> Result<Json<Intent>, ApiError> {
    app.create_intent(request, key).map(Json)
}

async fn show_intent(State(app): State<Arc<App>>, Id(id): Id) -> Result<Json<Intent>, ApiError> {
    app.store().intent(&id).map(Json)
}

async fn confirm(
    State(app): State<Arc<App>>,
    Id(id): Id,
    JsonBody(request): JsonBody<Confirm>,
) -> Result<Json<Intent>, ApiError> {
    app.confirm(&id, &request.card_number).map(Json)
}

async fn create_refund(
    State(app): State<Arc<App>>,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(request): JsonBody<CreateRefund>,
) -> Result<Json<Refund>, ApiError> {
    app.refund(request, key).map(Json)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundsQuery {
    payment_intent: Option<String>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

/// A page of a listing, newest first.
#[derive(Serialize)]
struct List<T> {
    object: &'static str,
    data: Vec<T>,
}

impl<T> List<T> {
    fn of(data: Vec<T>) -> Json<Self> {
        Json(List { object: "list", data })
    }
}

fn page_size(limit: Option<usize>) -> usize {
    limit.unwrap_or(LIST_DEFAULT).clamp(1, LIST_MAX)
}

async fn list_refunds(State(app): State<Arc<App>>, Params(query): Params<RefundsQuery>) -> Json<List<Refund>> {
    List::of(app.store().refunds(query.payment_intent.as_deref(), page_size(query.limit)))
}

async fn list_intents(State(app): State<Arc<App>>, Params(query): Params<EventsQuery>) -> Json<List<Intent>> {
    List::of(app.store().recent_intents(page_size(query.limit)))
}

async fn list_events(State(app): State<Arc<App>>, Params(query): Params<EventsQuery>) -> Json<List<EventRecord>> {
    List::of(app.store().recent_events(page_size(query.limit)))
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn keys_compare_by_content() {
        assert!(same(b"sk_test", b"sk_test"));
        assert!(!same(b"sk_test", b"sk_tesT"));
        assert!(!same(b"sk_test", b"sk_test2"));
        assert!(!same(b"", b"x"));
    }
}

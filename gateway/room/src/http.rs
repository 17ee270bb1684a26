//! The HTTP fallback for clients without WebTransport: `hello` and `join` as JSON requests, and
//! the wait as server-sent events. Each request opens its own session with the logic and closes it
//! when answered (or, for the event stream, when the client goes); the session of an open event
//! stream keeps its fan's place, as a QUIC stream's does.
//!
//! Refusals are RFC 9457 problems whose `type` ends in `/problems/waiting-room/<code>`, with the
//! wire's error code also as the `code` member. Bad input (JSON, unknown fields, paths, a body over
//! [`BODY_BYTES_MAX`]) is always a 4xx.
//!
//! The fan's address comes from axum's `ConnectInfo<SocketAddr>` when the server provides it
//! (`into_make_service_with_connect_info`); without it, sessions see `0.0.0.0`.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use futures::Stream;
use gateway::Problem;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::native::OpenSession;
use crate::session::{OutboxReceiver, Sessions, Via};
use crate::wire::{code, ClientMsg, ServerMsg};

/// Largest request body accepted.
pub const BODY_BYTES_MAX: usize = 4 * 1024;
/// Longest wait for the logic's answer to a message before a 503.
pub const ANSWER_TIMEOUT_MS: u64 = 10_000;

/// One event of the wait as it travels (the schema of each event of a `text/event-stream`, as
/// OpenAPI 3.2 reads it): named by the message's `type`, its data the message.
#[derive(ToSchema)]
#[allow(dead_code)]
struct RoomStreamEvent {
    /// The message's `type`: `position`, `admitted`, `parked`, `lapsed`, `redirect`, ...
    event: String,
    /// JSON: a `ServerMsg`.
    #[schema(content_media_type = "application/json")]
    data: String,
}

#[derive(OpenApi)]
#[openapi(paths(hello, join, stream), components(schemas(ServerMsg)))]
struct ApiDoc;

/// The OpenAPI description of [`routes`], for the gateway's document.
pub fn api() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The routes, to merge into the node's gateway router.
pub fn routes<S: Sessions>(sessions: Arc<S>) -> Router {
    Router::new()
        .route("/events/{event_id}/waiting-room/hello", post(hello::<S>))
        .route("/events/{event_id}/waiting-room/join", post(join::<S>))
        .route("/events/{event_id}/waiting-room/stream", get(stream::<S>))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(sessions)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct HelloBody {
    /// The ticket of an earlier join: a resume.
    #[serde(default)]
    ticket: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    challenge: String,
    answer: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    ticket: Option<String>,
    /// The fan token, for `EventSource`, which cannot set headers.
    token: Option<String>,
}

/// The fan's address, if the server recorded it.
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// The first step: the fan's token checked, a proof-of-work challenge (or, with the ticket of an
/// earlier join, the fan's position).
#[utoipa::path(post, path = "/events/{eventId}/waiting-room/hello", tag = "waiting room", params(("eventId" = u64, Path, description = "The event")),
    request_body = HelloBody, security(("fan" = [])),
    responses((status = 200, description = "A `challenge`, or a `position` on a resume", body = ServerMsg)))]
async fn hello<S: Sessions>(
    State(sessions): State<Arc<S>>,
    event: Result<Path<u64>, PathRejection>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let Path(event) = event?;
    let token = bearer(&headers).ok_or_else(no_token)?;
    let body: HelloBody = json_body(body)?;
    let (session, mut outbox) = OpenSession::open(sessions, peer_ip(peer), Via::Http);
    session.message(ClientMsg::Hello { event, token, ticket: body.ticket }).await;
    answer(next_answer(&mut outbox).await?)
}

/// A join: the answer to the challenge, for a signed ticket that fixes the fan's place.
#[utoipa::path(post, path = "/events/{eventId}/waiting-room/join", tag = "waiting room", params(("eventId" = u64, Path, description = "The event")),
    request_body = JoinBody, security(("fan" = [])),
    responses((status = 200, description = "A `ticket` (or what the room says instead)", body = ServerMsg)))]
async fn join<S: Sessions>(
    State(sessions): State<Arc<S>>,
    event: Result<Path<u64>, PathRejection>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let Path(event) = event?;
    let token = bearer(&headers).ok_or_else(no_token)?;
    let body: JoinBody = json_body(body)?;
    let (session, mut outbox) = OpenSession::open(sessions, peer_ip(peer), Via::Http);
    session.message(ClientMsg::Hello { event, token, ticket: None }).await;
    match next_answer(&mut outbox).await? {
        ServerMsg::Challenge { .. } => {}
        other => return answer(other),
    }
    session.message(ClientMsg::Join { challenge: body.challenge, answer: body.answer }).await;
    answer(next_answer(&mut outbox).await?)
}

/// The wait, as server-sent events: the fan's `position` as it moves, then `admitted`.
#[utoipa::path(get, path = "/events/{eventId}/waiting-room/stream", tag = "waiting room", params(("eventId" = u64, Path, description = "The event"), StreamQuery),
    security(("fan" = [])),
    responses((status = 200, content_type = "text/event-stream", body = RoomStreamEvent,
        description = "Server-sent events, each a room message named by its `type`")))]
async fn stream<S: Sessions>(
    State(sessions): State<Arc<S>>,
    event: Result<Path<u64>, PathRejection>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Path(event) = event?;
    let Query(query) = query?;
    let token = bearer(&headers).or(query.token).ok_or_else(no_token)?;
    let (session, mut outbox) = OpenSession::open(sessions, peer_ip(peer), Via::Http);
    session.message(ClientMsg::Hello { event, token, ticket: query.ticket }).await;
    let first = next_answer(&mut outbox).await?;
    if let ServerMsg::Error { code, detail } = first {
        return Err(refused(&code, detail));
    }
    let live = Live { _session: session, outbox, first: Some(first) };
    Ok(Sse::new(events(live)).keep_alive(KeepAlive::default()).into_response())
}

/// An open event stream: the session, and what it still has to send.
struct Live<S: Sessions> {
    /// Keeps the fan's session (and so its place) open while the stream is; closes it on drop.
    _session: OpenSession<S>,
    outbox: OutboxReceiver,
    /// The answer to the hello, already read to choose between a stream and a problem.
    first: Option<ServerMsg>,
}

/// Every message of the session as an event; ends when the logic drops the session's sender.
/// Dropping the stream (the client went) closes the session.
fn events<S: Sessions>(live: Live<S>) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    futures::stream::unfold(live, |mut live| async move {
        if let Some(first) = live.first.take() {
            return Some((Ok(event(&first)), live));
        }
        let msg = live.outbox.recv().await?;
        Some((Ok(event(&msg)), live))
    })
}

/// A message as an event: `event: <type>`, `data: <the message's JSON>`.
fn event(msg: &ServerMsg) -> Event {
    let value = serde_json::to_value(msg).expect("room messages serialize");
    let kind = value["type"].as_str().unwrap_or("message").to_owned();
    Event::default().event(kind).data(value.to_string())
}

/// The logic's next message, within [`ANSWER_TIMEOUT_MS`].
async fn next_answer(outbox: &mut OutboxReceiver) -> Result<ServerMsg, Problem> {
    match tokio::time::timeout(Duration::from_millis(ANSWER_TIMEOUT_MS), outbox.recv()).await {
        Ok(Some(msg)) => Ok(*msg),
        Ok(None) => Err(refused(code::BUSY, "the waiting room ended the session without answering".into())),
        Err(_) => Err(refused(code::BUSY, format!("the waiting room did not answer within {ANSWER_TIMEOUT_MS} ms"))),
    }
}

/// A message as the answer to a request: an error is a problem, anything else is 200 JSON.
fn answer(msg: ServerMsg) -> Result<Response, Problem> {
    match msg {
        ServerMsg::Error { code, detail } => Err(refused(&code, detail)),
        other => Ok(Json(other).into_response()),
    }
}

/// The problem for a wire error code.
pub fn refused(code: &str, detail: String) -> Problem {
    let (status, slug, title) = match code {
        code::BAD_MESSAGE => (StatusCode::BAD_REQUEST, "waiting-room/bad_message", "Bad message"),
        code::BAD_ANSWER => (StatusCode::BAD_REQUEST, "waiting-room/bad_answer", "Wrong proof-of-work answer"),
        code::BAD_CHALLENGE => (StatusCode::BAD_REQUEST, "waiting-room/bad_challenge", "Bad challenge"),
        code::BAD_TOKEN => (StatusCode::UNAUTHORIZED, "waiting-room/bad_token", "Bad fan token"),
        code::BAD_TICKET => (StatusCode::FORBIDDEN, "waiting-room/bad_ticket", "Bad ticket"),
        code::WRONG_EVENT => (StatusCode::FORBIDDEN, "waiting-room/wrong_event", "Ticket for another event"),
        code::WRONG_FAN => (StatusCode::FORBIDDEN, "waiting-room/wrong_fan", "Ticket of another fan"),
        code::NO_ROOM => (StatusCode::NOT_FOUND, "waiting-room/no_room", "No waiting room"),
        code::RATE_LIMITED => (StatusCode::TOO_MANY_REQUESTS, "waiting-room/rate_limited", "Too many requests"),
        code::BUSY => (StatusCode::SERVICE_UNAVAILABLE, "waiting-room/busy", "Waiting room busy"),
        code::OUT_OF_ORDER => (StatusCode::CONFLICT, "waiting-room/out_of_order", "Message out of order"),
        _ => (StatusCode::BAD_REQUEST, "waiting-room/refused", "Refused"),
    };
    Problem::new(status, slug, title, detail).with("code", code)
}

fn no_token() -> Problem {
    refused(code::BAD_TOKEN, "send the fan token as `Authorization: Bearer <token>`".into())
}

/// The bearer token of the `Authorization` header.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// A JSON body, unknown fields refused; every failure is a 4xx.
fn json_body<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Problem::payload_too_large(format!("the body is over {BODY_BYTES_MAX} bytes")),
        _ => Problem::bad_request(rejection.body_text()),
    })?;
    serde_json::from_slice(&body).map_err(|error| refused(code::BAD_MESSAGE, format!("bad json body: {error}")))
}

fn peer_ip(peer: Peer) -> IpAddr {
    peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(ConnectInfo(addr))| addr.ip().to_canonical())
}

#[cfg(test)]
mod api_tests {
    use gateway::openapi::{routes_in_document, routes_in_source};

    #[test]
    fn every_fallback_route_is_documented_and_every_documented_one_served() {
        let mut served = routes_in_source(include_str!("http.rs"));
        served.extend(routes_in_source(include_str!("page.rs")));
        assert_eq!(served.len(), 4, "{served:?}");
        let mut api = super::api();
        api.merge(crate::page::api());
        assert_eq!(routes_in_document(&api), served);
    }

    #[test]
    fn messages_are_described_as_they_are_sent() {
        let json = serde_json::to_value(super::api()).unwrap();
        let variants = json["components"]["schemas"]["ServerMsg"]["oneOf"].as_array().unwrap();
        let fields: Vec<&String> = variants.iter().flat_map(|v| v["properties"].as_object().unwrap().keys()).collect();
        for name in ["waitSeconds", "admissionToken", "comeBackAt", "onSaleAt"] {
            assert!(fields.iter().any(|f| *f == name), "{name} in {fields:?}");
        }
        assert!(fields.iter().all(|f| !f.contains('_')), "fields are camelCase, as sent: {fields:?}");
    }
}

//! RFC 9457 problem details: the one error type of every handler and extractor.
//!
//! A problem is a status, a slug (the last segment of its `type` URI), a fixed title per slug, a
//! detail for this occurrence and optional extension members (e.g. `unavailableTicketIds`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use model::{ClusterError, EventId, TicketId};
use serde::Serialize;
use serde_json::{Map, Value};

/// Where problem types live; a slug is appended.
pub const TYPE_BASE: &str = "https://boxoffice.dev/problems/";

/// The media type of every error body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem as its body reads, for the OpenAPI document: the body of every 4xx and 5xx answer.
/// Some problems add members of their own (e.g. `unavailableTicketIds`, `errors`, `waitingRoom`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)]
pub struct ProblemBody {
    /// `https://boxoffice.dev/problems/<slug>`.
    #[serde(rename = "type")]
    kind: String,
    /// Fixed per type.
    title: String,
    /// The HTTP status again.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong this time.
    detail: String,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{} {slug}: {detail}", status.as_u16())]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    /// Seconds for the `Retry-After` header of a 429 or 503 (a 503 says 1 without it).
    retry_after_s: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Problem { status, slug, title, detail: detail.into(), extensions: Map::new(), retry_after_s: None }
    }

    /// Adds an extension member. The standard members always win over an extension of the same
    /// name, so a caller cannot make a problem lie about its status.
    pub fn with(mut self, name: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.extensions.insert(name.to_owned(), value);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn slug(&self) -> &'static str {
        self.slug
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub fn extension(&self, name: &str) -> Option<&Value> {
        self.extensions.get(name)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-request", "Malformed request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed", detail)
    }

    pub fn conflict(slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, slug, title, detail)
    }

    pub fn tickets_unavailable(tickets: &[TicketId]) -> Self {
        Self::conflict(
            "tickets-unavailable",
            "Tickets unavailable",
            format!("{} of the tickets are held or sold by someone else", tickets.len()),
        )
        .with("unavailableTicketIds", tickets)
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", "Request body too large", detail)
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type", detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request", "Invalid request", detail)
    }

    pub fn unknown_tickets(tickets: &[TicketId]) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-tickets",
            "Unknown tickets",
            format!("{} of the ticket ids do not exist for this event", tickets.len()),
        )
        .with("unknownTicketIds", tickets)
    }

    /// A hold on an event that sells through its waiting room, without a valid admission: the
    /// `waitingRoom` member says where to join.
    pub fn waiting_room(event: EventId, detail: impl Into<String>) -> Self {
        let join = format!("/events/{event}/waiting-room");
        Self::new(StatusCode::FORBIDDEN, "waiting-room", "Join the waiting room", detail)
            .with("waitingRoom", serde_json::json!({"event": event, "join": join}))
    }

    pub fn payment_declined(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYMENT_REQUIRED, "payment-declined", "Payment declined", reason)
    }

    /// The cluster could not answer now; the client should retry in a moment.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", detail)
    }

    /// A client over one of its rate limits: it may try again after `wait` (rounded up to whole
    /// seconds in `Retry-After`, so that a client that waits as told is let through).
    pub fn too_many_requests(detail: impl Into<String>, wait: std::time::Duration) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests", detail).retry_after(wait)
    }

    /// Sets `Retry-After` to `wait`, rounded up to whole seconds (at least 1).
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    /// A fault of the server, never of the client. The detail stays generic (the cause goes to
    /// the log, where the caller put it) so that internals do not leak.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal server error",
            "the server failed to answer; the cause is logged",
        )
    }

    fn body(&self) -> Map<String, Value> {
        let mut body = self.extensions.clone();
        body.insert("type".into(), Value::String(format!("{TYPE_BASE}{}", self.slug)));
        body.insert("title".into(), Value::String(self.title.into()));
        body.insert("status".into(), Value::from(self.status.as_u16()));
        body.insert("detail".into(), Value::String(self.detail.clone()));
        body
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is never read, so the connection cannot carry another
            // request: say so, or a client may send its next request on it as it closes.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<ClusterError> for Problem {
    fn from(error: ClusterError) -> Self {
        match error {
            ClusterError::Unavailable { group, reason } => {
                tracing::warn!(group, %reason, "group unavailable");
                Problem::unavailable(format!("group {group} has no reachable leader right now"))
            }
            ClusterError::ShuttingDown => Problem::unavailable("this node is shutting down"),
            ClusterError::NoSuchGroup(group) => {
                tracing::error!(group, "asked a group this cluster does not have");
                Problem::internal()
            }
        }
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::payload_too_large("the request body is larger than this endpoint accepts")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Problem::unsupported_media_type("send the body as JSON with `Content-Type: application/json`")
            }
            StatusCode::UNPROCESSABLE_ENTITY => Problem::invalid(rejection.body_text()),
            _ => Problem::bad_request(rejection.body_text()),
        }
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        if rejection.status().is_server_error() {
            tracing::error!(error = %rejection.body_text(), "path parameters missing");
            return Problem::internal();
        }
        Problem::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::bad_request(rejection.body_text())
    }
}

/// The answer to a path no route matches.
pub async fn no_route(method: Method, uri: Uri) -> Problem {
    Problem::not_found(format!("no route for {method} {}", uri.path()))
}

/// The answer to a route that exists but not for this method (axum adds the `Allow` header).
pub async fn wrong_method(method: Method, uri: Uri) -> Problem {
    Problem::method_not_allowed(format!("{} does not accept {method}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn render(problem: Problem) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = problem.into_response();
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_problem_renders_as_problem_json() {
        let (status, headers, body) = render(Problem::not_found("no event 7")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(body["type"], "https://boxoffice.dev/problems/not-found");
        assert_eq!(body["title"], "Not found");
        assert_eq!(body["status"], 404);
        assert_eq!(body["detail"], "no event 7");
    }

    #[tokio::test]
    async fn extensions_are_members_but_cannot_override_the_standard_ones() {
        let problem = Problem::tickets_unavailable(&[3, 4]).with("status", 200);
        let (status, _, body) = render(problem).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["status"], 409);
        assert_eq!(body["unavailableTicketIds"], serde_json::json!([3, 4]));
    }

    #[tokio::test]
    async fn an_unavailable_cluster_asks_to_retry_in_a_second() {
        let error = ClusterError::Unavailable { group: 2, reason: "election".into() };
        let (status, headers, body) = render(Problem::from(error)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(body["type"], "https://boxoffice.dev/problems/unavailable");
    }

    #[tokio::test]
    async fn a_rate_limit_says_when_to_retry_in_whole_seconds() {
        let wait = std::time::Duration::from_millis(2_100);
        let (status, headers, body) = render(Problem::too_many_requests("slow down", wait)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "3", "rounded up, never down");
        assert_eq!(headers[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(body["type"], "https://boxoffice.dev/problems/rate-limited");
        let soon = Problem::too_many_requests("now", std::time::Duration::ZERO);
        assert_eq!(render(soon).await.1[header::RETRY_AFTER], "1", "never zero");
    }

    #[tokio::test]
    async fn unauthorized_names_the_bearer_scheme() {
        let (_, headers, _) = render(Problem::unauthorized("no token")).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[tokio::test]
    async fn a_body_too_large_closes_its_connection() {
        let (status, headers, _) = render(Problem::payload_too_large("too big")).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers[header::CONNECTION], "close");
        let (_, headers, _) = render(Problem::not_found("no event 7")).await;
        assert!(headers.get(header::CONNECTION).is_none(), "other problems keep the connection");
    }

    #[tokio::test]
    async fn a_waiting_room_problem_says_where_to_join() {
        let (status, _, body) = render(Problem::waiting_room(42, "join it")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["type"], "https://boxoffice.dev/problems/waiting-room");
        assert_eq!(body["title"], "Join the waiting room");
        assert_eq!(body["waitingRoom"], serde_json::json!({"event": 42, "join": "/events/42/waiting-room"}));
    }

    #[tokio::test]
    async fn internal_problems_do_not_leak_their_cause() {
        let (status, _, body) = render(Problem::from(ClusterError::NoSuchGroup(9))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body["detail"].as_str().unwrap().contains('9'));
    }
}

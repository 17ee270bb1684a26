//! The waiting room's web page, `GET /waiting-room/{eventId}`: it joins over WebTransport where
//! the browser has it (pinning the node's certificate by the hash the gateway lists) and over the
//! HTTP fallback where it does not, shows the position and the wait, and keeps the admission
//! token for the shop page.

use std::sync::OnceLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("../web/room.html");

#[derive(utoipa::OpenApi)]
#[openapi(paths(page))]
struct ApiDoc;

/// The OpenAPI description of [`routes`], for the gateway's document.
pub fn api() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

pub fn routes() -> Router {
    Router::new().route("/waiting-room/{eventId}", get(page))
}

#[utoipa::path(get, path = "/waiting-room/{eventId}", tag = "waiting room",
    params(("eventId" = u64, Path, description = "The event")),
    responses((status = 200, description = "The waiting room's web page", content_type = "text/html", body = String)))]
async fn page() -> impl IntoResponse {
    // Its inline script and style run by their hash; nothing injected does.
    static POLICY: OnceLock<String> = OnceLock::new();
    let policy = POLICY.get_or_init(|| gateway::headers::page_policy(PAGE));
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
            (CONTENT_SECURITY_POLICY, policy.as_str()),
        ],
        PAGE,
    )
}

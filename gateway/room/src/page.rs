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

pub fn routes() -> Router {
    Router::new().route("/waiting-room/{eventId}", get(page))
}

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

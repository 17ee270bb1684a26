//! The web page, its scripts and styles, the health check and the metrics.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use crate::auth::Admin;
use crate::cache::{etag_of, tagged_answer};
use crate::cluster::Cluster;
use crate::extract::PathParams;
use crate::headers;
use crate::metrics;
use crate::problem::Problem;
use crate::state::AppState;

/// The fans' single page (written alongside, in `gateway/web/`): the markup; its styles and ES
/// modules are in `gateway/web/app/`, served as they are (no build step).
const INDEX_HTML: &str = include_str!("../../web/index.html");

/// The page's files: name, content type, text.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("../../web/app/app.css")),
    ("main.js", JS, include_str!("../../web/app/main.js")),
    ("util.js", JS, include_str!("../../web/app/util.js")),
    ("api.js", JS, include_str!("../../web/app/api.js")),
    ("router.js", JS, include_str!("../../web/app/router.js")),
    ("events.js", JS, include_str!("../../web/app/events.js")),
    ("seatmap.js", JS, include_str!("../../web/app/seatmap.js")),
    ("event.js", JS, include_str!("../../web/app/event.js")),
    ("auth.js", JS, include_str!("../../web/app/auth.js")),
    ("booking.js", JS, include_str!("../../web/app/booking.js")),
];
const JS: &str = "text/javascript; charset=utf-8";

#[utoipa::path(get, path = "/", tag = "web", responses((status = 200, description = "The web page", content_type = "text/html", body = String)))]
pub async fn index() -> impl IntoResponse {
    static POLICY: OnceLock<String> = OnceLock::new();
    let policy = POLICY.get_or_init(|| headers::page_policy(INDEX_HTML));
    ([(header::CONTENT_SECURITY_POLICY, policy.as_str())], Html(INDEX_HTML))
}

/// Each file with its entity tag, computed once.
fn assets() -> &'static [(&'static str, &'static str, &'static str, String)] {
    static TAGGED: OnceLock<Vec<(&str, &str, &str, String)>> = OnceLock::new();
    TAGGED.get_or_init(|| {
        ASSETS.iter().map(|(name, kind, text)| (*name, *kind, *text, etag_of(text.as_bytes()))).collect()
    })
}

/// `GET /app/{file}`: one of the page's scripts or its stylesheet. Revalidated on every load
/// (`no-cache` with an entity tag: a 304 costs a few bytes) so that a new release is picked up.
#[utoipa::path(get, path = "/app/{file}", tag = "web", params(("file" = String, Path, description = "A script or stylesheet of the page")),
    responses((status = 200, description = "The file", content((String = "text/javascript"), (String = "text/css"))),
        (status = 304, description = "Unchanged since the entity tag sent")))]
pub async fn asset(PathParams(file): PathParams<String>, headers: HeaderMap) -> Result<Response, Problem> {
    let Some((_, kind, text, etag)) = assets().iter().find(|(name, ..)| *name == file) else {
        return Err(Problem::not_found(format!("the page has no file {file:?}")));
    };
    Ok(tagged_answer(&headers, etag, "no-cache", kind, *text))
}

/// Says the process serves HTTP; it does not ask the cluster (`/admin/cluster` does).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves HTTP", body = Health)))]
pub async fn healthz<C: Cluster>(State(state): State<AppState<C>>) -> Json<Health> {
    Json(Health { status: "ok", node: state.cluster.node_id() })
}

/// The answer of `/healthz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    pub node: model::NodeId,
}

/// Behind the admin token: the counters tell an outsider how the on-sale goes and where the
/// leaders are.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("admin" = [])),
    responses((status = 200, description = "Counters in Prometheus text", content_type = "text/plain", body = String)))]
pub async fn metrics<C: Cluster>(_: Admin, State(state): State<AppState<C>>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    text.push_str(&state.cluster.node_metrics());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text)
}

//! The web page, the health check and the metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::Json;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::metrics;
use crate::state::AppState;

/// The fans' single page (written alongside, in `gateway/web/`).
const INDEX_HTML: &str = include_str!("../../web/index.html");

pub async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

/// Says the process serves HTTP; it does not ask the cluster (`/admin/cluster` does).
pub async fn healthz<C: Cluster>(State(state): State<AppState<C>>) -> Json<Value> {
    Json(json!({"status": "ok", "node": state.cluster.node_id()}))
}

pub async fn metrics<C: Cluster>(State(state): State<AppState<C>>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    text.push_str(&state.cluster.node_metrics());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text)
}

//! The HTTP gateway of Boxoffice: the fans' JSON API, the operators' admin API and the web page,
//! served from every node over the [`Cluster`] trait (the gateway never sees raft or RocksDB).
//!
//! Every answer that is not a success is an RFC 9457 problem (`application/problem+json`),
//! including axum's own rejections, unknown routes and wrong methods: see [`problem`].
//!
//! Layout:
//! - [`config`]: [`GatewayConfig`], read from the node's TOML configuration;
//! - [`cluster`]: the [`Cluster`] trait the node implements;
//! - [`state`]: what handlers share, and the reads every route needs (placement, seat map,
//!   booking) with their caches ([`cache`]);
//! - [`problem`]: the error type of every handler and how it renders;
//! - [`extract`]: axum's extractors wrapped so that their rejections are problems;
//! - [`headers`]: the security headers of every answer and the pages' content security policy;
//! - [`front_door`]: the accept loop: header and request timeouts, caps on connections and
//!   requests in flight, HTTPS;
//! - [`limits`]: rate limits per client address, per fan and per account, and the slots of
//!   password hashing;
//! - [`tokens`]: fan tokens signed with the cluster secret, and comparing secrets;
//! - [`admission`]: the waiting room's keys and signed tokens (admissions, and the room's own);
//! - [`auth`]: password hashing, and the fan and admin extractors;
//! - [`validate`]: pure checks of what clients send;
//! - [`views`]: the JSON shapes of the API, the time format, and a view as a body;
//! - [`payment`]: the payment provider trait and its HTTP client;
//! - [`webhook`]: checking the provider's webhook signatures;
//! - [`settle`]: settling captured payments (confirm, or refund), and reconciling pending ones;
//! - [`prune`]: the task that has each group this node leads forget idempotency records and
//!   webhook event ids past their window;
//! - [`metrics`]: response and hold counters in Prometheus text;
//! - [`seats`]: live seat maps, one feed per event followed by every fan watching it;
//! - [`routes`]: the handlers, one module per area, and the router that ties them together;
//! - [`openapi`]: the OpenAPI 3.1 document of every route, served at `/openapi.json`;
//! - [`parts`]: which of an event's groups a hold goes to, for an event spread over several.

pub mod admission;
pub mod auth;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod extract;
pub mod front_door;
pub mod headers;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod parts;
pub mod payment;
pub mod problem;
pub mod prune;
pub mod routes;
pub mod seats;
pub mod settle;
pub mod state;
pub mod tokens;
pub mod validate;
pub mod views;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;

pub use cluster::Cluster;
pub use config::GatewayConfig;
pub use front_door::{FrontDoor, FrontDoorError};
pub use payment::{HttpProvider, NoProvider, PaymentProvider};
pub use problem::Problem;

/// The gateway's routes over `cluster`, paying through the provider at `payment_api_url` (none
/// if it is empty), and the tasks that reconcile payments left pending and prune what groups
/// remember (they stop when the router is dropped). Must be called inside a Tokio runtime.
pub fn router<C: Cluster>(cluster: Arc<C>, config: GatewayConfig) -> axum::Router {
    router_with(cluster, config, None, axum::Router::new(), None)
}

/// The gateway's routes with a chosen payment provider.
pub fn router_with_payments<C: Cluster>(
    cluster: Arc<C>,
    config: GatewayConfig,
    payments: Arc<dyn PaymentProvider>,
) -> axum::Router {
    router_with(cluster, config, Some(payments), axum::Router::new(), None)
}

/// The gateway's routes with `extra` routes merged in (the node's waiting room over HTTP), and
/// a chosen payment provider or (`None`) the one the configuration names. `extra` must have no
/// fallback of its own: the gateway's problems answer unknown routes and wrong methods for all.
/// `extra_api` is the OpenAPI description of `extra`, merged into `/openapi.json`.
pub fn router_with<C: Cluster>(
    cluster: Arc<C>,
    config: GatewayConfig,
    payments: Option<Arc<dyn PaymentProvider>>,
    extra: axum::Router,
    extra_api: Option<utoipa::openapi::OpenApi>,
) -> axum::Router {
    let payments = payments.unwrap_or_else(|| configured_provider(&config));
    let state = state::AppState::new(cluster, config, payments);
    tokio::spawn(settle::reconcile(state.downgrade()));
    tokio::spawn(prune::prune(state.downgrade()));
    tokio::spawn(limits::sweep(Arc::downgrade(&state.limits)));
    let described = openapi::router(openapi::document(extra_api));
    routes::build(state, extra.merge(described))
}

/// The provider at `payment_api_url`, or none if it is empty.
fn configured_provider(config: &GatewayConfig) -> Arc<dyn PaymentProvider> {
    if config.payment_api_url.is_empty() {
        tracing::warn!("no payment provider configured: payments are unavailable");
        Arc::new(NoProvider)
    } else {
        Arc::new(HttpProvider::new(&config.payment_api_url, &config.payment_api_key))
    }
}

/// Serve `router` on `listener` through `door` (its timeouts, caps and TLS) until `shutdown`
/// completes, then finish the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    door: FrontDoor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, https = door.is_tls(), "gateway listening");
    }
    front_door::serve(listener, router, door, shutdown).await?;
    tracing::info!("gateway stopped");
    Ok(())
}

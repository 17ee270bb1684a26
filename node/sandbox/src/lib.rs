//! The sandbox payment provider: a server that behaves like Stripe, for development and tests.
//!
//! It keeps its state in memory and talks to Boxoffice's gateways only over HTTP, so it uses no
//! other crate of the workspace:
//!
//! - an API the gateway calls (`/v1/…`, `Authorization: Bearer <api key>`, JSON in camelCase,
//!   errors `{"error": {"type", "code"?, "message"}}`): payment intents, confirmation with a card
//!   number, refunds, and listings of refunds and events;
//! - a hosted checkout page the fan's browser opens (`/checkout/{id}`), and a dashboard (`/`);
//! - signed webhooks (`Sandbox-Signature`, see `signature`) for every state change, delivered
//!   late, out of order, twice now and then, and retried with backoff until acknowledged: the
//!   misbehaviours a real provider has, on purpose.
//!
//! Layout, each module using only those listed before it:
//! - `error`: `ApiError`, the API's error answers, and [`SandboxError`], why the sandbox could
//!   not start or serve;
//! - `config`: [`SandboxConfig`] and `boxoffice sandbox`'s flags, [`SandboxArgs`];
//! - `clock`, `signature`, `html`: the time, a webhook's signature, the pages' pieces;
//! - `objects`: the API's objects, the requests and the test cards' rules;
//! - `store`: keeps them (pure, no I/O, no clock), behind one lock the server shares;
//! - `webhooks`: delivers each event, recording its attempts in the store;
//! - `app`: runs an operation on the store, logs it and hands its event to `webhooks`;
//! - `extract`: extractors whose rejections are JSON errors;
//! - `api`, `checkout`, `dashboard`: the HTTP faces over `app`.
//!
//! `boxoffice sandbox` runs [`run`]; `boxoffice dev` and tests call [`serve`].

mod api;
mod app;
mod checkout;
mod clock;
mod config;
mod dashboard;
mod error;
mod extract;
mod html;
mod objects;
mod signature;
mod store;
#[cfg(test)]
mod tests;
mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
pub use crate::config::{SandboxArgs, SandboxConfig};
use crate::error::ApiError;
pub use crate::error::SandboxError;
use crate::extract::BODY_MAX;
pub use crate::signature::{sign, SIGNATURE_HEADER};

/// How long stopping waits for the webhook deliveries to give up.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// `boxoffice sandbox`: binds, says where, and serves until `shutdown`.
pub async fn run(args: SandboxArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), SandboxError> {
    let listener = TcpListener::bind(&args.http)
        .await
        .map_err(|source| SandboxError::Listen { addr: args.http.clone(), source })?;
    let addr = listener.local_addr().map_err(SandboxError::Address)?;
    println!("sandbox payments listening on http://{addr}");
    serve(listener, args.config(), shutdown).await
}

/// Serves the sandbox on `listener` until `shutdown` completes, then finishes the requests in
/// flight and stops the webhook deliveries.
pub async fn serve(
    listener: TcpListener,
    config: SandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SandboxError> {
    config.check()?;
    let addr = listener.local_addr().map_err(SandboxError::Address)?;
    let config = config.resolve(addr);
    if config.webhook_urls.is_empty() {
        tracing::warn!("no webhook url: events are recorded, not delivered");
    }
    let (stop, stopped) = watch::channel(false);
    let app = Arc::new(App::new(config, stopped)?);
    tracing::info!(%addr, public_url = %app.config.public_url, "sandbox payments listening");
    let served = axum::serve(listener, router(app.clone())).with_graceful_shutdown(shutdown).await;
    stop.send_replace(true);
    app.webhooks.drained(DRAIN_GRACE).await;
    tracing::info!("sandbox payments stopped");
    served.map_err(SandboxError::Serve)
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(api::routes(app.clone()))
        .merge(checkout::routes())
        .route("/", get(dashboard::show))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_MAX))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::not_found_route()
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

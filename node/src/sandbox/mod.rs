//! The sandbox payment provider: a server that behaves like Stripe, for development and tests.
//!
//! It keeps its state in memory and talks to Boxoffice's gateways only over HTTP:
//!
//! - an API the gateway calls (`/v1/…`, `Authorization: Bearer <api key>`, JSON in camelCase,
//!   errors `{"error": {"type", "code"?, "message"}}`): payment intents, confirmation with a card
//!   number, refunds, and listings of refunds and events;
//! - a hosted checkout page the fan's browser opens (`/checkout/{id}`), and a dashboard (`/`);
//! - signed webhooks (`Sandbox-Signature`, see [`gateway::webhook`]) for every state change,
//!   delivered late, out of order, twice now and then, and retried with backoff until
//!   acknowledged: the misbehaviours a real provider has, on purpose.
//!
//! Layout: [`objects`] has the API's objects, the requests and the test cards' rules; [`store`]
//! keeps them (pure, no I/O, no clock); [`app`] runs an operation on the store, logs it and hands
//! its event to [`webhooks`], which delivers it; [`api`], [`checkout`] and [`dashboard`] are the
//! HTTP faces, over [`extract`] (extractors whose rejections are JSON errors), [`error`] and
//! [`html`]. `boxoffice sandbox` runs [`run`]; `boxoffice dev` and tests call [`serve`].

mod api;
mod app;
mod checkout;
mod dashboard;
mod error;
mod extract;
mod html;
mod objects;
mod store;
#[cfg(test)]
mod tests;
mod webhooks;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use app::App;
use error::ApiError;

/// The largest request body taken, in bytes.
const BODY_MAX: usize = 64 * 1024;
/// How long stopping waits for the webhook deliveries to give up.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How the sandbox behaves. [`Default`] gives the documented defaults, with empty secrets and no
/// webhook URL (which [`serve`] refuses and tolerates, respectively).
#[derive(Clone)]
pub struct SandboxConfig {
    /// The key the gateway sends as `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// The secret webhooks are signed with.
    pub webhook_secret: String,
    /// Where events are POSTed, tried in order: a URL that fails is skipped for the next one.
    pub webhook_urls: Vec<String>,
    /// The chance, in thousandths, that an acknowledged webhook is delivered once more.
    pub duplicate_per_mille: u32,
    /// The longest random wait before an event's first delivery, so that events can arrive out
    /// of order.
    pub delay_max_ms: u64,
    /// The longest wait between two attempts (the wait starts at 100 ms and doubles).
    pub retry_backoff_max_ms: u64,
    /// Attempts before an event is marked failed.
    pub delivery_attempts_max: u32,
    /// The base URL fans' browsers use for checkout pages; empty: `http://<bound address>`.
    pub public_url: String,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            api_key: String::new(),
            webhook_secret: String::new(),
            webhook_urls: Vec::new(),
            duplicate_per_mille: 100,
            delay_max_ms: 1_500,
            retry_backoff_max_ms: 30_000,
            delivery_attempts_max: 50,
            public_url: String::new(),
        }
    }
}

/// Shows everything but the secrets.
impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("api_key", &"…")
            .field("webhook_secret", &"…")
            .field("webhook_urls", &self.webhook_urls)
            .field("duplicate_per_mille", &self.duplicate_per_mille)
            .field("delay_max_ms", &self.delay_max_ms)
            .field("retry_backoff_max_ms", &self.retry_backoff_max_ms)
            .field("delivery_attempts_max", &self.delivery_attempts_max)
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl SandboxConfig {
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.api_key.is_empty(), "the sandbox needs an API key");
        anyhow::ensure!(!self.webhook_secret.is_empty(), "the sandbox needs a webhook secret");
        anyhow::ensure!(self.duplicate_per_mille <= 1000, "duplicate_per_mille is at most 1000");
        for url in &self.webhook_urls {
            let http = url.starts_with("http://") || url.starts_with("https://");
            anyhow::ensure!(http, "a webhook URL starts with http:// or https://, not {url:?}");
        }
        Ok(())
    }

    /// Fills in the public URL from the bound address (`localhost` for an unspecified one such
    /// as 0.0.0.0, which browsers cannot open), without a trailing slash.
    fn resolve(mut self, addr: SocketAddr) -> Self {
        if self.public_url.is_empty() && addr.ip().is_unspecified() {
            self.public_url = format!("http://localhost:{}", addr.port());
        } else if self.public_url.is_empty() {
            self.public_url = format!("http://{addr}");
        }
        self.public_url = self.public_url.trim_end_matches('/').to_string();
        self.delivery_attempts_max = self.delivery_attempts_max.max(1);
        self
    }
}

/// `boxoffice sandbox`'s flags.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Where the API, the checkout pages and the dashboard listen.
    #[arg(long, default_value = "127.0.0.1:8090")]
    http: String,
    /// The API key gateways send as `Authorization: Bearer <KEY>`.
    #[arg(long)]
    api_key: String,
    /// The secret webhooks are signed with.
    #[arg(long)]
    webhook_secret: String,
    /// A URL events are POSTed to; repeat for fallbacks, tried in order.
    #[arg(long = "webhook", value_name = "URL", required = true)]
    webhooks: Vec<String>,
    /// The chance, in thousandths, that an acknowledged webhook is delivered once more.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1000))]
    duplicate_per_mille: u32,
    /// The longest random wait before an event's first delivery, in milliseconds.
    #[arg(long, default_value_t = 1_500)]
    delay_max_ms: u64,
    /// The longest wait between two delivery attempts, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    retry_backoff_max_ms: u64,
    /// Delivery attempts before an event is marked failed.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    delivery_attempts_max: u32,
    /// The base URL fans' browsers use for checkout pages [default: http://<bound address>].
    #[arg(long)]
    public_url: Option<String>,
}

impl SandboxArgs {
    fn config(self) -> SandboxConfig {
        SandboxConfig {
            api_key: self.api_key,
            webhook_secret: self.webhook_secret,
            webhook_urls: self.webhooks,
            duplicate_per_mille: self.duplicate_per_mille,
            delay_max_ms: self.delay_max_ms,
            retry_backoff_max_ms: self.retry_backoff_max_ms,
            delivery_attempts_max: self.delivery_attempts_max,
            public_url: self.public_url.unwrap_or_default(),
        }
    }
}

/// `boxoffice sandbox`: binds, says where, and serves until `shutdown`.
pub async fn run(args: SandboxArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.http).await.with_context(|| format!("cannot listen on {}", args.http))?;
    let addr = listener.local_addr()?;
    println!("sandbox payments listening on http://{addr}");
    serve(listener, args.config(), shutdown).await
}

/// Serves the sandbox on `listener` until `shutdown` completes, then finishes the requests in
/// flight and stops the webhook deliveries.
pub async fn serve(
    listener: TcpListener,
    config: SandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.check()?;
    let addr = listener.local_addr()?;
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
    served.context("the sandbox server failed")
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

//! Delivering events to the gateways, the way a real provider does, warts included.
//!
//! Each event gets a task: it waits a random 0..=`delay_max_ms` (so that events can arrive out
//! of order), then POSTs the event, signed afresh at each attempt, to the webhook URLs in turn
//! (a URL that fails is skipped for the next one), backing off from 100 ms, doubling up to
//! `retry_backoff_max_ms`, until a 2xx or `delivery_attempts_max` attempts. Now and then
//! (`duplicate_per_mille`) it delivers an acknowledged event once more, later. At most
//! [`IN_FLIGHT_MAX`] requests are in flight and [`PENDING_MAX`] events waiting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{watch, Semaphore};

use crate::clock::now_s;
use crate::config::SandboxConfig;
use crate::error::SandboxError;
use crate::objects::Event;
use crate::signature::{sign, SIGNATURE_HEADER};
use crate::store::SharedStore;

/// Requests in flight at once.
const IN_FLIGHT_MAX: usize = 64;
/// Events waiting for delivery at once; past it, new events are marked failed at once.
const PENDING_MAX: usize = 100_000;
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait after the first failed attempt; it doubles after each.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);

pub struct Webhooks {
    config: Arc<SandboxConfig>,
    /// Where each attempt is recorded.
    store: SharedStore,
    client: reqwest::Client,
    in_flight: Semaphore,
    pending: Arc<Semaphore>,
    /// Where the next delivery starts: after the URL that failed last.
    preferred: AtomicUsize,
    stop: watch::Receiver<bool>,
}

impl Webhooks {
    /// Deliveries to `config`'s URLs, recorded in `store`; they end when `stop` turns true.
    pub fn new(
        config: Arc<SandboxConfig>,
        store: SharedStore,
        stop: watch::Receiver<bool>,
    ) -> Result<Self, SandboxError> {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("boxoffice-sandbox/1")
            .build()
            .map_err(SandboxError::Client)?;
        Ok(Webhooks {
            config,
            store,
            client,
            in_flight: Semaphore::new(IN_FLIGHT_MAX),
            pending: Arc::new(Semaphore::new(PENDING_MAX)),
            preferred: AtomicUsize::new(0),
            stop,
        })
    }

    /// Waits, at most `grace`, for every delivery task to end (once stopped, they end at once).
    pub async fn drained(&self, grace: Duration) {
        let all = u32::try_from(PENDING_MAX).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, self.pending.acquire_many(all)).await.is_err() {
            tracing::warn!("webhook deliveries still running after stop");
        }
    }

    /// Starts delivering `event` in the background.
    pub fn dispatch(self: &Arc<Self>, event: &Event) {
        if self.config.webhook_urls.is_empty() {
            return;
        }
        let body = match serde_json::to_vec(event) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(event = %event.id, %error, "cannot serialize an event");
                return;
            }
        };
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            tracing::warn!(event = %event.id, "too many webhooks waiting: event not delivered");
            self.store.lock().mark_failed(&event.id);
            return;
        };
        let (webhooks, id, kind) = (self.clone(), event.id.clone(), event.kind);
        tokio::spawn(async move {
            let _permit = permit;
            let mut stop = webhooks.stop.clone();
            tokio::select! {
                _ = webhooks.deliver(&id, kind, &body) => {}
                _ = stop.wait_for(|stopped| *stopped) => {}
            }
        });
    }

    async fn deliver(&self, id: &str, kind: &str, body: &[u8]) {
        tokio::time::sleep(random_ms(self.config.delay_max_ms)).await;
        if !self.deliver_until_acknowledged(id, body).await {
            let attempts = self.config.delivery_attempts_max;
            tracing::warn!(event = %id, kind, attempts, "webhook delivery failed: giving up");
            self.store.lock().mark_failed(id);
            return;
        }
        tracing::debug!(event = %id, kind, "webhook delivered");
        if chance_per_mille(self.config.duplicate_per_mille) {
            tokio::time::sleep(random_ms(self.config.delay_max_ms)).await;
            tracing::debug!(event = %id, kind, "delivering the webhook again, on purpose");
            self.deliver_until_acknowledged(id, body).await;
        }
    }

    /// Tries the URLs in turn with backoff; true once one answers 2xx.
    async fn deliver_until_acknowledged(&self, id: &str, body: &[u8]) -> bool {
        let urls = &self.config.webhook_urls;
        let mut index = self.preferred.load(Ordering::Relaxed) % urls.len();
        let mut backoff = BACKOFF_FIRST;
        let backoff_max = Duration::from_millis(self.config.retry_backoff_max_ms);
        for attempt in 1..=self.config.delivery_attempts_max {
            let url = &urls[index];
            let (status, error) = self.post(url, body).await;
            self.store.lock().record_attempt(id, url, now_s(), status, error.clone());
            if status.is_some_and(|s| (200..300).contains(&s)) {
                return true;
            }
            tracing::debug!(event = %id, url, attempt, status, error = error.as_deref(), "webhook attempt failed");
            index = (index + 1) % urls.len();
            self.preferred.store(index, Ordering::Relaxed);
            if attempt < self.config.delivery_attempts_max {
                tokio::time::sleep(backoff.min(backoff_max)).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        false
    }

    /// One signed POST: the answer's status, or why there was none (or why it was not a 2xx).
    async fn post(&self, url: &str, body: &[u8]) -> (Option<u16>, Option<String>) {
        let Ok(_permit) = self.in_flight.acquire().await else {
            return (None, Some("stopping".into()));
        };
        let signature = sign(&self.config.webhook_secret, now_s(), body);
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body.to_vec());
        match request.send().await {
            Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
            Ok(response) => {
                let status = response.status();
                (Some(status.as_u16()), Some(format!("answered {status}")))
            }
            // With its causes (`a: b: c`): reqwest's own message rarely says what failed.
            Err(error) => (None, Some(format!("{:#}", anyhow::Error::from(error)))),
        }
    }
}

fn random_ms(max: u64) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(0..=max))
}

fn chance_per_mille(per_mille: u32) -> bool {
    rand::thread_rng().gen_range(0..1000) < per_mille
}

//! The running sandbox: its configuration, its store and its webhook deliveries, and the
//! operations the API and the checkout page share (each logs what changed and sends its event).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::error::ApiError;
use super::objects::{CreateIntent, CreateRefund, Intent, IntentStatus, Refund};
use super::store::{Limits, Store};
use super::webhooks::{self, Webhooks};
use super::SandboxConfig;

pub struct App {
    pub config: SandboxConfig,
    store: Mutex<Store>,
    pub webhooks: Webhooks,
}

/// Unix seconds.
pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

impl App {
    /// `stop` turns true when the server stops: the deliveries then end.
    pub fn new(config: SandboxConfig, stop: watch::Receiver<bool>) -> anyhow::Result<App> {
        let webhooks = Webhooks::new(stop)?;
        Ok(App { config, store: Mutex::new(Store::new(Limits::default())), webhooks })
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn create_intent(&self, request: CreateIntent, key: Option<String>) -> Result<Intent, ApiError> {
        let intent = self.store().create_intent(request, key, &self.config.public_url, now_s())?;
        tracing::debug!(intent = %intent.id, booking = %intent.booking_id, amount = intent.amount, "payment intent ready");
        Ok(intent)
    }

    pub fn confirm(self: &Arc<Self>, id: &str, card: &str) -> Result<Intent, ApiError> {
        let (intent, event) = self.store().confirm(id, card, now_s())?;
        match (&intent.status, &intent.last_payment_error) {
            (IntentStatus::Succeeded, _) => {
                tracing::info!(intent = %intent.id, booking = %intent.booking_id, amount = intent.amount, "payment succeeded")
            }
            (_, error) => {
                let reason = error.as_ref().map_or("", |e| e.decline_code);
                tracing::info!(intent = %intent.id, booking = %intent.booking_id, reason, "payment declined");
            }
        }
        webhooks::dispatch(self, &event);
        Ok(intent)
    }

    pub fn refund(self: &Arc<Self>, request: CreateRefund, key: Option<String>) -> Result<Refund, ApiError> {
        let (refund, event) = self.store().refund(request, key, now_s())?;
        if let Some(event) = event {
            tracing::info!(refund = %refund.id, intent = %refund.payment_intent, amount = refund.amount, "payment refunded");
            webhooks::dispatch(self, &event);
        }
        Ok(refund)
    }
}

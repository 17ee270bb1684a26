//! The running sandbox: its configuration, its store and its webhook deliveries, and the
//! operations the API and the checkout page share (each logs what changed and sends its event).

use std::sync::Arc;

use tokio::sync::watch;

use crate::clock::now_s;
use crate::config::SandboxConfig;
use crate::error::{ApiError, SandboxError};
use crate::objects::{CreateIntent, CreateRefund, Intent, IntentStatus, Refund};
use crate::store::{Limits, SharedStore, Store};
use crate::webhooks::Webhooks;

pub struct App {
    pub config: Arc<SandboxConfig>,
    store: SharedStore,
    pub webhooks: Arc<Webhooks>,
}

impl App {
    /// `stop` turns true when the server stops: the deliveries then end.
    pub fn new(config: SandboxConfig, stop: watch::Receiver<bool>) -> Result<App, SandboxError> {
        let (config, store) = (Arc::new(config), SharedStore::new(Store::new(Limits::default())));
        let webhooks = Arc::new(Webhooks::new(config.clone(), store.clone(), stop)?);
        Ok(App { config, store, webhooks })
    }

    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock()
    }

    pub fn create_intent(&self, request: CreateIntent, key: Option<String>) -> Result<Intent, ApiError> {
        let intent = self.store().create_intent(request, key, &self.config.public_url, now_s())?;
        tracing::debug!(intent = %intent.id, booking = %intent.booking_id, amount = intent.amount, "payment intent ready");
        Ok(intent)
    }

    pub fn confirm(&self, id: &str, card: &str) -> Result<Intent, ApiError> {
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
        self.webhooks.dispatch(&event);
        Ok(intent)
    }

    pub fn refund(&self, request: CreateRefund, key: Option<String>) -> Result<Refund, ApiError> {
        let (refund, event) = self.store().refund(request, key, now_s())?;
        if let Some(event) = event {
            tracing::info!(refund = %refund.id, intent = %refund.payment_intent, amount = refund.amount, "payment refunded");
            self.webhooks.dispatch(&event);
        }
        Ok(refund)
    }
}

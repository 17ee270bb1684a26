//! The sandbox's state, in memory: intents, refunds, idempotency keys and events with their
//! delivery attempts. Pure: no I/O and no clock (callers pass `now`), so every rule is tested
//! without a server. [`SharedStore`] is the one store the requests and the webhook deliveries
//! share.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::objects::{self, CardOutcome, CreateIntent, CreateRefund, Event, EventData, Intent, IntentStatus, Refund};

/// How much the store keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Intents kept; creating one more is refused (503).
    pub intents_max: usize,
    /// Events kept; the oldest is forgotten (its delivery goes on).
    pub events_max: usize,
    /// Delivery attempts kept per event (the count goes on).
    pub attempts_kept: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { intents_max: 1_000_000, events_max: 100_000, attempts_kept: 100 }
    }
}

/// One delivery attempt of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub number: u32,
    pub url: String,
    /// Unix seconds.
    pub sent_at: i64,
    /// The answer's status, if one came.
    pub status: Option<u16>,
    /// Why no 2xx came.
    pub error: Option<String>,
    pub acknowledged: bool,
}

/// An event and how its delivery goes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    #[serde(flatten)]
    pub event: Event,
    /// The latest attempts (at most [`Limits::attempts_kept`]).
    pub delivery_attempts: Vec<Attempt>,
    pub attempts_total: u32,
    /// Acknowledged at least once.
    pub delivered: bool,
    /// How many times it was acknowledged (2 when delivered twice on purpose).
    pub deliveries: u32,
    /// Given up on after the last attempt.
    pub failed: bool,
}

#[derive(Debug, Default)]
pub struct Store {
    limits: Limits,
    intents: HashMap<String, Intent>,
    intent_order: Vec<String>,
    intent_keys: HashMap<String, (CreateIntent, String)>,
    refunds: HashMap<String, Refund>,
    refund_order: Vec<String>,
    refund_of_intent: HashMap<String, String>,
    refund_keys: HashMap<String, (CreateRefund, String)>,
    events: HashMap<String, EventRecord>,
    event_order: VecDeque<String>,
}

impl Store {
    pub fn new(limits: Limits) -> Self {
        Store { limits, ..Store::default() }
    }

    /// Creates an intent, or returns the one made earlier with the same idempotency key.
    pub fn create_intent(
        &mut self,
        request: CreateIntent,
        key: Option<String>,
        checkout_base: &str,
        now: i64,
    ) -> Result<Intent, ApiError> {
        if let Some((earlier, id)) = key.as_ref().and_then(|key| self.intent_keys.get(key)) {
            if *earlier != request {
                return Err(ApiError::idempotency("this idempotency key was used with another request"));
            }
            return self.intent(id);
        }
        request.check()?;
        if self.intents.len() >= self.limits.intents_max {
            return Err(ApiError::unavailable("the sandbox holds as many payment intents as it can"));
        }
        let intent = new_intent(&request, checkout_base, now);
        self.intents.insert(intent.id.clone(), intent.clone());
        self.intent_order.push(intent.id.clone());
        if let Some(key) = key {
            self.intent_keys.insert(key, (request, intent.id.clone()));
        }
        Ok(intent)
    }

    pub fn intent(&self, id: &str) -> Result<Intent, ApiError> {
        self.intents.get(id).cloned().ok_or_else(|| ApiError::missing("payment_intent", id))
    }

    /// Charges the card for the intent: it succeeds, or is declined and stays payable. Either way
    /// makes an event; a card number without the shape of one changes nothing.
    pub fn confirm(&mut self, id: &str, card: &str, now: i64) -> Result<(Intent, Event), ApiError> {
        let intent = self.intents.get_mut(id).ok_or_else(|| ApiError::missing("payment_intent", id))?;
        if intent.status == IntentStatus::Succeeded {
            let message = "this payment intent has already succeeded: it is never charged twice";
            return Err(ApiError::conflict("payment_intent_unexpected_state", message));
        }
        let kind = match objects::charge_card(card)? {
            CardOutcome::Pays => {
                intent.status = IntentStatus::Succeeded;
                intent.last_payment_error = None;
                "payment_intent.succeeded"
            }
            CardOutcome::Declined(error) => {
                intent.status = IntentStatus::RequiresPaymentMethod;
                intent.last_payment_error = Some(error);
                "payment_intent.payment_failed"
            }
        };
        let intent = intent.clone();
        let event = self.push_event(kind, to_value(&intent), now);
        Ok((intent, event))
    }

    /// Refunds a succeeded intent in full, once; the same idempotency key returns the first
    /// refund (and no event).
    pub fn refund(
        &mut self,
        request: CreateRefund,
        key: Option<String>,
        now: i64,
    ) -> Result<(Refund, Option<Event>), ApiError> {
        if let Some((earlier, id)) = key.as_ref().and_then(|key| self.refund_keys.get(key)) {
            if *earlier != request {
                return Err(ApiError::idempotency("this idempotency key was used with another request"));
            }
            let refund = self.refunds.get(id).cloned().ok_or_else(|| ApiError::missing("refund", id))?;
            return Ok((refund, None));
        }
        let refund = self.refundable(&request.payment_intent, now)?;
        self.record_refund(&refund);
        if let Some(key) = key {
            self.refund_keys.insert(key, (request, refund.id.clone()));
        }
        let event = self.push_event("charge.refunded", to_value(&refund), now);
        Ok((refund, Some(event)))
    }

    /// The refund the intent would get, if it can get one.
    fn refundable(&self, intent_id: &str, now: i64) -> Result<Refund, ApiError> {
        let intent = self.intents.get(intent_id).ok_or_else(|| ApiError::missing("payment_intent", intent_id))?;
        if let Some(refund) = self.refund_of_intent.get(intent_id) {
            let message = format!("payment intent {intent_id} has already been refunded ({refund})");
            return Err(ApiError::conflict("charge_already_refunded", message));
        }
        if intent.status != IntentStatus::Succeeded {
            let message = format!("payment intent {intent_id} has not succeeded: there is nothing to refund");
            return Err(ApiError::conflict("payment_intent_unexpected_state", message));
        }
        Ok(Refund {
            id: objects::new_id("re"),
            object: "refund",
            payment_intent: intent.id.clone(),
            amount: intent.amount,
            currency: intent.currency.clone(),
            booking_id: intent.booking_id.clone(),
            status: "succeeded",
            created: now,
        })
    }

    fn record_refund(&mut self, refund: &Refund) {
        if let Some(intent) = self.intents.get_mut(&refund.payment_intent) {
            intent.amount_refunded = refund.amount;
        }
        self.refund_of_intent.insert(refund.payment_intent.clone(), refund.id.clone());
        self.refund_order.push(refund.id.clone());
        self.refunds.insert(refund.id.clone(), refund.clone());
    }

    /// The refunds of one intent, or the latest `limit` of all, newest first.
    pub fn refunds(&self, intent: Option<&str>, limit: usize) -> Vec<Refund> {
        match intent {
            Some(intent) => {
                self.refund_of_intent.get(intent).and_then(|id| self.refunds.get(id)).into_iter().cloned().collect()
            }
            None => self.refund_order.iter().rev().take(limit).filter_map(|id| self.refunds.get(id)).cloned().collect(),
        }
    }

    /// The latest `limit` intents, newest first.
    pub fn recent_intents(&self, limit: usize) -> Vec<Intent> {
        self.intent_order.iter().rev().take(limit).filter_map(|id| self.intents.get(id)).cloned().collect()
    }

    /// The latest `limit` events with their deliveries, newest first.
    pub fn recent_events(&self, limit: usize) -> Vec<EventRecord> {
        self.event_order.iter().rev().take(limit).filter_map(|id| self.events.get(id)).cloned().collect()
    }

    /// How many intents, refunds and events the store holds.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.intents.len(), self.refunds.len(), self.events.len())
    }

    fn push_event(&mut self, kind: &'static str, object: Value, now: i64) -> Event {
        let event =
            Event { id: objects::new_id("evt"), object: "event", kind, created: now, data: EventData { object } };
        let record = EventRecord {
            event: event.clone(),
            delivery_attempts: Vec::new(),
            attempts_total: 0,
            delivered: false,
            deliveries: 0,
            failed: false,
        };
        self.events.insert(event.id.clone(), record);
        self.event_order.push_back(event.id.clone());
        while self.event_order.len() > self.limits.events_max {
            if let Some(oldest) = self.event_order.pop_front() {
                self.events.remove(&oldest);
            }
        }
        event
    }

    /// Notes an attempt to deliver `event` (forgotten events are skipped).
    pub fn record_attempt(&mut self, event: &str, url: &str, now: i64, status: Option<u16>, error: Option<String>) {
        let Some(record) = self.events.get_mut(event) else { return };
        let acknowledged = status.is_some_and(|s| (200..300).contains(&s));
        record.attempts_total += 1;
        let attempt =
            Attempt { number: record.attempts_total, url: url.to_string(), sent_at: now, status, error, acknowledged };
        if record.delivery_attempts.len() >= self.limits.attempts_kept {
            record.delivery_attempts.remove(0);
        }
        record.delivery_attempts.push(attempt);
        if acknowledged {
            record.delivered = true;
            record.deliveries += 1;
        }
    }

    /// Notes that delivering `event` was given up.
    pub fn mark_failed(&mut self, event: &str) {
        if let Some(record) = self.events.get_mut(event) {
            record.failed = true;
        }
    }
}

/// The store behind a lock, shared by the server's requests and its webhook deliveries.
#[derive(Clone, Default)]
pub struct SharedStore(Arc<Mutex<Store>>);

impl SharedStore {
    pub fn new(store: Store) -> Self {
        SharedStore(Arc::new(Mutex::new(store)))
    }

    /// The store, for one operation. A request that panicked while holding it does not stop the
    /// sandbox: a poisoned lock is taken as it is.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn new_intent(request: &CreateIntent, checkout_base: &str, now: i64) -> Intent {
    let id = objects::new_id("pi");
    Intent {
        checkout_url: format!("{checkout_base}/checkout/{id}"),
        id,
        object: "payment_intent",
        amount: request.amount.unsigned_abs(),
        currency: request.currency.to_ascii_lowercase(),
        booking_id: request.booking_id.clone(),
        status: IntentStatus::RequiresPaymentMethod,
        created: now,
        last_payment_error: None,
        amount_refunded: 0,
        return_url: request.return_url.clone(),
    }
}

fn to_value(object: &impl Serialize) -> Value {
    serde_json::to_value(object).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{CARD_DECLINED, CARD_OK};

    const BASE: &str = "http://sandbox.test";

    fn request(booking: &str) -> CreateIntent {
        CreateIntent { amount: 1_000, currency: "USD".into(), booking_id: booking.into(), return_url: None }
    }

    fn refund_of(intent: &Intent) -> CreateRefund {
        CreateRefund { payment_intent: intent.id.clone() }
    }

    #[test]
    fn an_intent_is_created_payable_with_its_checkout_url() {
        let mut store = Store::default();
        let intent = store.create_intent(request("b1"), None, BASE, 7).unwrap();
        assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
        assert_eq!(intent.checkout_url, format!("{BASE}/checkout/{}", intent.id));
        assert_eq!((intent.currency.as_str(), intent.created, intent.amount), ("usd", 7, 1_000));
        assert_eq!(store.intent(&intent.id), Ok(intent));
    }

    #[test]
    fn a_declined_intent_stays_payable_and_a_paid_one_is_not_charged_again() {
        let mut store = Store::default();
        let intent = store.create_intent(request("b1"), None, BASE, 1).unwrap();
        let (declined, event) = store.confirm(&intent.id, CARD_DECLINED, 2).unwrap();
        assert_eq!(declined.status, IntentStatus::RequiresPaymentMethod);
        assert_eq!(declined.last_payment_error.unwrap().code, "card_declined");
        assert_eq!(event.kind, "payment_intent.payment_failed");
        assert_eq!(store.confirm(&intent.id, "12", 3).unwrap_err().status.as_u16(), 400);
        let (paid, event) = store.confirm(&intent.id, CARD_OK, 3).unwrap();
        assert_eq!((paid.status, paid.last_payment_error), (IntentStatus::Succeeded, None));
        assert_eq!(event.kind, "payment_intent.succeeded");
        assert_eq!(store.confirm(&intent.id, CARD_OK, 4).unwrap_err().status.as_u16(), 409);
        assert_eq!(store.recent_events(10).len(), 2);
    }

    #[test]
    fn an_idempotency_key_returns_the_first_intent_for_the_same_request_only() {
        let mut store = Store::default();
        let first = store.create_intent(request("b1"), Some("k".into()), BASE, 1).unwrap();
        let again = store.create_intent(request("b1"), Some("k".into()), BASE, 2).unwrap();
        assert_eq!(first.id, again.id);
        let other = store.create_intent(request("b2"), Some("k".into()), BASE, 2).unwrap_err();
        assert_eq!(other.status.as_u16(), 422);
        assert_eq!(store.counts().0, 1);
    }

    #[test]
    fn a_paid_intent_is_refunded_once() {
        let mut store = Store::default();
        let intent = store.create_intent(request("b1"), None, BASE, 1).unwrap();
        assert_eq!(store.refund(refund_of(&intent), None, 2).unwrap_err().status.as_u16(), 409);
        store.confirm(&intent.id, CARD_OK, 2).unwrap();
        let (refund, event) = store.refund(refund_of(&intent), Some("r".into()), 3).unwrap();
        assert_eq!(event.map(|e| e.kind), Some("charge.refunded"));
        assert_eq!(store.intent(&intent.id).unwrap().amount_refunded, 1_000);
        let (again, event) = store.refund(refund_of(&intent), Some("r".into()), 4).unwrap();
        assert_eq!((again.id.as_str(), event), (refund.id.as_str(), None));
        assert_eq!(store.refund(refund_of(&intent), None, 4).unwrap_err().status.as_u16(), 409);
        assert_eq!(store.refunds(Some(&intent.id), 10), vec![refund.clone()]);
        assert_eq!(store.refunds(None, 10), vec![refund]);
    }

    #[test]
    fn the_store_is_bounded() {
        let limits = Limits { intents_max: 2, events_max: 3, attempts_kept: 2 };
        let mut store = Store::new(limits);
        let a = store.create_intent(request("a"), None, BASE, 1).unwrap();
        store.create_intent(request("b"), None, BASE, 1).unwrap();
        assert_eq!(store.create_intent(request("c"), None, BASE, 1).unwrap_err().status.as_u16(), 503);
        for _ in 0..4 {
            store.confirm(&a.id, CARD_DECLINED, 1).unwrap();
        }
        let events = store.recent_events(10);
        assert_eq!(events.len(), 3);
        for status in [500, 500, 200] {
            store.record_attempt(&events[0].event.id, "http://x", 1, Some(status), None);
        }
        let record = &store.recent_events(1)[0];
        assert_eq!((record.attempts_total, record.delivery_attempts.len(), record.delivered), (3, 2, true));
        assert_eq!(record.delivery_attempts[1].number, 3);
    }
}

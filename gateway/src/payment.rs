//! Taking the fans' money through a payment provider that behaves like Stripe: a payment (an
//! intent) per booking, a hosted checkout page, signed webhooks, refunds. Boxoffice talks to it
//! over HTTP through [`PaymentProvider`]; `boxoffice sandbox` is the provider for development and
//! tests (see node/sandbox, the `sandbox` crate).
//!
//! Design rule 6: every captured payment ends in a confirmed booking or a refund.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use model::BookingId;
use serde::Deserialize;
use serde_json::json;

/// A boxed future, so that providers can be chosen at run time (`Arc<dyn PaymentProvider>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long one call to the provider may take.
const PROVIDER_TIMEOUT_MS: u64 = 10_000;

/// A payment at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    pub id: String,
    pub amount: u64,
    pub booking_id: String,
    /// `requires_payment_method`, `processing`, `succeeded` or `canceled`.
    pub status: String,
    pub checkout_url: String,
    pub last_payment_error: Option<PaymentError>,
    #[serde(default)]
    pub amount_refunded: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentError {
    pub code: String,
    pub message: String,
}

impl Intent {
    pub fn succeeded(&self) -> bool {
        self.status == "succeeded"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The card was declined: the fan may try another.
    #[error("{0}")]
    Declined(String),
    /// The provider refused the request (a conflict, a bad argument): it changed nothing.
    #[error("the payment provider refused: {0}")]
    Refused(String),
    /// The provider could not be reached or failed: the request may or may not have taken effect.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a card number has 12 to 19 digits (spaces and dashes between them are fine)")]
pub struct BadCardNumber;

/// A card number that has the shape of one: 12 to 19 digits. Its `Debug` shows only the last
/// four, so that a stray log line cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Card(String);

impl Card {
    pub fn parse(raw: &str) -> Result<Card, BadCardNumber> {
        let digits: String = raw.trim().chars().filter(|c| *c != ' ' && *c != '-').collect();
        let shaped = (12..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        if !shaped {
            return Err(BadCardNumber);
        }
        Ok(Card(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Card(…{})", self.last4())
    }
}

/// The payment provider, as the gateway needs it. Every call is idempotent: creating an intent
/// twice for a booking gives the same intent, refunding twice refunds once.
pub trait PaymentProvider: Send + Sync + 'static {
    fn create_intent<'a>(
        &'a self,
        booking: BookingId,
        amount_cents: u64,
        return_url: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>>;

    /// Confirms with a card server-side (the hosted checkout page does the same for a browser).
    fn confirm<'a>(&'a self, intent: &'a str, card: &'a Card) -> BoxFuture<'a, Result<Intent, ProviderError>>;

    fn intent<'a>(&'a self, intent: &'a str) -> BoxFuture<'a, Result<Intent, ProviderError>>;

    fn refund<'a>(&'a self, intent: &'a str) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// The provider over HTTP (`boxoffice sandbox` speaks this API).
pub struct HttpProvider {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

/// Why `url` cannot be the provider's API, if it cannot: it must be `https://`, or plain
/// `http://` to a loopback host only (a sandbox on this machine), as card numbers and the API key
/// travel in it.
pub fn provider_url_problem(url: &str) -> Option<String> {
    let parsed = match reqwest::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(error) => return Some(format!("payment_api_url `{url}` is not a URL: {error}")),
    };
    let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => None,
        "http" if loopback => None,
        "http" => Some(format!(
            "payment_api_url `{url}` is plain http to a host that is not this machine: use https:// (plain http \
             is for a sandbox on loopback only)"
        )),
        other => Some(format!("payment_api_url `{url}` has scheme `{other}`: use https://")),
    }
}

impl HttpProvider {
    pub fn new(base: &str, api_key: &str) -> HttpProvider {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(PROVIDER_TIMEOUT_MS))
            .build()
            .expect("an HTTP client with a timeout builds");
        HttpProvider { http, base: base.trim_end_matches('/').to_string(), api_key: api_key.to_string() }
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
        idempotency: Option<String>,
    ) -> Result<T, ProviderError> {
        let mut request = request.bearer_auth(&self.api_key);
        if let Some(key) = idempotency {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        if status.is_server_error() {
            return Err(ProviderError::Unavailable(format!("{status}: {body}")));
        }
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("refused").to_string();
            return Err(ProviderError::Refused(message));
        }
        serde_json::from_value(body).map_err(|e| ProviderError::Unavailable(format!("unreadable answer: {e}")))
    }
}

impl PaymentProvider for HttpProvider {
    fn create_intent<'a>(
        &'a self,
        booking: BookingId,
        amount_cents: u64,
        return_url: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async move {
            let body = json!({"amount": amount_cents, "currency": "usd", "bookingId": booking.to_string(), "returnUrl": return_url});
            let request = self.http.post(format!("{}/v1/payment_intents", self.base)).json(&body);
            // One intent per booking, however often the fan (or a retry) asks.
            self.call(request, Some(format!("booking-{booking}"))).await
        })
    }

    fn confirm<'a>(&'a self, intent: &'a str, card: &'a Card) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async move {
            let url = format!("{}/v1/payment_intents/{intent}/confirm", self.base);
            let intent: Intent =
                self.call(self.http.post(url).json(&json!({"cardNumber": card.digits()})), None).await?;
            match &intent.last_payment_error {
                Some(error) if !intent.succeeded() => Err(ProviderError::Declined(error.message.clone())),
                _ => Ok(intent),
            }
        })
    }

    fn intent<'a>(&'a self, intent: &'a str) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(
            async move { self.call(self.http.get(format!("{}/v1/payment_intents/{intent}", self.base)), None).await },
        )
    }

    fn refund<'a>(&'a self, intent: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let request = self.http.post(format!("{}/v1/refunds", self.base)).json(&json!({"paymentIntent": intent}));
            match self.call::<serde_json::Value>(request, Some(format!("refund-{intent}"))).await {
                Ok(_) => Ok(()),
                // Refunded before (by another gateway, or an earlier try): the money is back.
                Err(ProviderError::Refused(message)) if message.contains("already refunded") => Ok(()),
                Err(error) => Err(error),
            }
        })
    }
}

/// No provider configured: payments are unavailable, everything else works.
pub struct NoProvider;

impl PaymentProvider for NoProvider {
    fn create_intent<'a>(
        &'a self,
        _: BookingId,
        _: u64,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async { Err(ProviderError::Unavailable("no payment provider is configured".into())) })
    }
    fn confirm<'a>(&'a self, _: &'a str, _: &'a Card) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async { Err(ProviderError::Unavailable("no payment provider is configured".into())) })
    }
    fn intent<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async { Err(ProviderError::Unavailable("no payment provider is configured".into())) })
    }
    fn refund<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Err(ProviderError::Unavailable("no payment provider is configured".into())) })
    }
}

/// A webhook event as the provider sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: WebhookData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookData {
    pub object: serde_json::Value,
}

impl WebhookEvent {
    /// The payment the event is about: the intent itself, or the refunded intent.
    pub fn payment_id(&self) -> Option<&str> {
        let object = &self.data.object;
        match object["object"].as_str() {
            Some("refund") => object["paymentIntent"].as_str(),
            _ => object["id"].as_str(),
        }
    }

    /// The booking, for events that carry the intent.
    pub fn booking(&self) -> Option<BookingId> {
        self.data.object["bookingId"].as_str()?.parse().ok()
    }

    pub fn intent(&self) -> Option<Intent> {
        serde_json::from_value(self.data.object.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_is_reached_over_https_or_on_loopback() {
        for good in [
            "https://api.pay.example",
            "http://127.0.0.1:9000",
            "http://127.8.0.1/",
            "http://localhost:1",
            "http://[::1]:80",
        ] {
            assert_eq!(provider_url_problem(good), None, "{good}");
        }
        for bad in ["http://pay.example", "http://10.0.0.5:8080", "ftp://127.0.0.1", "not a url"] {
            assert!(provider_url_problem(bad).is_some(), "{bad}");
        }
        assert!(provider_url_problem("http://pay.example").unwrap().contains("use https://"));
    }

    #[test]
    fn card_numbers_have_twelve_to_nineteen_digits() {
        assert_eq!(Card::parse("4242 4242-4242 4242").unwrap().digits(), "4242424242424242");
        for bad in ["", "4242", "4242a24242424242", "12345678901234567890"] {
            assert_eq!(Card::parse(bad), Err(BadCardNumber), "{bad}");
        }
    }

    #[test]
    fn a_card_shows_only_its_last_four_digits() {
        let card = Card::parse("4242424242424242").unwrap();
        assert_eq!(format!("{card:?}"), "Card(…4242)");
    }

    #[test]
    fn webhook_events_read_their_booking_and_payment() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded","created":1,
            "data":{"object":{"id":"pi_1","object":"payment_intent","amount":5000,"currency":"usd",
            "bookingId":"3-00000000000000ab","status":"succeeded","checkoutUrl":"http://x/checkout/pi_1",
            "lastPaymentError":null,"amountRefunded":0}}}"#;
        let event: WebhookEvent = serde_json::from_slice(body).unwrap();
        assert_eq!(event.kind, "payment_intent.succeeded");
        assert_eq!(event.payment_id(), Some("pi_1"));
        assert_eq!(event.booking().map(|b| b.to_string()).as_deref(), Some("3-00000000000000ab"));
        let refund = br#"{"id":"evt_2","type":"charge.refunded","created":1,
            "data":{"object":{"id":"re_1","object":"refund","paymentIntent":"pi_1","amount":5000,"status":"succeeded"}}}"#;
        let event: WebhookEvent = serde_json::from_slice(refund).unwrap();
        assert_eq!(event.payment_id(), Some("pi_1"));
        assert_eq!(event.booking(), None, "a refund names its payment, not its booking");
    }
}

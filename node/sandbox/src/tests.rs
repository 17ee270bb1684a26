//! The sandbox served for real on port 0, with a webhook receiver on port 0 beside it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::signature::{sign, SIGNATURE_HEADER};
use crate::{serve, SandboxConfig, SandboxError};

const API_KEY: &str = "sk_test_sandbox";
const SECRET: &str = "whsec_test_sandbox";
const WAIT: Duration = Duration::from_secs(5);

/// A webhook the receiver got, and what it answered.
#[derive(Debug)]
struct Hook {
    signature: String,
    body: Bytes,
    answered: u16,
}

impl Hook {
    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a webhook is json")
    }
}

struct ReceiverState {
    /// The statuses to answer, in order; 200 once they run out.
    answers: Mutex<VecDeque<u16>>,
    hooks: mpsc::UnboundedSender<Hook>,
}

/// A webhook receiver on port 0: its URL, and the hooks it gets.
async fn receiver(answers: &[u16]) -> (String, mpsc::UnboundedReceiver<Hook>) {
    let (hooks, received) = mpsc::unbounded_channel();
    let state = Arc::new(ReceiverState { answers: Mutex::new(answers.iter().copied().collect()), hooks });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks", listener.local_addr().unwrap());
    let router = Router::new().route("/webhooks", post(receive)).with_state(state);
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

async fn receive(State(state): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answered = state.answers.lock().unwrap().pop_front().unwrap_or(200);
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("application/json"));
    let _ = state.hooks.send(Hook { signature: header.unwrap_or_default().to_string(), body, answered });
    StatusCode::from_u16(answered).unwrap()
}

/// The next hook, within [`WAIT`].
async fn next_hook(hooks: &mut mpsc::UnboundedReceiver<Hook>) -> Hook {
    tokio::time::timeout(WAIT, hooks.recv()).await.expect("a webhook in time").expect("the receiver runs")
}

/// Hooks until one of `kind` arrives.
async fn hook_of(hooks: &mut mpsc::UnboundedReceiver<Hook>, kind: &str) -> Hook {
    loop {
        let hook = next_hook(hooks).await;
        if hook.event()["type"] == kind {
            return hook;
        }
    }
}

fn config(webhook_urls: Vec<String>) -> SandboxConfig {
    SandboxConfig {
        api_key: API_KEY.into(),
        webhook_secret: SECRET.into(),
        webhook_urls,
        duplicate_per_mille: 0,
        delay_max_ms: 20,
        retry_backoff_max_ms: 400,
        delivery_attempts_max: 10,
        ..SandboxConfig::default()
    }
}

struct Sandbox {
    base: String,
    http: reqwest::Client,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), SandboxError>>,
}

async fn start(config: SandboxConfig) -> Sandbox {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, config, async move {
        let _ = stopped.await;
    }));
    Sandbox { base, http: reqwest::Client::new(), stop, server }
}

impl Sandbox {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value, key: Option<&str>) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).bearer_auth(API_KEY).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)).bearer_auth(API_KEY)).await
    }

    async fn page(&self, request: reqwest::RequestBuilder) -> (u16, String) {
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn create(&self, booking: &str) -> Value {
        let (status, intent) = self.post("/v1/payment_intents", intent_request(booking), None).await;
        assert_eq!(status, 200, "{intent}");
        intent
    }

    async fn confirm(&self, id: &str, card: &str) -> (u16, Value) {
        self.post(&format!("/v1/payment_intents/{id}/confirm"), json!({"cardNumber": card}), None).await
    }

    async fn event(&self, id: &str) -> Value {
        let (status, events) = self.get("/v1/events").await;
        assert_eq!(status, 200);
        let found = events["data"].as_array().unwrap().iter().find(|e| e["id"] == id).cloned();
        found.expect("the event is listed")
    }

    /// Stops the server and checks that it stops cleanly and soon.
    async fn stop(self) {
        let _ = self.stop.send(());
        let stopped = tokio::time::timeout(WAIT, self.server).await.expect("the sandbox stops in time");
        stopped.unwrap().expect("the sandbox stops cleanly");
    }
}

fn intent_request(booking: &str) -> Value {
    json!({"amount": 2_500, "currency": "usd", "bookingId": booking, "returnUrl": "https://shop.test/done"})
}

/// Checks that `hook` is signed with the secret, for its body, within five minutes of now.
fn verify(hook: &Hook) {
    let now = chrono::Utc::now().timestamp();
    let time = hook.signature.strip_prefix("t=").and_then(|rest| rest.split(',').next()).and_then(|t| t.parse().ok());
    let time: i64 = time.unwrap_or_else(|| panic!("no time in the signature {:?}", hook.signature));
    assert!((now - time).abs() <= 300, "signed at {time}, now is {now}");
    assert_eq!(hook.signature, sign(SECRET, time, &hook.body));
}

#[tokio::test]
async fn a_payment_with_the_test_card_succeeds_and_sends_a_signed_webhook() {
    let (url, mut hooks) = receiver(&[]).await;
    let sandbox = start(config(vec![url])).await;
    let intent = sandbox.create("42-7").await;
    let id = intent["id"].as_str().unwrap();
    assert!(id.starts_with("pi_") && id.len() == 27, "{id}");
    assert_eq!(intent["object"], "payment_intent");
    assert_eq!(intent["status"], "requires_payment_method");
    assert_eq!(intent["checkoutUrl"], format!("{}/checkout/{id}", sandbox.base));
    assert_eq!((&intent["amount"], &intent["amountRefunded"]), (&json!(2_500), &json!(0)));
    assert_eq!(intent["lastPaymentError"], Value::Null);

    let (status, paid) = sandbox.confirm(id, "4242 4242 4242 4242").await;
    assert_eq!((status, &paid["status"]), (200, &json!("succeeded")));
    let hook = hook_of(&mut hooks, "payment_intent.succeeded").await;
    verify(&hook);
    let event = hook.event();
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!((&event["object"], &event["data"]["object"]["id"]), (&json!("event"), &json!(id)));
    assert_eq!(event["data"]["object"]["bookingId"], "42-7");

    let (status, fetched) = sandbox.get(&format!("/v1/payment_intents/{id}")).await;
    assert_eq!((status, &fetched["status"]), (200, &json!("succeeded")));
    let (status, missing) = sandbox.get("/v1/payment_intents/pi_nope").await;
    assert_eq!((status, &missing["error"]["code"]), (404, &json!("resource_missing")));
    sandbox.stop().await;
}

#[tokio::test]
async fn a_declined_card_leaves_the_intent_payable() {
    let (url, mut hooks) = receiver(&[]).await;
    let sandbox = start(config(vec![url])).await;
    let intent = sandbox.create("b-decline").await;
    let id = intent["id"].as_str().unwrap();

    let (status, declined) = sandbox.confirm(id, "4000-0000-0000-0002").await;
    assert_eq!((status, &declined["status"]), (200, &json!("requires_payment_method")));
    assert_eq!(declined["lastPaymentError"]["code"], "card_declined");
    let hook = hook_of(&mut hooks, "payment_intent.payment_failed").await;
    verify(&hook);

    let (_, poor) = sandbox.confirm(id, "4000000000009995").await;
    assert_eq!(poor["lastPaymentError"]["declineCode"], "insufficient_funds");
    let (status, invalid) = sandbox.confirm(id, "1234").await;
    assert_eq!((status, &invalid["error"]["code"]), (400, &json!("invalid_number")));

    let (status, paid) = sandbox.confirm(id, "4242424242424242").await;
    assert_eq!((status, &paid["status"], &paid["lastPaymentError"]), (200, &json!("succeeded"), &Value::Null));
    hook_of(&mut hooks, "payment_intent.succeeded").await;
    let (status, events) = sandbox.get("/v1/events").await;
    assert_eq!((status, events["data"].as_array().unwrap().len()), (200, 3), "the invalid number made no event");
    sandbox.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_intent_for_the_same_body_only() {
    let sandbox = start(config(vec![])).await;
    let (status, first) = sandbox.post("/v1/payment_intents", intent_request("b-1"), Some("key-1")).await;
    assert_eq!(status, 200);
    let (status, again) = sandbox.post("/v1/payment_intents", intent_request("b-1"), Some("key-1")).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));
    let (status, other) = sandbox.post("/v1/payment_intents", intent_request("b-2"), Some("key-1")).await;
    assert_eq!((status, &other["error"]["type"]), (422, &json!("idempotency_error")));
    let (status, fresh) = sandbox.post("/v1/payment_intents", intent_request("b-1"), Some("key-2")).await;
    assert_eq!(status, 200);
    assert_ne!(fresh["id"], first["id"]);
    sandbox.stop().await;
}

#[tokio::test]
async fn a_paid_intent_is_never_charged_twice() {
    let sandbox = start(config(vec![])).await;
    let intent = sandbox.create("b-twice").await;
    let id = intent["id"].as_str().unwrap();
    assert_eq!(sandbox.confirm(id, "4242424242424242").await.0, 200);
    let (status, error) = sandbox.confirm(id, "4242424242424242").await;
    assert_eq!((status, &error["error"]["code"]), (409, &json!("payment_intent_unexpected_state")));
    assert_eq!(sandbox.confirm("pi_nope", "4242424242424242").await.0, 404);
    sandbox.stop().await;
}

#[tokio::test]
async fn a_refund_is_signalled_and_listed() {
    let (url, mut hooks) = receiver(&[]).await;
    let sandbox = start(config(vec![url])).await;
    let intent = sandbox.create("b-refund").await;
    let id = intent["id"].as_str().unwrap();
    let (status, _) = sandbox.post("/v1/refunds", json!({"paymentIntent": id}), None).await;
    assert_eq!(status, 409, "nothing to refund before the payment");
    sandbox.confirm(id, "4242424242424242").await;

    let (status, refund) = sandbox.post("/v1/refunds", json!({"paymentIntent": id}), Some("refund-1")).await;
    assert_eq!((status, &refund["status"], &refund["amount"]), (200, &json!("succeeded"), &json!(2_500)));
    assert!(refund["id"].as_str().unwrap().starts_with("re_"));
    assert_eq!((&refund["object"], &refund["paymentIntent"]), (&json!("refund"), &json!(id)));
    let hook = hook_of(&mut hooks, "charge.refunded").await;
    verify(&hook);
    assert_eq!(hook.event()["data"]["object"]["id"], refund["id"]);

    let (status, again) = sandbox.post("/v1/refunds", json!({"paymentIntent": id}), Some("refund-1")).await;
    assert_eq!((status, &again["id"]), (200, &refund["id"]));
    let (status, twice) = sandbox.post("/v1/refunds", json!({"paymentIntent": id}), None).await;
    assert_eq!((status, &twice["error"]["code"]), (409, &json!("charge_already_refunded")));

    let (status, listed) = sandbox.get(&format!("/v1/refunds?paymentIntent={id}")).await;
    assert_eq!((status, &listed["data"]), (200, &json!([refund])));
    let (_, refunded) = sandbox.get(&format!("/v1/payment_intents/{id}")).await;
    assert_eq!(refunded["amountRefunded"], 2_500);
    let (status, dashboard) = sandbox.page(sandbox.http.get(&sandbox.base)).await;
    assert_eq!(status, 200);
    assert!(dashboard.contains(refund["id"].as_str().unwrap()), "the dashboard shows the refund");
    sandbox.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_on_the_third_attempt() {
    let (url, mut hooks) = receiver(&[500, 500]).await;
    let sandbox = start(config(vec![url])).await;
    let intent = sandbox.create("b-retry").await;
    sandbox.confirm(intent["id"].as_str().unwrap(), "4242424242424242").await;
    let answers: Vec<(u16, Value)> = {
        let mut answers = Vec::new();
        for _ in 0..3 {
            let hook = next_hook(&mut hooks).await;
            verify(&hook);
            answers.push((hook.answered, hook.event()["id"].clone()));
        }
        answers
    };
    assert_eq!(answers.iter().map(|(status, _)| *status).collect::<Vec<_>>(), [500, 500, 200]);
    assert!(answers.iter().all(|(_, id)| *id == answers[0].1), "one event, three attempts");
    let event = sandbox.event(answers[0].1.as_str().unwrap()).await;
    assert_eq!(
        (&event["attemptsTotal"], &event["delivered"], &event["failed"]),
        (&json!(3), &json!(true), &json!(false))
    );
    assert_eq!(event["deliveryAttempts"][0]["status"], 500);
    sandbox.stop().await;
}

#[tokio::test]
async fn a_url_that_fails_is_skipped_for_the_next() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/webhooks", closed.local_addr().unwrap());
    drop(closed);
    let (url, mut hooks) = receiver(&[]).await;
    let sandbox = start(config(vec![dead, url.clone()])).await;
    let intent = sandbox.create("b-failover").await;
    sandbox.confirm(intent["id"].as_str().unwrap(), "4242424242424242").await;
    let hook = hook_of(&mut hooks, "payment_intent.succeeded").await;
    let event = sandbox.event(hook.event()["id"].as_str().unwrap()).await;
    assert_eq!(event["attemptsTotal"], 2);
    assert_eq!(event["deliveryAttempts"][1]["url"], url);
    let refused = event["deliveryAttempts"][0]["error"].as_str().unwrap();
    assert!(refused.contains("refused"), "the attempt's error names its cause: {refused}");
    sandbox.stop().await;
}

#[tokio::test]
async fn with_duplicates_on_every_event_arrives_twice() {
    let (url, mut hooks) = receiver(&[]).await;
    let sandbox = start(SandboxConfig { duplicate_per_mille: 1000, ..config(vec![url]) }).await;
    let intent = sandbox.create("b-dup").await;
    sandbox.confirm(intent["id"].as_str().unwrap(), "4242424242424242").await;
    let first = next_hook(&mut hooks).await;
    let second = next_hook(&mut hooks).await;
    verify(&second);
    assert_eq!(first.event()["id"], second.event()["id"]);
    let event = sandbox.event(first.event()["id"].as_str().unwrap()).await;
    assert_eq!(event["deliveries"], 2);
    sandbox.stop().await;
}

#[tokio::test]
async fn the_api_wants_the_api_key() {
    let sandbox = start(config(vec![])).await;
    let url = format!("{}/v1/payment_intents", sandbox.base);
    let body = intent_request("b-auth");
    let requests = [
        sandbox.http.post(&url).json(&body),
        sandbox.http.post(&url).bearer_auth("sk_wrong").json(&body),
        sandbox.http.post(&url).basic_auth(API_KEY, None::<&str>).json(&body),
        sandbox.http.get(format!("{}/v1/events", sandbox.base)),
        sandbox.http.get(format!("{}/v1/payment_intents/pi_x", sandbox.base)),
    ];
    for request in requests {
        let (status, error) = sandbox.send(request).await;
        assert_eq!((status, &error["error"]["type"]), (401, &json!("authentication_error")));
    }
    sandbox.stop().await;
}

#[tokio::test]
async fn bad_requests_are_json_errors() {
    let sandbox = start(config(vec![])).await;
    let url = format!("{}/v1/payment_intents", sandbox.base);
    let raw = |body: &str| {
        sandbox.http.post(&url).bearer_auth(API_KEY).header("content-type", "application/json").body(body.to_string())
    };
    let big = format!("{{\"bookingId\": \"{}\"}}", "x".repeat(70_000));
    let cases = [
        (raw("{\"amount\": 10,"), 400),
        (raw("not json"), 400),
        (raw("{\"amount\": 10, \"currency\": \"usd\"}"), 400),
        (raw("{\"amount\": -1, \"currency\": \"usd\", \"bookingId\": \"b\"}"), 400),
        (raw("{\"amount\": 0, \"currency\": \"usd\", \"bookingId\": \"b\"}"), 400),
        (raw("{\"amount\": 1, \"currency\": \"usd\", \"bookingId\": \"b\", \"extra\": 1}"), 400),
        (raw(&big), 413),
        (sandbox.http.delete(&url).bearer_auth(API_KEY), 405),
        (sandbox.http.get(format!("{}/v1/nothing", sandbox.base)), 404),
    ];
    for (request, expected) in cases {
        let (status, error) = sandbox.send(request).await;
        assert_eq!(status, expected, "{error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    sandbox.stop().await;
}

#[tokio::test]
async fn the_checkout_page_takes_a_card() {
    let (url, mut hooks) = receiver(&[]).await;
    let sandbox = start(config(vec![url])).await;
    let intent = sandbox.create("<b&1>").await;
    let checkout = intent["checkoutUrl"].as_str().unwrap();

    let (status, page) = sandbox.page(sandbox.http.get(checkout)).await;
    assert_eq!(status, 200);
    assert!(page.contains("25.00 USD") && page.contains("&lt;b&amp;1&gt;") && !page.contains("<b&1>"), "{page}");
    assert!(page.contains("value=\"4242 4242 4242 4242\""), "{page}");

    let form = |card: &str| {
        let body = format!("cardNumber={}", card.replace(' ', "+"));
        sandbox.http.post(checkout).header("content-type", "application/x-www-form-urlencoded").body(body)
    };
    let (status, declined) = sandbox.page(form("4000 0000 0000 0002")).await;
    assert_eq!(status, 200);
    assert!(declined.contains("declined") && declined.contains("Try another card"), "{declined}");
    let (status, paid) = sandbox.page(form("4242 4242 4242 4242")).await;
    assert_eq!(status, 200);
    assert!(paid.contains("Payment succeeded"), "{paid}");
    let id = intent["id"].as_str().unwrap();
    assert!(paid.contains(&format!("https://shop.test/done?payment_intent={id}")), "{paid}");
    hook_of(&mut hooks, "payment_intent.succeeded").await;
    let (status, _) = sandbox.page(form("4242 4242 4242 4242")).await;
    assert_eq!(status, 409, "never charged twice");
    let (status, _) = sandbox.page(sandbox.http.get(format!("{}/checkout/pi_nope", sandbox.base))).await;
    assert_eq!(status, 404);
    sandbox.stop().await;
}

#[tokio::test]
async fn serving_needs_the_secrets() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SandboxConfig { api_key: String::new(), ..config(vec![]) };
    assert!(serve(listener, config, std::future::pending()).await.is_err());
}

//! Bookings like a real shop: a hosted checkout, signed webhooks applied once in any order, late
//! payments confirmed or refunded, idempotent retries across a node's death, my bookings, best
//! available. Against real node processes and the sandbox provider as a process of its own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::{answer, checkout, signed_webhook, Cluster, Settings, StatusCode, WEBHOOK_SECRET};
use serde_json::{json, Value};

const GOOD: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";

fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fan_pays_on_the_hosted_checkout_and_the_webhook_confirms_the_booking() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = cluster.seed_event(20).await.unwrap()["id"].as_u64().unwrap();
    let base = cluster.url(2);
    let fan = cluster.fan(2, "shopper").await.unwrap();
    let held = fan.hold(&base, event, &[1, 2]).await.unwrap();
    assert_eq!(held.status, StatusCode::CREATED);
    let booking = held.body["bookingId"].as_str().unwrap().to_string();

    let started = fan.start_payment(&base, &booking, None).await.unwrap();
    assert_eq!(started.status, StatusCode::ACCEPTED, "{started:?}");
    assert_eq!(started.body["status"], "paymentPending");
    let checkout_url = started.body["checkoutUrl"].as_str().unwrap().to_string();

    // A declined card leaves the booking held and payable again.
    checkout(&cluster.http, &checkout_url, DECLINED).await.unwrap();
    let declined = fan.booking_when(&base, &booking, "held").await.unwrap();
    assert_eq!(declined.body["status"], "held", "{declined:?}");
    assert!(declined.body["lastPaymentError"].is_string(), "{declined:?}");

    let again = fan.start_payment(&base, &booking, None).await.unwrap();
    assert_eq!(again.body["checkoutUrl"], checkout_url.as_str(), "one payment per booking at the provider");
    checkout(&cluster.http, &checkout_url, GOOD).await.unwrap();
    let confirmed = fan.booking_when(&cluster.url(3), &booking, "confirmed").await.unwrap();
    assert_eq!(confirmed.body["status"], "confirmed", "{confirmed:?}");
    let payment = confirmed.body["paymentId"].as_str().unwrap();
    assert_eq!(cluster.payment(payment).await.unwrap()["status"], "succeeded");
    assert!(cluster.refunds(payment).await.unwrap().is_empty());

    let mine = answer(cluster.http.get(format!("{base}/me/bookings")).bearer_auth(&fan.token).send().await.unwrap())
        .await
        .unwrap();
    let bookings = mine.body["bookings"].as_array().unwrap();
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0]["bookingId"], booking.as_str());
    assert_eq!(bookings[0]["event"]["name"], "Test Night");
    assert_eq!(bookings[0]["status"], "confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_hold_expires_and_a_late_payment_confirms_or_is_refunded() {
    // A pending payment keeps the seats at most half a second past the hold.
    let settings =
        Settings { hold_ttl_ms: 1_500, gateway_extra: "payment_hold_extension_ms = 500".into(), ..Settings::default() };
    let cluster = Cluster::start(settings).await.unwrap();
    let event = cluster.seed_event(20).await.unwrap()["id"].as_u64().unwrap();
    let base = cluster.url(1);
    let (late, early, taker) = (
        cluster.fan(1, "late").await.unwrap(),
        cluster.fan(1, "early").await.unwrap(),
        cluster.fan(1, "taker").await.unwrap(),
    );

    // Abandoned: the hold ends and its tickets are free again.
    let abandoned = late.hold(&base, event, &[0]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert_eq!(
        late.booking(&base, abandoned.body["bookingId"].as_str().unwrap()).await.unwrap().body["status"],
        "expired"
    );
    assert_eq!(taker.hold(&base, event, &[0]).await.unwrap().status, StatusCode::CREATED);

    // Late but free: the payment confirms.
    let held = early.hold(&base, event, &[5]).await.unwrap();
    let booking = held.body["bookingId"].as_str().unwrap().to_string();
    let url =
        early.start_payment(&base, &booking, None).await.unwrap().body["checkoutUrl"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    checkout(&cluster.http, &url, GOOD).await.unwrap();
    assert_eq!(early.booking_when(&base, &booking, "confirmed").await.unwrap().body["status"], "confirmed");

    // Late and taken: the payment is refunded, and the provider shows the refund.
    let held = late.hold(&base, event, &[9]).await.unwrap();
    let booking = held.body["bookingId"].as_str().unwrap().to_string();
    let url =
        late.start_payment(&base, &booking, None).await.unwrap().body["checkoutUrl"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(
        taker.hold(&base, event, &[9]).await.unwrap().status,
        StatusCode::CREATED,
        "the ended hold frees the seat"
    );
    checkout(&cluster.http, &url, GOOD).await.unwrap();
    let refunded = late.booking_when(&base, &booking, "refunded").await.unwrap();
    assert_eq!(refunded.body["status"], "refunded", "{refunded:?}");
    let payment = refunded.body["paymentId"].as_str().unwrap();
    let refunds = cluster.refunds(payment).await.unwrap();
    assert_eq!(refunds.len(), 1, "refunded once: {refunds:?}");
    assert_eq!(
        cluster.payment(payment).await.unwrap()["amountRefunded"],
        cluster.payment(payment).await.unwrap()["amount"]
    );
}

/// A webhook as the sandbox would send it, for a payment and booking.
fn event(id: &str, kind: &str, payment: &str, booking: &str, status: &str) -> String {
    json!({"id": id, "object": "event", "type": kind, "created": now_s(), "data": {"object": {
        "id": payment, "object": "payment_intent", "amount": 5000, "currency": "usd", "bookingId": booking,
        "status": status, "checkoutUrl": "http://sandbox/checkout", "lastPaymentError":
        if status == "succeeded" { Value::Null } else { json!({"code": "card_declined", "message": "declined"}) },
        "amountRefunded": 0, "created": now_s()}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_apply_once_in_any_order_and_forged_or_stale_ones_are_refused() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event_id = cluster.seed_event(20).await.unwrap()["id"].as_u64().unwrap();
    let base = cluster.url(3);
    let fan = cluster.fan(3, "webhooked").await.unwrap();
    let booking = fan.hold(&base, event_id, &[3]).await.unwrap().body["bookingId"].as_str().unwrap().to_string();
    let payment =
        fan.start_payment(&base, &booking, None).await.unwrap().body["paymentId"].as_str().unwrap().to_string();
    let send = |body: String, signature: String| {
        let http = cluster.http.clone();
        let url = format!("{}/webhooks/payments", cluster.url(1));
        async move {
            let request = http
                .post(url)
                .header("content-type", "application/json")
                .header("sandbox-signature", signature)
                .body(body);
            answer(request.send().await.unwrap()).await.unwrap()
        }
    };
    let succeeded = event("evt_test_1", "payment_intent.succeeded", &payment, &booking, "succeeded");
    let failed = event("evt_test_0", "payment_intent.payment_failed", &payment, &booking, "requires_payment_method");

    // Forged and stale signatures are refused, and change nothing.
    let forged = send(succeeded.clone(), signed_webhook("not-the-secret", now_s(), &succeeded)).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{forged:?}");
    assert!(forged.is_problem());
    let stale = send(succeeded.clone(), signed_webhook(WEBHOOK_SECRET, now_s() - 3_600, &succeeded)).await;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST, "{stale:?}");
    let tampered =
        send(succeeded.replace("succeeded", "succeeded "), signed_webhook(WEBHOOK_SECRET, now_s(), &succeeded)).await;
    assert_eq!(tampered.status, StatusCode::BAD_REQUEST);
    assert_eq!(fan.booking(&base, &booking).await.unwrap().body["status"], "paymentPending");
    let logs = std::fs::read_to_string(cluster.dir().join("node1.log")).unwrap();
    assert!(logs.contains("webhook refused"), "refusals are logged");

    // The success, twice, then an older failure that arrives late: confirmed once, and stays so.
    // The second success finds the booking confirmed by its payment: a read, no write.
    for _ in 0..2 {
        let ok = send(succeeded.clone(), signed_webhook(WEBHOOK_SECRET, now_s(), &succeeded)).await;
        assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    }
    let metrics = cluster.metrics_text(1).await.unwrap();
    for line in [
        "boxoffice_success_webhooks_total{outcome=\"written\"} 1",
        "boxoffice_success_webhooks_total{outcome=\"settled_already\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in node 1's metrics:\n{metrics}");
    }
    let reordered = send(failed.clone(), signed_webhook(WEBHOOK_SECRET, now_s(), &failed)).await;
    assert_eq!(reordered.status, StatusCode::OK);
    let read = fan.booking(&base, &booking).await.unwrap();
    assert_eq!(read.body["status"], "confirmed", "{read:?}");
    assert!(read.body["lastPaymentError"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_the_node_died_mid_request_never_books_or_charges_twice() {
    let mut cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = cluster.seed_event(40).await.unwrap()["id"].as_u64().unwrap();
    let fan = cluster.fan(1, "retrier").await.unwrap();
    let bookings_url = format!("/events/{event}/bookings");

    // The hold: sent to node 2, which is killed while the request is in flight.
    let hold = {
        let (http, token, url) = (fan.http.clone(), fan.token.clone(), format!("{}{bookings_url}", cluster.url(2)));
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("idempotency-key", "hold-key-1")
                .json(&json!({"ticketIds": [7, 8]}))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    cluster.kill(2);
    let _ = hold.await;
    let mut first = None;
    for attempt in 0..50 {
        let retry = cluster
            .http
            .post(format!("{}{bookings_url}", cluster.url(1 + 2 * (attempt % 2))))
            .bearer_auth(&fan.token)
            .header("idempotency-key", "hold-key-1")
            .json(&json!({"ticketIds": [7, 8]}))
            .send()
            .await;
        if let Ok(response) = retry {
            let answer = answer(response).await.unwrap();
            if answer.status == StatusCode::CREATED {
                first = Some(answer);
                break;
            }
            assert!(answer.status.is_server_error(), "a retry with the same key is never refused: {answer:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = first.expect("the retried hold succeeds");
    let booking = first.body["bookingId"].as_str().unwrap().to_string();
    let again = answer(
        cluster
            .http
            .post(format!("{}{bookings_url}", cluster.url(3)))
            .bearer_auth(&fan.token)
            .header("idempotency-key", "hold-key-1")
            .json(&json!({"ticketIds": [7, 8]}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(again.body["bookingId"], booking.as_str(), "the same key gets the same booking");
    let other_body = answer(
        cluster
            .http
            .post(format!("{}{bookings_url}", cluster.url(3)))
            .bearer_auth(&fan.token)
            .header("idempotency-key", "hold-key-1")
            .json(&json!({"ticketIds": [9]}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY, "the same key with another body: {other_body:?}");

    // The payment: sent to node 3, which is killed while the request is in flight.
    cluster.restart(2).await.unwrap();
    cluster.wait_ready().await.unwrap();
    let pay = {
        let (http, token, url) =
            (fan.http.clone(), fan.token.clone(), format!("{}/bookings/{booking}/payment", cluster.url(3)));
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("idempotency-key", "pay-key-1")
                .json(&json!({"cardNumber": "4242424242424242"}))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    cluster.kill(3);
    let _ = pay.await;
    let mut paid = None;
    for _ in 0..50 {
        let retry = cluster
            .http
            .post(format!("{}/bookings/{booking}/payment", cluster.url(1)))
            .bearer_auth(&fan.token)
            .header("idempotency-key", "pay-key-1")
            .json(&json!({"cardNumber": "4242424242424242"}))
            .send()
            .await;
        if let Ok(response) = retry {
            let answer = answer(response).await.unwrap();
            if answer.status == StatusCode::OK {
                paid = Some(answer);
                break;
            }
            assert!(answer.status.is_server_error(), "a retried payment is never refused: {answer:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let paid = paid.expect("the retried payment succeeds");
    assert_eq!(paid.body["status"], "confirmed");
    let payment = paid.body["paymentId"].as_str().unwrap();
    assert_eq!(cluster.payment(payment).await.unwrap()["status"], "succeeded");
    assert!(cluster.refunds(payment).await.unwrap().is_empty(), "charged once, nothing to refund");

    let mine = answer(
        cluster.http.get(format!("{}/me/bookings", cluster.url(1))).bearer_auth(&fan.token).send().await.unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(mine.body["bookings"].as_array().unwrap().len(), 1, "one booking: {mine:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn best_available_and_per_fan_limits() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = cluster.seed_event(60).await.unwrap()["id"].as_u64().unwrap();
    let base = cluster.url(1);
    let fan = cluster.fan(1, "picky").await.unwrap();
    let best = |quantity: u32| {
        let (http, token, url) = (cluster.http.clone(), fan.token.clone(), format!("{base}/events/{event}/bookings"));
        async move {
            answer(http.post(url).bearer_auth(token).json(&json!({"quantity": quantity})).send().await.unwrap())
                .await
                .unwrap()
        }
    };
    let four = best(4).await;
    assert_eq!(four.status, StatusCode::CREATED, "{four:?}");
    let seats: Vec<u64> = four.body["tickets"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(seats, vec![0, 1, 2, 3], "the first four seats of the first row, side by side");
    assert_eq!(best(4).await.body["tickets"].as_array().unwrap()[0]["id"], 4);
    // Eight held: the ninth is over the fan's limit for the event.
    let over = best(1).await;
    assert_eq!(over.status, StatusCode::CONFLICT, "{over:?}");
    assert_eq!(over.body["ticketsPerFanMax"], 8);
}

/// Anyone can post a webhook: one with thousands of candidate signatures over a large body is
/// refused from its header alone, as fast as any other bad request (each candidate used to cost
/// an HMAC of the whole body: 5,000 of them over 60 KB took over 200 ms of a core).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_with_thousands_of_signatures_is_refused_without_hashing_them() {
    const CANDIDATES: usize = 5_000;
    const REQUESTS: usize = 20;
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let url = format!("{}/webhooks/payments", cluster.url(1));
    let body = format!("{{\"id\":\"evt_big\",\"padding\":\"{}\"}}", "x".repeat(60_000));
    let mut header = format!("t={}", now_s());
    for i in 0..CANDIDATES {
        header.push_str(&format!(",v1={i:064x}"));
    }
    let mut took = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let request = cluster
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("sandbox-signature", &header)
            .body(body.clone());
        let started = std::time::Instant::now();
        let refused = answer(request.send().await.unwrap()).await.unwrap();
        took.push(started.elapsed());
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{refused:?}");
        assert!(refused.is_problem(), "{refused:?}");
        assert!(refused.body["detail"].as_str().unwrap().contains("malformed"), "{refused:?}");
    }
    took.sort();
    let median = took[REQUESTS / 2];
    eprintln!("{CANDIDATES} candidate signatures: median {median:?}, slowest {:?}", took.last().unwrap());
    assert!(median < Duration::from_millis(10), "median {median:?} of {took:?}");
}

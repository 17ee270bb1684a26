//! `boxoffice dev`, the embedded default: three nodes, demo data, the web page and the API on
//! one port; stopped with SIGTERM and started again on the same folder, it keeps the data; and
//! its page in a real browser (`tests/clients/page_browser.py`).

use std::time::{Duration, Instant};

use harness::clients::{check, run_client};
use harness::dev::{signed_in_fan, Dev};
use serde_json::Value;

/// The demo event `boxoffice dev` puts behind the waiting room (the README names it).
const ROOM_EVENT: u64 = 1;
/// The demo's stadium event (50,672 seats).
const STADIUM_EVENT: u64 = 89;

/// Every upcoming event's id, once the API answers with at least `min` of them.
async fn event_ids(http: &reqwest::Client, base: &str, min: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(response) = http.get(format!("{base}/events?page=1&pageSize=100")).send().await {
            if let Ok(body) = response.json::<Value>().await {
                let ids: Vec<u64> =
                    body["events"].as_array().into_iter().flatten().filter_map(|e| e["id"].as_u64()).collect();
                if ids.len() >= min {
                    return ids;
                }
            }
        }
        assert!(Instant::now() < deadline, "the dev cluster did not serve {min} events within 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A fan signs up, holds two seats, pays on the sandbox provider's checkout page, and the
/// provider's webhook confirms the booking.
async fn buy_through_checkout(http: &reqwest::Client, base: &str, event: u64) {
    let (token, _) = signed_in_fan(http, base, "dev").await;
    let token = token.as_str();
    let hold = http
        .post(format!("{base}/events/{event}/bookings"))
        .bearer_auth(token)
        .json(&serde_json::json!({"quantity": 2}));
    let held: Value = hold.send().await.unwrap().json().await.unwrap();
    let booking = held["bookingId"].as_str().unwrap();
    let started =
        http.post(format!("{base}/bookings/{booking}/payment")).bearer_auth(token).json(&serde_json::json!({}));
    let started: Value = started.send().await.unwrap().json().await.unwrap();
    let checkout = started["checkoutUrl"].as_str().unwrap();
    let paid = http
        .post(checkout)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("cardNumber=4242424242424242");
    assert!(paid.send().await.unwrap().status().is_success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let read: Value = http
            .get(format!("{base}/bookings/{booking}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if read["status"] == "confirmed" {
            return;
        }
        assert!(Instant::now() < deadline, "the webhook did not confirm the booking: {read}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_demo_events_and_the_page_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let base = format!("http://{addr}");
    let (data, log) = (dir.path().join("data"), dir.path().join("dev.log"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();

    let dev = Dev::start(&addr, &data, &log);
    dev.wait_up(1).await;
    let first = event_ids(&http, &base, 50).await;
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("<html"), "the web page is served at /");
    let tickets: Value =
        http.get(format!("{base}/events/{}/tickets", first[0])).send().await.unwrap().json().await.unwrap();
    assert!(tickets["tickets"].as_array().is_some_and(|t| !t.is_empty()), "demo events have seat maps");
    // One demo event waits behind the room (its holds need an admission); the others sell as is.
    let room = http.get(format!("{base}/events/{ROOM_EVENT}/waiting-room")).send().await.unwrap();
    assert_eq!(room.status(), 200, "the demo's room event has a waiting room");
    let room: Value = room.json().await.unwrap();
    assert_eq!(room["enabled"], true, "the demo's waiting room is open: {room}");
    let plain = *first.iter().find(|id| **id != ROOM_EVENT).expect("a demo event without a room");
    buy_through_checkout(&http, &base, plain).await;
    dev.stop();

    let dev = Dev::start(&addr, &data, &log);
    dev.wait_up(2).await;
    let second = event_ids(&http, &base, 50).await;
    dev.stop();
    assert_eq!(first, second, "a second run on the same folder keeps the same events and loads none again");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("only partly loaded"), "the first run loaded the whole catalog");
}

/// The page of `boxoffice dev` in headless Chromium (`tests/clients/page_browser.py`): the
/// stadium's live map in two browsers, paying on the sandbox's checkout, axe-core's accessibility
/// checks, a phone's width, and the queue screen of the demo event behind the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_a_browser_watches_pays_queues_and_is_accessible() {
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let base = format!("http://{addr}");
    let (data, log) = (dir.path().join("data"), dir.path().join("dev.log"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let dev = Dev::start(&addr, &data, &log);
    dev.wait_up(1).await;
    let ids = event_ids(&http, &base, 50).await;
    assert!(ids.contains(&STADIUM_EVENT), "the demo has its stadium event");
    let mut args = vec![base.clone(), STADIUM_EVENT.to_string(), ROOM_EVENT.to_string()];
    for name in ["watcher-a", "watcher-b", "queued-c"] {
        let (token, id) = signed_in_fan(&http, &base, name).await;
        args.extend([token, id.to_string()]);
    }
    let lines = tokio::task::spawn_blocking(move || run_client("page_browser.py", &args)).await.unwrap();
    dev.stop();
    let seen = check(&lines, "seen");
    assert_eq!(seen["same_page"], true, "{seen}");
    assert!(seen["after_ms"].as_u64().unwrap() <= 1_000, "{seen}");
    assert!(check(&lines, "paid")["booking"].is_string());
    for page in ["axe_event", "axe_booking"] {
        assert_eq!(check(&lines, page)["serious"], serde_json::json!([]), "{page}");
    }
    assert!(check(&lines, "phone")["scroll_width"].as_u64().unwrap() <= 390);
    assert!(check(&lines, "queue")["url"].as_str().unwrap().ends_with(&format!("#/events/{ROOM_EVENT}")));
    assert_eq!(check(&lines, "done")["ok"], true);
}

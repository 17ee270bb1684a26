//! The waiting room spoken by clients that share no code with it, against real nodes: Python's
//! aioquic (written from `docs/waiting-room.md` alone) over native QUIC, and Debian's Chromium,
//! headless and driven by Playwright, over WebTransport and over the HTTP fallback.
//!
//! `scripts/setup-clients` installs the browser and a Python environment with both libraries;
//! a missing tool fails these tests, it never skips them.

use harness::clients::{check, run_client};
use harness::{Cluster, Settings};
use serde_json::{json, Value};

async fn queued_event(cluster: &Cluster, pow_bits: u8) -> u64 {
    let event = cluster.seed_event(40).await.unwrap();
    let id = event["id"].as_u64().unwrap();
    let settings = json!({"enabled": true, "ratePerMinute": 6000, "shoppingMax": 100, "powBits": pow_bits});
    cluster.admin_send(1, reqwest::Method::PUT, &format!("/admin/events/{id}/waiting-room"), settings).await.unwrap();
    wait_for_nodes(cluster, id).await;
    id
}

/// Waits until the room lists every node (each reports once a second).
async fn wait_for_nodes(cluster: &Cluster, event: u64) {
    let url = format!("{}/events/{event}/waiting-room", cluster.url(1));
    for _ in 0..100 {
        let info: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        if info["nodes"].as_array().is_some_and(|n| n.len() == 3) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the room of event {event} never listed three nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aioquic_client_joins_waits_and_is_admitted_from_the_written_protocol() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = queued_event(&cluster, 8).await;
    let other = queued_event(&cluster, 8).await;
    let fan = cluster.fan(1, "quic").await.unwrap();
    let lines = run_client("room_quic.py", &[cluster.url(1), event.to_string(), other.to_string(), fan.token.clone()]);
    assert_eq!(check(&lines, "wrong_answer")["code"], "bad_answer");
    assert_eq!(check(&lines, "hold_without_admission")["status"], 403);
    assert_eq!(check(&lines, "hold_with_admission")["status"], 201);
    assert_eq!(check(&lines, "resume_elsewhere")["same_admission"], true);
    assert_eq!(check(&lines, "rejoin_gets_the_same_ticket")["same"], true);
    assert_eq!(check(&lines, "forged_ticket")["code"], "bad_ticket");
    assert_eq!(check(&lines, "other_event")["code"], "wrong_event");
    assert_eq!(check(&lines, "done")["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headless_chromium_joins_over_webtransport_and_falls_back_to_server_sent_events() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = queued_event(&cluster, 8).await;
    let (first, second) = (cluster.fan(1, "browser").await.unwrap(), cluster.fan(2, "fallback").await.unwrap());
    let args = [
        cluster.url(1),
        event.to_string(),
        first.token.clone(),
        first.user.to_string(),
        second.token.clone(),
        second.user.to_string(),
    ];
    let lines = run_client("room_browser.py", &args);
    let webtransport = check(&lines, "webtransport");
    assert_eq!(webtransport["transport"], "webtransport", "{webtransport}");
    assert_eq!(webtransport["hold_status"], 201);
    let fallback = check(&lines, "fallback");
    assert_eq!(fallback["transport"], "sse", "{fallback}");
    assert_eq!(fallback["hold_status"], 201);
}

/// The live seat map in Chromium: a fan's hold shows on another fan's open page within a second,
/// without a reload (the page follows the seat stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headless_chromium_shows_another_fans_hold_live_on_the_seat_map() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let seats = 2_000;
    let event = cluster.seed_event(seats).await.unwrap()["id"].as_u64().unwrap();
    let (first, second) = (cluster.fan(1, "holder").await.unwrap(), cluster.fan(1, "watcher").await.unwrap());
    let args = [
        cluster.url(1),
        event.to_string(),
        seats.to_string(),
        first.token.clone(),
        first.user.to_string(),
        second.token.clone(),
        second.user.to_string(),
    ];
    let lines = run_client("seatmap_browser.py", &args);
    assert_eq!(check(&lines, "loaded")["available"], seats);
    let seen = check(&lines, "seen");
    assert_eq!(seen["same_page"], true, "{seen}");
    assert!(seen["after_ms"].as_u64().unwrap() <= 1_000, "{seen}");
    assert_eq!(check(&lines, "done")["ok"], true);
}

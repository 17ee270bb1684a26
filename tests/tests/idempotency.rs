//! An `Idempotency-Key` is remembered for its window and no longer: within it a retry through
//! any node gets the first answer and another request under the key is refused; after it the
//! group's leader has pruned the record through the log, and the same key is a new request.
//! Every replica ends with the same rows.

use std::time::{Duration, Instant};

use harness::fan::{answer, Answer};
use harness::{Cluster, Fan, Settings, StatusCode};
use serde_json::json;

const WINDOW_MS: u64 = 3_000;
const PRUNE_INTERVAL_MS: u64 = 200;
const INVENTORY_GROUPS: u32 = 4;

async fn keyed_hold(cluster: &Cluster, node: u64, fan: &Fan, event: u64, tickets: &[u32]) -> Answer {
    let response = cluster
        .http
        .post(format!("{}/events/{event}/bookings", cluster.url(node)))
        .bearer_auth(&fan.token)
        .header("idempotency-key", "the-key")
        .json(&json!({ "ticketIds": tickets }))
        .send()
        .await
        .unwrap();
    answer(response).await.unwrap()
}

/// The records the prunes of every node forgot, from their `/metrics`.
async fn pruned_records(cluster: &Cluster) -> u64 {
    let mut total = 0;
    for node in 1..=3 {
        let text = cluster.metrics_text(node).await.unwrap();
        let line = text.lines().find(|l| l.starts_with("boxoffice_remembered_records_pruned_total "));
        total += line.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).expect("the counter is rendered");
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_is_forgotten_after_its_window_and_then_is_a_new_request() {
    let gateway_extra = format!("idempotency_window_ms = {WINDOW_MS}\nprune_interval_ms = {PRUNE_INTERVAL_MS}\n");
    let settings = Settings { inventory_groups: INVENTORY_GROUPS, gateway_extra, ..Settings::default() };
    let cluster = Cluster::start(settings).await.unwrap();
    let event = cluster.seed_event(10).await.unwrap()["id"].as_u64().unwrap();
    let fan = cluster.fan(1, "retrier").await.unwrap();
    assert_eq!(pruned_records(&cluster).await, 0);

    let sent = Instant::now();
    let first = keyed_hold(&cluster, 1, &fan, event, &[1]).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let booking = first.body["bookingId"].as_str().unwrap().to_string();
    let retry = keyed_hold(&cluster, 2, &fan, event, &[1]).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{retry:?}");
    assert_eq!(retry.body["bookingId"], booking.as_str(), "a retry through another node gets the first booking");

    // Another request under the key is refused while the key is remembered, then made.
    let renewed = loop {
        let other = keyed_hold(&cluster, 3, &fan, event, &[2]).await;
        if other.status == StatusCode::CREATED {
            break other;
        }
        assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "{other:?}");
        assert!(other.is_problem());
        assert!(sent.elapsed() < Duration::from_millis(WINDOW_MS + 10_000), "the key is never forgotten");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The record was stamped after `sent` and forgotten only once its window had passed.
    assert!(sent.elapsed() >= Duration::from_millis(WINDOW_MS), "forgotten after {:?}", sent.elapsed());
    let second = renewed.body["bookingId"].as_str().unwrap().to_string();
    assert_ne!(second, booking, "a new booking");
    assert!(pruned_records(&cluster).await >= 1, "the record was removed by a prune");

    // The first booking is untouched, and the key now remembers the new answer.
    let held = fan.booking(&cluster.url(1), &booking).await.unwrap();
    assert_eq!(held.body["status"], "held", "{held:?}");
    let again = keyed_hold(&cluster, 1, &fan, event, &[2]).await;
    assert_eq!(again.body["bookingId"], second.as_str(), "{again:?}");
    let refused = keyed_hold(&cluster, 2, &fan, event, &[1]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{refused:?}");

    // Every replica of the event's group holds the same rows at the same applied index (a
    // prune may come between two reads: then they are read again).
    let group = model::group_for_new_event(event, INVENTORY_GROUPS);
    let mut digests = Vec::new();
    for _ in 0..10 {
        cluster.wait_all_caught_up(Duration::from_secs(10)).await.unwrap();
        digests.clear();
        for node in 1..=3 {
            let digest = cluster.admin_get(node, &format!("/admin/groups/{group}/digest")).await.unwrap();
            digests.push((digest["appliedIndex"].clone(), digest["digest"].clone()));
        }
        if digests.windows(2).all(|w| w[0].0 == w[1].0) {
            break;
        }
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "replicas differ: {digests:?}");
}

//! The live seat map on a real cluster: the immutable layout, the availability stream's
//! snapshot and deltas, resumes with `Last-Event-ID`, holds that end by time, and compression.

use std::time::Duration;

use harness::sse::{SseEvent, SseStream};
use harness::{Cluster, Settings, StatusCode};
use serde_json::Value;

/// Long enough for any delta of this file to reach a stream on a loaded test machine.
const DELTA_WITHIN: Duration = Duration::from_secs(10);

fn seats_of(delta: &Value, status: &str) -> Vec<u64> {
    delta[status].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect()
}

async fn next_delta(stream: &mut SseStream) -> SseEvent {
    let event = stream.next(DELTA_WITHIN).await.unwrap();
    assert_eq!(event.kind, "delta", "{event:?}");
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_stream_gets_exactly_the_deltas_it_missed() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = cluster.seed_event(40).await.unwrap()["id"].as_u64().unwrap();
    let (watched, writer) = (cluster.url(1), cluster.url(2));
    let fan = cluster.fan(2, "writer").await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{watched}/events/{event}/seats/stream");

    let mut stream = SseStream::open(&http, &url, None).await.unwrap();
    let snapshot = stream.next(DELTA_WITHIN).await.unwrap();
    assert_eq!(snapshot.kind, "snapshot", "a stream starts with every seat's status");
    let body = snapshot.json().unwrap();
    assert_eq!((body["seats"].as_u64(), body["availableCount"].as_u64()), (Some(40), Some(40)));
    assert_eq!(snapshot.id.as_deref(), body["version"].as_str(), "the event id is the version");

    assert_eq!(fan.hold(&writer, event, &[1, 2]).await.unwrap().status, StatusCode::CREATED);
    let first = next_delta(&mut stream).await;
    assert_eq!(seats_of(&first.json().unwrap(), "held"), vec![1, 2]);
    assert_eq!(first.json().unwrap()["availableCount"], 38);
    drop(stream);

    // Missed while away: two holds, made through another node's gateway.
    assert_eq!(fan.hold(&writer, event, &[3]).await.unwrap().status, StatusCode::CREATED);
    assert_eq!(fan.hold(&writer, event, &[4, 5]).await.unwrap().status, StatusCode::CREATED);
    let mut resumed = SseStream::open(&http, &url, first.id.as_deref()).await.unwrap();
    // The feed gathers changes within a quarter of a second into one delta: the two holds come
    // as one delta or two, and nothing but deltas.
    let mut missed: Vec<u64> = Vec::new();
    let mut last = Value::Null;
    while missed.len() < 3 {
        last = next_delta(&mut resumed).await.json().unwrap();
        missed.extend(seats_of(&last, "held"));
        assert!(seats_of(&last, "available").is_empty() && seats_of(&last, "sold").is_empty(), "{last}");
    }
    missed.sort_unstable();
    assert_eq!(missed, vec![3, 4, 5], "exactly the missed changes, and not the one seen before");
    assert_eq!(last["availableCount"], 35);
    assert!(resumed.next(Duration::from_millis(1_500)).await.is_err(), "nothing more than what was missed");

    let unknown = http.get(&url).header("last-event-id", "not-a-version").send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(unknown.headers()["content-type"], "application/problem+json");
    let mut too_old = SseStream::open(&http, &url, Some("0.0")).await.unwrap();
    let fresh = too_old.next(DELTA_WITHIN).await.unwrap();
    assert_eq!(fresh.kind, "snapshot", "from before the feed started: a snapshot instead");
    assert_eq!(fresh.json().unwrap()["availableCount"], 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_that_ends_by_time_shows_up_free_without_any_write() {
    let cluster = Cluster::start(Settings { hold_ttl_ms: 2_000, ..Settings::default() }).await.unwrap();
    let event = cluster.seed_event(10).await.unwrap()["id"].as_u64().unwrap();
    let fan = cluster.fan(1, "brief").await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/events/{event}/seats/stream", cluster.url(3));
    let mut stream = SseStream::open(&http, &url, None).await.unwrap();
    assert_eq!(stream.next(DELTA_WITHIN).await.unwrap().kind, "snapshot");

    assert_eq!(fan.hold(&cluster.url(1), event, &[7]).await.unwrap().status, StatusCode::CREATED);
    assert_eq!(seats_of(&next_delta(&mut stream).await.json().unwrap(), "held"), vec![7]);
    let ended = next_delta(&mut stream).await.json().unwrap();
    assert_eq!(seats_of(&ended, "available"), vec![7], "the hold's end is told: {ended}");
    assert_eq!(ended["availableCount"], 10);
    let snapshot: Value =
        http.get(format!("{}/events/{event}/seats", cluster.url(2))).send().await.unwrap().json().await.unwrap();
    assert_eq!(snapshot["availableCount"], 10, "another gateway agrees");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_layout_is_immutable_and_large_answers_are_compressed() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = cluster.seed_event(2_000).await.unwrap()["id"].as_u64().unwrap();
    // Without automatic decompression, to see the encodings on the wire.
    let http = reqwest::Client::builder().no_gzip().no_brotli().build().unwrap();
    let url = format!("{}/events/{event}/layout", cluster.url(1));

    let plain = http.get(&url).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(plain.headers()["cache-control"], "public, max-age=31536000, immutable");
    let etag = plain.headers()["etag"].to_str().unwrap().to_string();
    assert!(plain.headers().get("content-encoding").is_none(), "no encoding unless asked for");
    let layout: Value = plain.json().await.unwrap();
    assert_eq!(layout["seats"], 2_000);
    let first_row = &layout["sections"][0]["rows"][0]["seats"][0];
    assert!(first_row[0].is_string() && first_row[1].is_number(), "a seat is [number, x, y]: {first_row}");

    let again = http.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "a cached layout is revalidated for free");

    for (asked, expected) in [("br", "br"), ("gzip", "gzip"), ("gzip, deflate, br", "br")] {
        let answer = http.get(&url).header("accept-encoding", asked).send().await.unwrap();
        assert_eq!(answer.headers()["content-encoding"], expected, "asked {asked}");
    }
    let tickets = format!("{}/events/{event}/tickets", cluster.url(2));
    let compressed = http.get(&tickets).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(compressed.headers()["content-encoding"], "gzip", "the full tickets list too");
    // The page's modules and styles: served as written, revalidated by entity tag, compressed.
    let script =
        http.get(format!("{}/app/main.js", cluster.url(1))).header("accept-encoding", "br").send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let tag = script.headers()["etag"].to_str().unwrap().to_string();
    let again = http.get(format!("{}/app/main.js", cluster.url(2))).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "every node serves the same file");
    let missing = http.get(format!("{}/app/nope.js", cluster.url(1))).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    let stream = format!("{}/events/{event}/seats/stream", cluster.url(3));
    let live = http.get(&stream).header("accept-encoding", "gzip, br").send().await.unwrap();
    assert!(live.headers().get("content-encoding").is_none(), "an event stream is sent as it happens");
}

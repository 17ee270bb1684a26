//! Search over real node processes: typos and prefixes, dates, filters, availability, facets and
//! pages; a new event searchable within a second; complete results with a node down, and a
//! restarted node's index catching up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{answer, Cluster, Settings, StatusCode};
use serde_json::{json, Value};

struct Catalog {
    eras: u64,
    encore: u64,
    jazz: u64,
    comedy: u64,
}

async fn venue(cluster: &Cluster, name: &str, city: &str, seats: usize) -> u64 {
    let seats: Vec<Value> = (0..seats).map(|n| json!({"number": (n + 1).to_string(), "x": n, "y": 0})).collect();
    let map = json!({"sections": [{"name": "Floor", "priceCents": 5000, "rows": [{"name": "A", "seats": seats}]}]});
    let body = json!({"name": name, "address": "1 Quay", "city": city, "seatMap": map});
    cluster.admin(1, "/admin/venues", body).await.unwrap()["id"].as_u64().unwrap()
}

async fn performer(cluster: &Cluster, name: &str, genre: &str) -> u64 {
    let body = json!({"name": name, "description": "", "genre": genre});
    cluster.admin(1, "/admin/performers", body).await.unwrap()["id"].as_u64().unwrap()
}

async fn event(cluster: &Cluster, name: &str, category: &str, starts_at: &str, venue: u64, performers: &[u64]) -> u64 {
    let body = json!({"name": name, "description": "a night out", "category": category, "startsAt": starts_at,
                      "venueId": venue, "performerIds": performers});
    cluster.admin(1, "/admin/events", body).await.unwrap()["id"].as_u64().unwrap()
}

async fn catalog(cluster: &Cluster) -> Catalog {
    let arena = venue(cluster, "Harbor Arena", "Oslo", 20).await;
    let club = venue(cluster, "Lantern Club", "Bergen", 2).await;
    let taylor = performer(cluster, "Taylor Swift", "pop").await;
    let owls = performer(cluster, "The Night Owls", "jazz").await;
    Catalog {
        eras: event(cluster, "Eras Tour", "concert", "2030-06-01T19:00:00Z", arena, &[taylor]).await,
        encore: event(cluster, "Eras Tour Encore", "concert", "2030-07-01T19:00:00Z", arena, &[taylor]).await,
        jazz: event(cluster, "Late Jazz", "concert", "2030-06-15T21:00:00Z", club, &[owls]).await,
        comedy: event(cluster, "Comedy Hour", "comedy", "2030-08-01T20:00:00Z", club, &[]).await,
    }
}

/// `GET /events/search?{query}` through node `id`: the ids found, in order, and the whole body.
async fn search(cluster: &Cluster, id: u64, query: &str) -> (Vec<u64>, Value) {
    let response = cluster.http.get(format!("{}/events/search?{query}", cluster.url(id))).send().await.unwrap();
    let answer = answer(response).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "search {query}: {answer:?}");
    let ids = answer.body["events"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    (ids, answer.body)
}

/// Searches until the ids found are `want` (in any order), for at most `within`.
async fn search_until(cluster: &Cluster, id: u64, query: &str, want: &[u64], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (mut ids, _) = search(cluster, id, query).await;
        ids.sort_unstable();
        let mut want = want.to_vec();
        want.sort_unstable();
        if ids == want {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "search {query} on node {id}: {ids:?}, expected {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sorted(mut ids: Vec<u64>) -> Vec<u64> {
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_forgives_typos_and_filters_by_date_place_kind_and_availability() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let c = catalog(&cluster).await;
    // Each node answers from its own shard, which indexes the log as it applies it: the exact
    // answers below ask every node, so every node must have indexed the catalog first.
    for node in 1..=3 {
        search_until(&cluster, node, "pageSize=10", &[c.eras, c.encore, c.jazz, c.comedy], Duration::from_secs(5))
            .await;
    }

    let (ids, body) = search(&cluster, 2, "keyword=Tayler%20Swift").await;
    assert_eq!(sorted(ids), sorted(vec![c.eras, c.encore]), "a typo is forgiven");
    assert_eq!(body["total"], 2);
    assert_eq!(sorted(search(&cluster, 3, "keyword=taylo").await.0), sorted(vec![c.eras, c.encore]), "a prefix");
    assert_eq!(search(&cluster, 1, "keyword=jaz").await.0, vec![c.jazz], "a prefix of a word in a name");
    assert_eq!(search(&cluster, 1, "keyword=eras%20encore").await.0, vec![c.encore], "every word must match");
    let (ids, _) = search(&cluster, 1, "start=2030-06-10&end=2030-07-31&sort=date").await;
    assert_eq!(ids, vec![c.jazz, c.encore], "a date range, earliest first");
    assert_eq!(sorted(search(&cluster, 2, "city=bergen").await.0), sorted(vec![c.jazz, c.comedy]));
    assert_eq!(search(&cluster, 2, "category=Comedy").await.0, vec![c.comedy]);
    assert_eq!(sorted(search(&cluster, 2, "performer=taylor%20swift").await.0), sorted(vec![c.eras, c.encore]));
    assert_eq!(sorted(search(&cluster, 2, "venue=Lantern%20Club&category=concert").await.0), vec![c.jazz]);
    let (_, body) = search(&cluster, 3, "").await;
    assert_eq!(
        body["facets"]["categories"],
        json!([{"value": "concert", "count": 3}, {"value": "comedy", "count": 1}])
    );
    assert_eq!(body["facets"]["cities"], json!([{"value": "Bergen", "count": 2}, {"value": "Oslo", "count": 2}]));

    // Pages, by date.
    let mut pages = Vec::new();
    for page in 1..=5 {
        let (ids, body) = search(&cluster, 1, &format!("sort=date&pageSize=1&page={page}")).await;
        assert_eq!(body["total"], 4);
        pages.extend(ids);
    }
    assert_eq!(pages, vec![c.eras, c.jazz, c.encore, c.comedy], "four pages of one, then an empty one");

    // Sell the comedy club out: it leaves "has tickets left" within seconds.
    let fan = cluster.fan(1, "laugher").await.unwrap();
    let held = fan.hold(&cluster.url(1), c.comedy, &[0, 1]).await.unwrap();
    let booking = held.body["bookingId"].as_str().unwrap();
    assert_eq!(fan.pay(&cluster.url(1), booking, "4242424242424242").await.unwrap().status, StatusCode::OK);
    let took = search_until(&cluster, 2, "available=false", &[c.comedy], Duration::from_secs(5)).await;
    eprintln!("a sold-out event left the available ones {} ms after its sale", took.as_millis());
    search_until(&cluster, 3, "available=true", &[c.eras, c.encore, c.jazz], Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_event_is_found_within_a_second_and_a_node_down_changes_nothing() {
    let mut cluster = Cluster::start(Settings::default()).await.unwrap();
    let c = catalog(&cluster).await;
    let all = [c.eras, c.encore, c.jazz, c.comedy];
    search_until(&cluster, 1, "pageSize=10", &all, Duration::from_secs(5)).await;

    let club = venue(&cluster, "Blue Door", "Trondheim", 10).await;
    let created = Instant::now();
    let fresh = event(&cluster, "Midnight Quartet", "concert", "2030-09-01T20:00:00Z", club, &[]).await;
    search_until(&cluster, 2, "keyword=midnight", &[fresh], Duration::from_secs(5)).await;
    let found = created.elapsed();
    eprintln!("an event created through the admin API was found by search {} ms later", found.as_millis());
    assert!(found < Duration::from_secs(1), "found after {found:?}");

    // A node down: every search still sees every event.
    cluster.kill(3);
    let mut everything = all.to_vec();
    everything.push(fresh);
    for node in [1, 2] {
        search_until(&cluster, node, "pageSize=10", &everything, Duration::from_secs(5)).await;
    }
    // An event made while node 3 is down, then node 3 back: its own index catches up, which it
    // must show alone, with the others gone.
    let late = event(&cluster, "Dawn Chorus", "family", "2030-10-01T10:00:00Z", club, &[]).await;
    everything.push(late);
    cluster.restart(3).await.unwrap();
    cluster.wait_caught_up(3, 1, Duration::from_secs(30)).await.unwrap();
    cluster.kill(1);
    cluster.kill(2);
    search_until(&cluster, 3, "pageSize=10", &everything, Duration::from_secs(10)).await;
}

/// A search cache that keeps answers for a minute still shows a new event within a second, on a
/// gateway other than the one that created it: the cache keys on how many events the node's
/// shard holds, so an answer cached before the event was indexed is not served after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_answer_does_not_hide_a_new_event_on_another_gateway() {
    let settings = Settings { gateway_extra: "search_cache_ttl_ms = 60000".into(), ..Settings::default() };
    let cluster = Cluster::start(settings).await.unwrap();
    let club = venue(&cluster, "Blue Door", "Trondheim", 10).await;
    let first = event(&cluster, "Morning Quartet", "concert", "2030-09-01T10:00:00Z", club, &[]).await;
    search_until(&cluster, 2, "keyword=quartet", &[first], Duration::from_secs(5)).await;
    let (cached, _) = search(&cluster, 2, "keyword=quartet").await;
    assert_eq!(cached, vec![first], "the answer node 2 now caches");

    let created = Instant::now();
    let fresh = event(&cluster, "Midnight Quartet", "concert", "2030-09-01T20:00:00Z", club, &[]).await;
    search_until(&cluster, 2, "keyword=quartet", &[first, fresh], Duration::from_secs(5)).await;
    let found = created.elapsed();
    eprintln!("found through another gateway's warm cache {} ms after it was created", found.as_millis());
    assert!(found < Duration::from_secs(1), "found after {found:?}");
}

/// Under a steady stream of holds (every apply of every group tells the indexer so), a new event
/// is still searchable within a second: the indexer commits on a clock, not when the stream
/// pauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_event_is_found_within_a_second_during_an_on_sale() {
    // One fan holds and releases over and over here: no per-fan limit.
    let settings = Settings { gateway_extra: "tickets_per_fan_max = 0".into(), ..Settings::default() };
    let cluster = Cluster::start(settings).await.unwrap();
    let c = catalog(&cluster).await;
    search_until(&cluster, 1, "pageSize=10", &[c.eras, c.encore, c.jazz, c.comedy], Duration::from_secs(5)).await;
    let fan = cluster.fan(1, "steady").await.unwrap();
    let selling = Arc::new(AtomicBool::new(true));
    let on_sale = {
        let (selling, base, event) = (selling.clone(), cluster.url(1), c.eras);
        tokio::spawn(async move {
            let mut holds = 0u32;
            while selling.load(Ordering::Relaxed) {
                let held = fan.hold(&base, event, &[0]).await.unwrap();
                assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
                fan.release(&base, held.body["bookingId"].as_str().unwrap()).await.unwrap();
                holds += 1;
            }
            holds
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let club = venue(&cluster, "Side Room", "Bergen", 10).await;
    let created = Instant::now();
    let fresh = event(&cluster, "Quokka Parade", "family", "2030-11-01T18:00:00Z", club, &[]).await;
    search_until(&cluster, 2, "keyword=quokka", &[fresh], Duration::from_secs(5)).await;
    let found = created.elapsed();
    selling.store(false, Ordering::Relaxed);
    let holds = on_sale.await.unwrap();
    eprintln!("found {} ms after it was created, during {holds} holds and releases", found.as_millis());
    assert!(holds > 10, "the on-sale kept going: {holds} holds");
    assert!(found < Duration::from_secs(1), "found after {found:?}");
}

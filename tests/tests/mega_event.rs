//! An event sold by several groups on a real cluster: holds go to the group of their tickets,
//! a hold across groups is refused, best available spreads fans over the groups, bookings are
//! paid and released through any node, and the seat stream, the listing, the operator's view
//! and the waiting room see one event.

use std::collections::BTreeSet;
use std::time::Duration;

use harness::sse::SseStream;
use harness::{Cluster, Settings, StatusCode};
use serde_json::{json, Value};

/// Four groups of the test cluster's four inventory groups, 20 seats (one row) each.
const GROUPS: u32 = 4;
const SEATS: usize = 80;
/// Long enough for any delta to reach a stream on a loaded test machine.
const DELTA_WITHIN: Duration = Duration::from_secs(10);

fn booking_id(answer: &harness::Answer) -> String {
    answer.body["bookingId"].as_str().unwrap_or_else(|| panic!("no booking id in {:?}", answer.body)).to_string()
}

fn tickets_of(answer: &harness::Answer) -> Vec<u64> {
    answer.body["tickets"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_over_four_groups_sells_as_one() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let page = cluster.seed_event_in(SEATS, Some(GROUPS)).await.unwrap();
    let event = page["id"].as_u64().unwrap();
    assert_eq!(page["ticketGroups"], json!([[0, 20], [20, 40], [40, 60], [60, 80]]), "{page}");
    let http = reqwest::Client::new();
    let stream_url = format!("{}/events/{event}/seats/stream", cluster.url(3));
    let mut stream = SseStream::open(&http, &stream_url, None).await.unwrap();
    assert_eq!(stream.next(DELTA_WITHIN).await.unwrap().kind, "snapshot");

    // Named seats: each hold goes to its group, through any node.
    let ann = cluster.fan(1, "ann").await.unwrap();
    let first = ann.hold(&cluster.url(1), event, &[5, 6]).await.unwrap();
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let last = ann.hold(&cluster.url(2), event, &[79]).await.unwrap();
    assert_eq!(last.status, StatusCode::CREATED, "{:?}", last.body);
    let across = ann.hold(&cluster.url(1), event, &[19, 20]).await.unwrap();
    assert_eq!(across.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(across.is_problem(), "{:?}", across.body);
    assert_eq!(across.body["ticketGroups"], json!([[0, 20], [20, 40]]), "{:?}", across.body);
    let taken = ann.hold(&cluster.url(3), event, &[6]).await.unwrap();
    assert_eq!(taken.status, StatusCode::CONFLICT, "a seat of another group is still one seat");

    // Best available: four fans, one price, four groups: each fan starts at a group of their own.
    let mut groups_used = BTreeSet::new();
    let mut best = Vec::new();
    for n in 0..4 {
        let fan = cluster.fan(2, format!("best{n}")).await.unwrap();
        let url = format!("{}/events/{event}/bookings", cluster.url(2));
        let response = fan.http.post(url).bearer_auth(&fan.token).json(&json!({"quantity": 2})).send().await.unwrap();
        let held = harness::answer(response).await.unwrap();
        assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
        let tickets = tickets_of(&held);
        assert_eq!(tickets.len(), 2);
        assert_eq!(tickets[0] / 20, tickets[1] / 20, "one group's seats: {tickets:?}");
        groups_used.insert(tickets[0] / 20);
        best.push((fan, booking_id(&held)));
    }
    assert_eq!(groups_used.len(), 4, "fans spread over the groups: {groups_used:?}");

    // Bookings of every group are found, paid and released through any node.
    let (payer, paid) = &best[1];
    let pay = payer.pay(&cluster.url(3), paid, "4242424242424242").await.unwrap();
    assert_eq!(pay.status, StatusCode::OK, "{:?}", pay.body);
    assert_eq!(payer.booking(&cluster.url(1), paid).await.unwrap().body["status"], "confirmed");
    let (releaser, released) = &best[2];
    assert_eq!(releaser.release(&cluster.url(1), released).await.unwrap().status, StatusCode::OK);
    assert_eq!(ann.booking(&cluster.url(3), &booking_id(&last)).await.unwrap().body["status"], "held");

    // The operator's view and the seat stream hold every group's seats.
    let state = cluster.admin_get(1, &format!("/admin/events/{event}/state")).await.unwrap();
    let rows = state["tickets"].as_array().unwrap().len();
    assert_eq!(rows, 2 + 1 + 3 * 2, "every group's rows, the released seats' gone: {state}");
    assert_eq!(state["bookings"].as_array().unwrap().len(), 6, "every group's bookings: {state}");
    // Changes within a quarter of a second come as one delta (a hold and its release as neither):
    // read until the stream counts what the groups hold.
    let mut held = BTreeSet::new();
    loop {
        let delta = stream.next(DELTA_WITHIN).await.unwrap();
        assert_eq!(delta.kind, "delta", "{delta:?}");
        assert_eq!(delta.id.as_deref().unwrap().split('.').count(), 3, "a version of several groups names its feed");
        let body = delta.json().unwrap();
        for status in ["held", "sold"] {
            held.extend(body[status].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()));
        }
        if body["availableCount"] == SEATS as u64 - 9 {
            break;
        }
    }
    assert!(held.contains(&5) && held.contains(&79), "the first group's seats and the last's: {held:?}");
    let snapshot = http.get(format!("{}/events/{event}/seats", cluster.url(3))).send().await.unwrap();
    let snapshot: Value = snapshot.json().await.unwrap();
    assert_eq!(snapshot["availableCount"], SEATS as u64 - 9, "11 held or sold, 2 released: {snapshot}");
    let elsewhere = http.get(format!("{}/events/{event}/seats", cluster.url(1))).send().await.unwrap();
    let elsewhere: Value = elsewhere.json().await.unwrap();
    assert_eq!(elsewhere["availableCount"], SEATS as u64 - 9, "another node's feed agrees");

    // Listed once; behind one waiting room, every group wants an admission.
    let listing: Value =
        http.get(format!("{}/events?pageSize=100", cluster.url(2))).send().await.unwrap().json().await.unwrap();
    let listed = listing["events"].as_array().unwrap().iter().filter(|e| e["id"] == event).count();
    assert_eq!(listed, 1, "{listing}");
    let path = format!("/admin/events/{event}/waiting-room");
    let room = cluster.admin_send(1, reqwest::Method::PUT, &path, json!({"enabled": true})).await.unwrap();
    assert_eq!(room["settings"]["enabled"], true, "{room}");
    for tickets in [[10], [30], [50], [70]] {
        let refused = ann.hold(&cluster.url(2), event, &tickets).await.unwrap();
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{tickets:?}: {:?}", refused.body);
        assert!(refused.body["type"].as_str().unwrap_or_default().ends_with("waiting-room"), "{:?}", refused.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_groups_than_the_cluster_or_the_venue_has_are_refused() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let too_many = cluster.seed_event_in(SEATS, Some(GROUPS + 1)).await.unwrap_err().to_string();
    assert!(too_many.contains("422") && too_many.contains("maxGroups"), "{too_many}");
    let rows = cluster.seed_event_in(40, Some(3)).await.unwrap_err().to_string();
    assert!(rows.contains("422") && rows.contains("whole rows"), "{rows}");
    let none = cluster.seed_event_in(40, Some(0)).await.unwrap_err().to_string();
    assert!(none.contains("422"), "{none}");
    let whole = cluster.seed_event_in(40, Some(1)).await.unwrap();
    assert_eq!(whole["ticketGroups"], json!([[0, 40]]));
}

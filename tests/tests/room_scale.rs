//! The waiting room's replicated state does not grow with its fans: a hundred thousand fans
//! joining a room write no more to the event's raft group than a thousand do. Each node writes
//! one report a second and the group's leader one tick, whatever the fans. And the hundred
//! thousand pre-sale places are a draw: the order fans joined in says nothing of their places.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use harness::room::{ranks, rfc3339, spearman};
use harness::{
    fan_token, get_room, join, put_room, room_info_when, Cluster, FanStream, Joined, Place, RoomClient, RoomError,
    RoomInfo, RoomNode, Secrets, Settings,
};
use serde_json::json;

/// Fans of the large run, and the connections that carry them (spread over the nodes).
const FANS: u64 = 100_000;
const CONNECTIONS: usize = 100;
/// Fans of the small run.
const SMALL_FANS: u64 = 1_000;
/// Joins in flight at once on one connection.
const JOINS_IN_FLIGHT_PER_CONNECTION: usize = 100;
/// Entries the group may write beyond one report per node and one tick a second (a room
/// configured, a beat's timing).
const ENTRIES_SLACK: f64 = 20.0;
/// How long the nodes may take to find a new room and report it.
const ROOM_LISTED_WITHIN: Duration = Duration::from_secs(20);
/// How long the room's counts may take to show every fan (reports come once a second).
const COUNTED_WITHIN: Duration = Duration::from_secs(20);
/// The most the rank correlation of join order and place may be in size over the large run's
/// pre-sale joins (a fair draw's has a standard deviation of 1/sqrt(n): 0.003 at 100,000).
const JOIN_PLACE_CORRELATION_MAX: f64 = 0.02;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The highest applied index any node reports, by group.
async fn applied(cluster: &Cluster) -> BTreeMap<u64, u64> {
    let mut applied = BTreeMap::new();
    for id in cluster.running() {
        for replica in cluster.replicas(id).await.unwrap() {
            let (group, index) = (replica["group"].as_u64().unwrap(), replica["appliedIndex"].as_u64().unwrap_or(0));
            let highest = applied.entry(group).or_insert(0);
            *highest = index.max(*highest);
        }
    }
    applied
}

fn growth(before: &BTreeMap<u64, u64>, after: &BTreeMap<u64, u64>) -> BTreeMap<u64, u64> {
    after.iter().map(|(group, index)| (*group, index - before.get(group).copied().unwrap_or(0))).collect()
}

/// Opens a pre-sale room on `event` (the on-sale an hour away, no proof of work) and waits until
/// every node lists it.
async fn presale_room(cluster: &Cluster, event: u64) -> RoomInfo {
    let settings = json!({"onSaleAt": rfc3339(now_ms() + 3_600_000), "powBits": 0});
    put_room(cluster, event, settings).await.unwrap();
    room_info_when(cluster, event, cluster.nodes.len(), ROOM_LISTED_WITHIN).await.unwrap()
}

/// `connections` connections spread over the room's nodes.
async fn connect(info: &RoomInfo, connections: usize) -> Vec<RoomClient> {
    let mut clients = Vec::with_capacity(connections);
    for i in 0..connections {
        clients.push(RoomClient::connect_to(&info.nodes[i % info.nodes.len()]).await.unwrap());
    }
    clients
}

/// A fan in line: its open stream (a fan waiting) and the connection of its own it joined again
/// on (if its first join went unanswered), its place, and when its ticket came.
type InLine = ((FanStream, Option<RoomClient>), Place, Instant);

/// Joins fans `first..first + fans` on `event`, spread over `clients`: the fans in line, and the
/// failures.
async fn join_all(
    clients: &[RoomClient],
    nodes: &[RoomNode],
    event: u64,
    first: u64,
    fans: u64,
) -> (Vec<InLine>, Vec<String>) {
    let exp = now_ms() + 3_600_000;
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(c, client)| {
            let (client, node) = (client.clone(), nodes[c % nodes.len()].clone());
            let uids: Vec<u64> =
                (first..first + fans).filter(|uid| (uid - first) as usize % clients.len() == c).collect();
            tokio::spawn(async move {
                stream::iter(uids)
                    .map(|uid| {
                        let (client, node) = (client.clone(), node.clone());
                        async move {
                            let token = fan_token(Secrets::HARNESS.cluster_secret, uid, exp);
                            // A fan whose join is not answered joins again, as a client would, on a
                            // connection of its own: it gets the same place (one place per fan).
                            let (fan, joined, own) = match join_on(&client, event, &token).await {
                                Err(RoomError::Timeout(_)) => {
                                    let own =
                                        RoomClient::connect_to(&node).await.map_err(|e| format!("fan {uid}: {e}"))?;
                                    let (fan, joined) =
                                        join_on(&own, event, &token).await.map_err(|e| format!("fan {uid}: {e}"))?;
                                    (fan, joined, Some(own))
                                }
                                joined => {
                                    let (fan, joined) = joined.map_err(|e| format!("fan {uid}: {e}"))?;
                                    (fan, joined, None)
                                }
                            };
                            Ok::<_, String>(((fan, own), joined.place, Instant::now()))
                        }
                    })
                    .buffer_unordered(JOINS_IN_FLIGHT_PER_CONNECTION)
                    .collect::<Vec<_>>()
                    .await
            })
        })
        .collect();
    let (mut streams, mut failures) = (Vec::new(), Vec::new());
    for task in tasks {
        for result in task.await.unwrap() {
            match result {
                Ok(fan) => streams.push(fan),
                Err(failure) => failures.push(failure),
            }
        }
    }
    (streams, failures)
}

/// Joins on a new stream of `client`.
async fn join_on(client: &RoomClient, event: u64, token: &str) -> Result<(FanStream, Joined), RoomError> {
    let mut fan = client.open_fan().await?;
    let joined = join(&mut fan, event, token).await?;
    Ok((fan, joined))
}

/// Waits until the room's counts show `fans` waiting.
async fn wait_counted(cluster: &Cluster, event: u64, fans: u64) {
    let deadline = Instant::now() + COUNTED_WITHIN;
    loop {
        let room = get_room(cluster, event).await.unwrap();
        if room["counts"]["waiting"].as_u64() == Some(fans) {
            return;
        }
        assert!(Instant::now() < deadline, "the room never counted {fans} fans waiting: {}", room["counts"]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicated_state_does_not_grow_with_fans() {
    let settings = Settings { room_extra: "joins_per_address_per_min = 0".into(), ..Settings::default() };
    let cluster = Cluster::start(settings).await.unwrap();
    let groups = cluster.settings.inventory_groups;
    let (large, small) = (cluster.seed_event(20).await.unwrap(), cluster.seed_event(20).await.unwrap());
    let (large, small) = (large["id"].as_u64().unwrap(), small["id"].as_u64().unwrap());
    let per_second = (1 + cluster.nodes.len()) as f64;

    // The large run: its window is as long as the joins take.
    let info = presale_room(&cluster, large).await;
    let clients = connect(&info, CONNECTIONS).await;
    let before = applied(&cluster).await;
    let started = Instant::now();
    let (streams, failures) = join_all(&clients, &info.nodes, large, 1, FANS).await;
    let window = started.elapsed();
    let large_growth = growth(&before, &applied(&cluster).await);
    let group = model::group_for_new_event(large, groups) as u64;
    println!(
        "{} joins in {window:?}: {:.0} joins per second; entries per group {large_growth:?} (event {large} in group {group})",
        streams.len(),
        streams.len() as f64 / window.as_secs_f64()
    );
    let again = streams.iter().filter(|((_, own), _, _)| own.is_some()).count();
    println!("{again} fans joined again on a connection of their own after an unanswered join");
    assert!(failures.is_empty(), "{} joins failed, e.g. {:?}", failures.len(), &failures[..failures.len().min(5)]);
    let bound = per_second * window.as_secs_f64() + ENTRIES_SLACK;
    assert!(
        large_growth[&group] as f64 <= bound,
        "{FANS} fans grew group {group}'s log by {} entries in {window:?}: over {bound:.0}",
        large_growth[&group]
    );
    let elsewhere: Vec<_> = large_growth.iter().filter(|(g, n)| **g != group && **n as f64 > ENTRIES_SLACK).collect();
    assert!(elsewhere.is_empty(), "the room wrote to groups other than its event's: {elsewhere:?}");
    wait_counted(&cluster, large, FANS).await;
    let by_join = ranks(&streams.iter().map(|(_, _, at)| *at).collect::<Vec<_>>());
    let by_place = ranks(&streams.iter().map(|(_, place, _)| *place).collect::<Vec<_>>());
    let rho = spearman(&by_join, &by_place);
    println!("rank correlation of join order and place over {} pre-sale joins: {rho:.5}", streams.len());
    assert!(
        rho.abs() < JOIN_PLACE_CORRELATION_MAX,
        "the order of {} pre-sale joins shows in their places: rho = {rho}",
        streams.len()
    );
    drop(streams);
    clients.iter().for_each(RoomClient::close);
    put_room(&cluster, large, json!({"enabled": false})).await.unwrap();

    // The small run, as long.
    let info = presale_room(&cluster, small).await;
    let clients = connect(&info, info.nodes.len()).await;
    let before = applied(&cluster).await;
    let started = Instant::now();
    let (streams, failures) = join_all(&clients, &info.nodes, small, FANS + 1, SMALL_FANS).await;
    assert!(failures.is_empty(), "{} joins failed, e.g. {:?}", failures.len(), &failures[..failures.len().min(5)]);
    tokio::time::sleep(window.saturating_sub(started.elapsed())).await;
    let small_growth = growth(&before, &applied(&cluster).await);
    let small_group = model::group_for_new_event(small, groups) as u64;
    println!("{} joins in a window of {:?}: entries per group {small_growth:?}", streams.len(), started.elapsed());
    wait_counted(&cluster, small, SMALL_FANS).await;
    let (large_entries, small_entries) = (large_growth[&group], small_growth[&small_group]);
    assert!(
        large_entries.abs_diff(small_entries) as f64 <= bound,
        "{FANS} fans wrote {large_entries} entries and {SMALL_FANS} fans {small_entries} in windows of {window:?}: \
         more apart than {bound:.0}"
    );
}

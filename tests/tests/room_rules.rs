//! The waiting room's rules, seen from outside by fans on real QUIC connections to a cluster of
//! real nodes: bots pay (proof of work, a join limit per address, one place per fan, no forged
//! or borrowed tickets), a hold needs the admission the room gave, and the line is a fair draw
//! before the on-sale and first come, first served after it.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::room::{ranks, solves, spearman, ClientMsg, ServerMsg};
use harness::{
    fan_token, get_room, hold_admitted, join, put_room, resume, room_info_when, wait_admitted, wait_clocks_in_step,
    Admission, AdmissionClaims, Cluster, FanStream, Joined, Placed, RoomClient, RoomError, RoomInfo, RoomPool, Secrets,
    Settings, StatusCode,
};
use serde_json::{json, Value};
use siphasher::sip::SipHasher24;
use tokio::sync::{Mutex, Semaphore};

/// One cluster at a time: the order and timing tests must not share two cores with another
/// cluster's start.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// How long the nodes may take to find a new room and report it.
const ROOM_LISTED_WITHIN: Duration = Duration::from_secs(20);
/// How long a test waits for an answer it expects.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a fan's token lasts in these tests.
const TOKEN_TTL_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn token(uid: u64) -> String {
    fan_token(Secrets::HARNESS.cluster_secret, uid, now_ms() + TOKEN_TTL_MS)
}

/// A new event of `seats` seats with a room of `settings`, once every node lists it.
async fn room_event(cluster: &Cluster, seats: usize, settings: Value) -> (u64, RoomInfo) {
    let event = cluster.seed_event(seats).await.unwrap()["id"].as_u64().unwrap();
    put_room(cluster, event, settings).await.unwrap();
    let info = room_info_when(cluster, event, cluster.nodes.len(), ROOM_LISTED_WITHIN).await.unwrap();
    (event, info)
}

/// One connection to each node's room.
async fn connect_each(info: &RoomInfo) -> BTreeMap<u64, RoomClient> {
    let mut clients = BTreeMap::new();
    for node in &info.nodes {
        clients.insert(node.node, RoomClient::connect_to(node).await.unwrap());
    }
    clients
}

/// The code of the refusal a result must be.
fn refusal<T: std::fmt::Debug>(result: Result<T, RoomError>) -> String {
    match result {
        Err(RoomError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Sends a hello and returns the node's answer.
async fn hello(fan: &mut FanStream, event: u64, token: &str, ticket: Option<&str>) -> ServerMsg {
    let hello = ClientMsg::Hello { event, token: token.into(), ticket: ticket.map(String::from) };
    fan.send(&hello).await.unwrap();
    fan.recv(ANSWER_TIMEOUT).await.unwrap()
}

/// A ticket with one character of its claims changed to another valid one.
fn forged(ticket: &str) -> String {
    let (start, end) = (ticket.find('.').unwrap() + 1, ticket.rfind('.').unwrap());
    let middle = (start + end) / 2;
    let mut bytes = ticket.as_bytes().to_vec();
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bots_pay() {
    let _serial = SERIAL.lock().await;
    let settings = Settings { room_extra: "joins_per_address_per_min = 5".into(), ..Settings::default() };
    let cluster = Cluster::start(settings).await.unwrap();
    let pre_sale = json!({"onSaleAt": harness::room::rfc3339(now_ms() + 3_600_000), "powBits": 8});
    let (event, info) = room_event(&cluster, 20, pre_sale.clone()).await;
    let (other_event, _) = room_event(&cluster, 20, pre_sale).await;
    let clients = connect_each(&info).await;
    let alice = token(101);

    // Proof of work: a wrong answer is refused and gives no place (a hello again is challenged).
    let mut fan = clients[&1].open_fan().await.unwrap();
    let ServerMsg::Challenge { challenge, bits } = hello(&mut fan, event, &alice, None).await else {
        panic!("a new fan is challenged first")
    };
    assert_eq!(bits, 8, "the room's difficulty");
    let wrong = (0..).find(|x| !solves(&challenge, *x, bits)).unwrap();
    fan.send(&ClientMsg::Join { challenge: challenge.clone(), answer: wrong }).await.unwrap();
    match fan.recv(ANSWER_TIMEOUT).await.unwrap() {
        ServerMsg::Error { code, .. } => assert_eq!(code, "bad_answer"),
        other => panic!("a wrong answer must be refused, got {other:?}"),
    }
    let again = hello(&mut fan, event, &alice, None).await;
    assert!(matches!(again, ServerMsg::Challenge { .. }), "no place after a wrong answer: {again:?}");
    let Joined { ticket, place, presale, .. } = join(&mut fan, event, &alice).await.unwrap();
    assert!(presale && place.class == 0, "{place:?}");

    // One place per fan: joining again, here or on another node, gives the same ticket.
    let mut twice = clients[&1].open_fan().await.unwrap();
    let same_node = join(&mut twice, event, &alice).await.unwrap();
    assert_eq!((same_node.ticket.as_str(), same_node.place), (ticket.as_str(), place), "same node, same place");
    let mut elsewhere = clients[&2].open_fan().await.unwrap();
    let other_node = join(&mut elsewhere, event, &alice).await.unwrap();
    assert_eq!((other_node.ticket.as_str(), other_node.place), (ticket.as_str(), place), "another node, same place");
    let mut resumed = clients[&3].open_fan().await.unwrap();
    assert_eq!(resume(&mut resumed, event, &alice, &ticket).await.unwrap().place, place, "a ticket resumes");

    // Forged and borrowed tickets.
    let mut fan = clients[&2].open_fan().await.unwrap();
    assert_eq!(refusal(resume(&mut fan, event, &alice, &forged(&ticket)).await), "bad_ticket");
    let mut fan = clients[&2].open_fan().await.unwrap();
    let other_events = join(&mut fan, other_event, &alice).await.unwrap();
    let mut fan = clients[&2].open_fan().await.unwrap();
    assert_eq!(refusal(resume(&mut fan, event, &alice, &other_events.ticket).await), "wrong_event");
    let mut fan = clients[&2].open_fan().await.unwrap();
    let bobs = join(&mut fan, event, &token(102)).await.unwrap();
    let mut fan = clients[&2].open_fan().await.unwrap();
    assert_eq!(refusal(resume(&mut fan, event, &alice, &bobs.ticket).await), "wrong_fan");

    // Tokens: signed with another secret, or expired.
    let mut fan = clients[&1].open_fan().await.unwrap();
    let forged_token = fan_token("not-the-cluster-secret-at-all", 101, now_ms() + TOKEN_TTL_MS);
    assert_eq!(refusal(join(&mut fan, event, &forged_token).await), "bad_token");
    let expired = fan_token(Secrets::HARNESS.cluster_secret, 101, now_ms() - 1);
    assert_eq!(refusal(join(&mut fan, event, &expired).await), "bad_token");

    // The join limit: node 3 has seen no join yet; five pass, the sixth within the minute not.
    for uid in 201..=205 {
        let mut fan = clients[&3].open_fan().await.unwrap();
        join(&mut fan, event, &token(uid)).await.unwrap_or_else(|e| panic!("join {uid} of five: {e}"));
    }
    let mut fan = clients[&3].open_fan().await.unwrap();
    assert_eq!(refusal(join(&mut fan, event, &token(206)).await), "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_need_the_admission_token() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let on_sale_now = json!({"ratePerMinute": 60_000, "shoppingMax": 100, "powBits": 4});
    let (event, info) = room_event(&cluster, 20, on_sale_now).await;
    let plain = cluster.seed_event(20).await.unwrap()["id"].as_u64().unwrap();
    let (ann, ben) = (cluster.fan(1, "ann").await.unwrap(), cluster.fan(2, "ben").await.unwrap());
    let base = cluster.url(2);

    let refused = hold_admitted(&ann, &base, event, &[0], None).await.unwrap();
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(refused.is_problem() && refused.content_type.starts_with("application/problem+json"), "{refused:?}");
    assert!(refused.body["type"].as_str().unwrap_or_default().ends_with("waiting-room"), "{refused:?}");
    assert!(refused.body["waitingRoom"]["join"].is_string(), "the problem says where to join: {refused:?}");

    wait_clocks_in_step(&cluster, event, Duration::from_secs(20)).await.unwrap();
    let pool = RoomPool::connect(&info).await.unwrap();
    let Placed { fan: mut stream, joined, .. } = pool.join_at(1, event, &ann.token).await.unwrap();
    assert!(!joined.presale && joined.place.class == 1, "on sale: {joined:?}");
    let admission = wait_admitted(&mut stream, Duration::from_secs(30)).await.unwrap();
    let claims = AdmissionClaims::read(&admission.token).expect("an admission token carries its claims");
    assert_eq!((claims.event, claims.user, claims.place), (event, ann.user, joined.place), "{claims:?}");
    assert_eq!(claims.expires_at, admission.expires_at);

    let held = hold_admitted(&ann, &base, event, &[0], Some(&admission.token)).await.unwrap();
    assert_eq!(held.status, StatusCode::CREATED, "{held:?}");
    let second = hold_admitted(&ann, &base, event, &[1], Some(&admission.token)).await.unwrap();
    assert_eq!(second.status, StatusCode::FORBIDDEN, "one booking per place: {second:?}");
    assert!(second.is_problem(), "{second:?}");
    let borrowed = hold_admitted(&ben, &base, event, &[2], Some(&admission.token)).await.unwrap();
    assert_eq!(borrowed.status, StatusCode::FORBIDDEN, "another fan's token: {borrowed:?}");
    assert!(borrowed.body["type"].as_str().unwrap_or_default().ends_with("waiting-room"), "{borrowed:?}");

    let free = hold_admitted(&ben, &base, plain, &[0], None).await.unwrap();
    assert_eq!(free.status, StatusCode::CREATED, "an event without a room needs no token: {free:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_room_admits_to_every_group_of_an_event() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    // Two groups of one row of 20 seats each: tickets 0..20 and 20..40.
    let event = cluster.seed_event_in(40, Some(2)).await.unwrap()["id"].as_u64().unwrap();
    put_room(&cluster, event, json!({"ratePerMinute": 60_000, "shoppingMax": 100, "powBits": 4})).await.unwrap();
    let info = room_info_when(&cluster, event, cluster.nodes.len(), ROOM_LISTED_WITHIN).await.unwrap();
    let ann = cluster.fan(1, "ann").await.unwrap();
    let base = cluster.url(3);
    for tickets in [[5], [25]] {
        let refused = hold_admitted(&ann, &base, event, &tickets, None).await.unwrap();
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "every group wants an admission: {refused:?}");
    }

    wait_clocks_in_step(&cluster, event, Duration::from_secs(20)).await.unwrap();
    let pool = RoomPool::connect(&info).await.unwrap();
    let Placed { fan: mut stream, .. } = pool.join_at(2, event, &ann.token).await.unwrap();
    let admission = wait_admitted(&mut stream, Duration::from_secs(30)).await.unwrap();
    let held = hold_admitted(&ann, &base, event, &[25], Some(&admission.token)).await.unwrap();
    assert_eq!(held.status, StatusCode::CREATED, "the second group takes the admission: {held:?}");
    let again = hold_admitted(&ann, &base, event, &[26], Some(&admission.token)).await.unwrap();
    assert_eq!(again.status, StatusCode::FORBIDDEN, "one booking a place in a group: {again:?}");
    let first = hold_admitted(&ann, &base, event, &[5], Some(&admission.token)).await.unwrap();
    assert_eq!(first.status, StatusCode::CREATED, "the first group keeps its own: {first:?}");
}

/// Fans joining before the on-sale.
const PRESALE_FANS: u64 = 2_000;
/// Connections to each node that carry them (a pool of one connection per node each).
const PRESALE_POOLS: usize = 2;
/// Joins in flight at once.
const JOINS_IN_FLIGHT_MAX: usize = 200;
/// How far ahead the on-sale is when the room is made.
const ON_SALE_AHEAD_MS: u64 = 8_000;
/// Fans joining after the on-sale, one every [`ONSALE_GAP_MS`].
const ONSALE_FANS: u64 = 20;
const ONSALE_GAP_MS: u64 = 120;
/// How far apart the admissions of one tick may arrive: each node gives them within 100 ms of
/// seeing the tick, and the test's fans read them on a busy machine.
const ADMISSION_SPREAD_MS: u64 = 500;

/// One fan's way through the room.
#[derive(Debug)]
struct Waited {
    uid: u64,
    /// The node that gave the place.
    placed_at: u64,
    /// The fan's rank among the joins, by when its ticket arrived.
    joined_rank: u64,
    joined: Joined,
    admission: Admission,
    /// When the admission arrived.
    admitted_at: Instant,
}

/// The pre-sale draw: SipHash-2-4 under the draw key of the event's and the fan's ids, big
/// endian.
fn draw(key: &[u8; 16], event: u64, fan: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&event.to_be_bytes());
    bytes[8..].copy_from_slice(&fan.to_be_bytes());
    let mut hasher = SipHasher24::new_with_key(key);
    hasher.write(&bytes);
    hasher.finish()
}

fn draw_key(room: &Value) -> [u8; 16] {
    let hex = room["drawKey"].as_str().unwrap_or_else(|| panic!("the draw key is revealed at the on-sale: {room}"));
    assert_eq!(hex.len(), 32, "{hex}");
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    key
}

/// Pairs of neighbours, in the order given, whose admission came at an earlier tick than the one
/// before (the tick's stamp is in the admission's end).
fn admitted_out_of_order(fans: &[&Waited]) -> Vec<(u64, u64)> {
    fans.windows(2)
        .filter(|w| w[1].admission.expires_at < w[0].admission.expires_at)
        .map(|w| (w[0].uid, w[1].uid))
        .collect()
}

/// Fans (in the order given) whose admission arrived more than [`ADMISSION_SPREAD_MS`] before
/// that of a fan before them.
fn admitted_before_a_fan_ahead(fans: &[&Waited]) -> Vec<(u64, u64)> {
    let spread = Duration::from_millis(ADMISSION_SPREAD_MS);
    let mut latest_ahead: Option<&Waited> = None;
    let mut early = Vec::new();
    for fan in fans {
        match latest_ahead {
            Some(ahead) if fan.admitted_at + spread < ahead.admitted_at => early.push((ahead.uid, fan.uid)),
            Some(ahead) if ahead.admitted_at >= fan.admitted_at => {}
            _ => latest_ahead = Some(fan),
        }
    }
    early
}

/// Joins `uid` at node `node` (or where it is sent) and waits for its admission until `until`.
async fn join_and_wait(
    pool: Arc<RoomPool>,
    node: u64,
    event: u64,
    uid: u64,
    joins: Arc<AtomicU64>,
    in_flight: Arc<Semaphore>,
    until: Instant,
) -> Result<Waited, String> {
    let permit = in_flight.acquire_owned().await.unwrap();
    let Placed { mut fan, joined, node: placed_at } =
        pool.join_at(node, event, &token(uid)).await.map_err(|e| format!("fan {uid} join at node {node}: {e}"))?;
    let joined_rank = joins.fetch_add(1, Ordering::SeqCst);
    drop(permit);
    let wait = until.saturating_duration_since(Instant::now());
    let admission = wait_admitted(&mut fan, wait).await.map_err(|e| format!("fan {uid} ({joined:?}) wait: {e}"))?;
    Ok(Waited { uid, placed_at, joined_rank, joined, admission, admitted_at: Instant::now() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presale_order_is_a_fair_draw_and_onsale_is_first_come() {
    let _serial = SERIAL.lock().await;
    let settings = Settings { room_extra: "joins_per_address_per_min = 0".into(), ..Settings::default() };
    let cluster = Cluster::start(settings).await.unwrap();
    // The admin API takes whole seconds.
    let on_sale_at = (now_ms() + ON_SALE_AHEAD_MS).div_ceil(1_000) * 1_000;
    let settings = json!({
        "onSaleAt": harness::room::rfc3339(on_sale_at),
        "ratePerMinute": 1_000_000,
        "shoppingMax": 10_000,
        "powBits": 0,
    });
    let (event, info) = room_event(&cluster, 20, settings).await;
    let mut pools = Vec::new();
    for _ in 0..PRESALE_POOLS {
        pools.push(Arc::new(RoomPool::connect(&info).await.unwrap()));
    }
    let nodes: Vec<u64> = info.nodes.iter().map(|n| n.node).collect();

    let (joins, in_flight) = (Arc::new(AtomicU64::new(0)), Arc::new(Semaphore::new(JOINS_IN_FLIGHT_MAX)));
    let until = Instant::now() + Duration::from_millis(on_sale_at.saturating_sub(now_ms()) + 30_000);
    let started = Instant::now();
    let tasks: Vec<_> = (0..PRESALE_FANS)
        .map(|i| {
            let (pool, node) = (pools[i as usize % PRESALE_POOLS].clone(), nodes[i as usize % nodes.len()]);
            tokio::spawn(join_and_wait(pool, node, event, 10_000 + i, joins.clone(), in_flight.clone(), until))
        })
        .collect();
    let mut fans = Vec::new();
    for task in tasks {
        fans.push(task.await.unwrap().unwrap_or_else(|e| panic!("{e}")));
    }
    println!("{PRESALE_FANS} pre-sale fans joined and were admitted in {:?}", started.elapsed());
    let late_joins: Vec<_> = fans.iter().filter(|f| !f.joined.presale).map(|f| f.uid).collect();
    assert!(late_joins.is_empty(), "every join came before the on-sale (too slow?): {} did not", late_joins.len());

    // The places are the draw the key revealed at the on-sale names.
    let room = get_room(&cluster, event).await.unwrap();
    let key = draw_key(&room);
    for fan in &fans {
        assert_eq!(fan.joined.place.class, 0, "a pre-sale place: {fan:?}");
        assert_eq!(fan.joined.place.primary, draw(&key, event, fan.uid), "the draw of fan {}", fan.uid);
    }
    let by_place = ranks(&fans.iter().map(|f| f.joined.place).collect::<Vec<_>>());
    let by_join: Vec<u64> = fans.iter().map(|f| f.joined_rank).collect();
    let rho = spearman(&by_join, &by_place);
    let by_arrival = ranks(&fans.iter().map(|f| f.admitted_at).collect::<Vec<_>>());
    let rho_arrival = spearman(&by_place, &by_arrival);
    println!(
        "pre-sale: spearman(join, place) = {rho:.4}; spearman(place, admission arrival) = {rho_arrival:.4}; \
         room counts {}",
        room["counts"]
    );
    assert!(rho.abs() < 0.1, "the draw does not follow the join order: rho = {rho}");

    // The watermark passes places in order: an admission's tick is never earlier than that of a
    // place before it.
    let mut in_place_order: Vec<&Waited> = fans.iter().collect();
    in_place_order.sort_by_key(|f| f.joined.place);
    let out_of_order = admitted_out_of_order(&in_place_order);
    assert!(
        out_of_order.is_empty(),
        "{} pre-sale fans were admitted at an earlier tick than the place before theirs (late admissions: {}), \
         e.g. {:?}",
        out_of_order.len(),
        room["counts"]["late"],
        &out_of_order[..out_of_order.len().min(5)]
    );

    let early = admitted_before_a_fan_ahead(&in_place_order);
    assert!(early.is_empty(), "pre-sale fans admitted before fans drawn ahead of them: {early:?}");
    let mut per_node: BTreeMap<u64, u64> = BTreeMap::new();
    fans.iter().for_each(|f| *per_node.entry(f.placed_at).or_default() += 1);
    let group = model::group_for_new_event(event, cluster.settings.inventory_groups) as u64;
    let leader = cluster.leader_of(group).await.unwrap();

    onsale_is_first_come(&cluster, event, pools[0].clone(), &nodes).await;
    // A late admission is for a fan whose place was passed while no node counted it (it was
    // away, or moved): these fans stayed connected to the node that placed them, so the ticks
    // must have passed each of them by a report that listed it.
    let late = get_room(&cluster, event).await.unwrap()["counts"]["late"].clone();
    assert_eq!(
        late, 0,
        "fans that never left were admitted late (passed by a tick that did not count them); pre-sale fans \
         per node {per_node:?}, group {group} led by node {leader}"
    );
}

/// Fans joining one after another at alternating nodes get places, and admissions, in that order.
async fn onsale_is_first_come(cluster: &Cluster, event: u64, pool: Arc<RoomPool>, nodes: &[u64]) {
    wait_clocks_in_step(cluster, event, Duration::from_secs(20)).await.unwrap();
    let (joins, in_flight) = (Arc::new(AtomicU64::new(0)), Arc::new(Semaphore::new(JOINS_IN_FLIGHT_MAX)));
    let until = Instant::now() + Duration::from_secs(40);
    let mut tasks = Vec::new();
    for i in 0..ONSALE_FANS {
        let node = nodes[i as usize % nodes.len()];
        let (joins, in_flight) = (joins.clone(), in_flight.clone());
        tasks.push(tokio::spawn(join_and_wait(pool.clone(), node, event, 50_000 + i, joins, in_flight, until)));
        tokio::time::sleep(Duration::from_millis(ONSALE_GAP_MS)).await;
    }
    let mut fans = Vec::new();
    for task in tasks {
        fans.push(task.await.unwrap().unwrap_or_else(|e| panic!("{e}")));
    }
    let places: Vec<_> = fans.iter().map(|f| (f.uid, f.joined.place)).collect();
    let homes: Vec<_> = fans.iter().map(|f| f.placed_at).collect();
    println!("on-sale fans were placed at nodes {homes:?}");
    println!("on-sale places in join order: {places:?}");
    assert!(fans.iter().all(|f| !f.joined.presale && f.joined.place.class == 1), "on-sale places: {places:?}");
    assert!(places.windows(2).all(|w| w[0].1 < w[1].1), "places follow the join order: {places:?}");
    let in_join_order: Vec<&Waited> = fans.iter().collect();
    let out_of_order = admitted_out_of_order(&in_join_order);
    assert!(out_of_order.is_empty(), "admitted at an earlier tick than a fan who joined before: {out_of_order:?}");
    let early = admitted_before_a_fan_ahead(&in_join_order);
    assert!(early.is_empty(), "admitted before a fan who joined earlier: {early:?}");
}

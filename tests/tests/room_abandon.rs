//! Fans who leave the waiting room, seen from outside on real QUIC connections to a cluster of
//! real nodes: a fan gone (its connection closed) for `abandon_ms` is passed over and counted as
//! abandoned, and the line behind it moves on, while the fans who stay connected keep their places
//! without a word; a fan whose place was passed while it was away is admitted if it
//! comes back while the place's admission window is open, and told its place lapsed after.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::room::{ServerMsg, REDIRECTS_MAX};
use harness::{
    fan_token, get_room, join, put_room, resume, room_info_when, wait_admitted, wait_clocks_in_step, AdmissionClaims,
    Cluster, FanStream, Joined, Place, RoomClient, RoomError, RoomInfo, RoomNode, Secrets, Settings,
};
use serde_json::{json, Value};
use tokio::sync::{watch, Mutex as AsyncMutex};

/// One cluster at a time: these tests time the room against the wall clock.
static SERIAL: AsyncMutex<()> = AsyncMutex::const_new(());

/// How long a fan may be gone before it is abandoned (the least the room takes).
const ABANDON_MS: u64 = 5_000;
/// How long an admission lasts (the least the room takes): the window a passed fan has to come
/// back in.
const ADMISSION_MS: u64 = 10_000;
/// How often a listening fan looks at whether it should stop.
const LISTEN_STEP: Duration = Duration::from_millis(200);
/// How long the nodes may take to find a new room and report it.
const ROOM_LISTED_WITHIN: Duration = Duration::from_secs(20);
/// How long a test waits for an answer or a count it expects.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the fans behind one who left may take to be admitted once the room moves: at 10 a
/// second the line of these tests passes in two ticks; the rest is slack for a loaded machine.
const LINE_MOVES_WITHIN: Duration = Duration::from_secs(6);
/// How long a fan's token lasts in these tests.
const TOKEN_TTL_MS: u64 = 3_600_000;
/// Messages kept of what one fan heard (a waiting fan gets a few a second at most).
const HEARD_PER_FAN_MAX: usize = 1_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn token(uid: u64) -> String {
    fan_token(Secrets::HARNESS.cluster_secret, uid, now_ms() + TOKEN_TTL_MS)
}

/// A cluster whose nodes do not limit joins per address (every fan here comes from 127.0.0.1).
async fn cluster() -> Cluster {
    let settings = Settings { room_extra: "joins_per_address_per_min = 0".into(), ..Settings::default() };
    Cluster::start(settings).await.unwrap()
}

/// A new event with a paused room on sale from now, short abandon and admission windows and no proof
/// of work, once every node lists it and their clocks are in step.
async fn paused_room(cluster: &Cluster) -> (u64, RoomInfo) {
    let event = cluster.seed_event(20).await.unwrap()["id"].as_u64().unwrap();
    let settings = json!({
        "ratePerMinute": 600,
        "shoppingMax": 1_000,
        "admissionMs": ADMISSION_MS,
        "abandonMs": ABANDON_MS,
        "powBits": 0,
        "paused": true,
    });
    put_room(cluster, event, settings).await.unwrap();
    let info = room_info_when(cluster, event, cluster.nodes.len(), ROOM_LISTED_WITHIN).await.unwrap();
    wait_clocks_in_step(cluster, event, ROOM_LISTED_WITHIN).await.unwrap();
    (event, info)
}

/// A fan on a connection of its own (so that it can leave alone), placed where the room sends it.
struct Alone {
    uid: u64,
    /// The node that gave the place.
    node: u64,
    client: RoomClient,
    fan: FanStream,
    joined: Joined,
}

/// Joins `uid` at node `start` on a new connection, following the room's redirects each on a new
/// connection too.
async fn join_alone(info: &RoomInfo, start: u64, event: u64, uid: u64) -> Alone {
    let mut node: RoomNode = info.node(start).expect("a listed node").clone();
    for _ in 0..=REDIRECTS_MAX {
        let client = RoomClient::connect_to(&node).await.unwrap();
        let mut fan = client.open_fan().await.unwrap();
        match join(&mut fan, event, &token(uid)).await {
            Ok(joined) => return Alone { uid, node: node.node, client, fan, joined },
            Err(RoomError::Redirected { nodes, .. }) => {
                client.close();
                node = nodes.first().expect("a redirect names a node").clone();
            }
            Err(error) => panic!("fan {uid} joining at node {}: {error}", node.node),
        }
    }
    panic!("fan {uid} was redirected more than {REDIRECTS_MAX} times")
}

/// `fans` fans joined one after another (alternating the node they start at), in place order.
async fn join_in_line(info: &RoomInfo, event: u64, first_uid: u64, fans: u64) -> Vec<Alone> {
    let mut line = Vec::new();
    for i in 0..fans {
        let start = info.nodes[i as usize % info.nodes.len()].node;
        line.push(join_alone(info, start, event, first_uid + i).await);
    }
    line.sort_by_key(|a| a.joined.place);
    let places: Vec<(u64, Place)> = line.iter().map(|a| (a.uid, a.joined.place)).collect();
    println!("the line, in place order: {places:?}");
    line
}

/// Leaves the room as a fan who closes the tab: ends its stream and its connection.
fn leave(alone: Alone) -> (u64, Joined, u64) {
    let Alone { uid, node, client, mut fan, joined } = alone;
    fan.finish();
    drop(fan);
    client.close();
    (uid, joined, node)
}

/// What one fan heard, with when each message arrived.
type Heard = Arc<Mutex<Vec<(Instant, ServerMsg)>>>;

/// Reads a fan's messages into `heard` until `stop` turns true or the stream ends. The fan sends
/// nothing: staying connected is what keeps its place.
async fn listen(mut fan: FanStream, heard: Heard, stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        match fan.recv(LISTEN_STEP).await {
            Ok(msg) => {
                let mut heard = heard.lock().unwrap();
                if heard.len() < HEARD_PER_FAN_MAX {
                    heard.push((Instant::now(), msg));
                }
            }
            Err(RoomError::Timeout(_)) => {}
            Err(_) => return,
        }
    }
}

/// When the fan's first admission arrived, and its token.
fn first_admission(heard: &Heard) -> Option<(Instant, String)> {
    heard.lock().unwrap().iter().find_map(|(at, msg)| match msg {
        ServerMsg::Admitted { admission_token, .. } => Some((*at, admission_token.clone())),
        _ => None,
    })
}

/// The fans who stay, listening; their logs in the same order.
fn listen_all(stay: Vec<Alone>, stop: &watch::Receiver<bool>) -> (Vec<(u64, Place, Heard)>, Vec<RoomClient>) {
    let mut logs = Vec::new();
    let mut clients = Vec::new();
    for Alone { uid, client, fan, joined, .. } in stay {
        let heard = Heard::default();
        tokio::spawn(listen(fan, heard.clone(), stop.clone()));
        logs.push((uid, joined.place, heard));
        clients.push(client);
    }
    (logs, clients)
}

/// The room's admin view once `check` holds of it, waiting at most [`ANSWER_TIMEOUT`].
async fn room_when(cluster: &Cluster, event: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        let room = get_room(cluster, event).await.unwrap();
        if check(&room) {
            return room;
        }
        assert!(Instant::now() < deadline, "the room never showed {what}: {room}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn watermark(room: &Value) -> Option<Place> {
    serde_json::from_value(room["watermark"].clone()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fan_who_left_is_passed_over_and_counted_and_the_line_moves_on() {
    let _serial = SERIAL.lock().await;
    let cluster = cluster().await;
    let (event, info) = paused_room(&cluster).await;
    let mut line = join_in_line(&info, event, 1_000, 20).await;
    let (stop_tx, stop) = watch::channel(false);
    let (gone_uid, gone, gone_node) = leave(line.remove(2));
    let (stay, _clients) = listen_all(line, &stop);
    println!("fan {gone_uid} (third in line, {:?}, at node {gone_node}) left", gone.place);

    tokio::time::sleep(Duration::from_millis(ABANDON_MS + 2_000)).await;
    let room = room_when(&cluster, event, "an abandoned fan", |r| r["counts"]["abandoned"].as_u64() >= Some(1)).await;
    println!("before the room moves: {}", room["counts"]);
    let resumed_at = Instant::now();
    put_room(&cluster, event, json!({"paused": false})).await.unwrap();

    let everyone = stay.len() as u64;
    let last_place = stay.last().map(|(_, place, _)| *place);
    room_when(&cluster, event, "the line passed", |r| watermark(r) >= last_place).await;
    // Admissions reach the fans within 100 ms of a tick; give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let mut late = Vec::new();
    for (uid, place, heard) in &stay {
        let admitted = first_admission(heard).map(|(at, _)| at.duration_since(resumed_at));
        println!("fan {uid} {place:?}: admitted {admitted:?} after the room moved");
        if admitted.is_none_or(|after| after > LINE_MOVES_WITHIN) {
            late.push((*uid, admitted));
        }
    }
    assert!(late.is_empty(), "fans not admitted within {LINE_MOVES_WITHIN:?} of the room moving: {late:?}");
    let room = get_room(&cluster, event).await.unwrap();
    let counts = &room["counts"];
    println!("after: {counts}, watermark {:?}", watermark(&room));
    assert!(watermark(&room) > Some(gone.place), "the line moved past the place of the fan who left: {room}");
    assert_eq!(counts["abandoned"].as_u64(), Some(1), "the fan who left, and only it, is abandoned: {counts}");
    assert_eq!(counts["admitted"].as_u64(), Some(everyone), "the fan who left is passed over, not admitted: {counts}");
    stop_tx.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fan_who_comes_back_while_the_window_is_open_is_admitted_and_after_it_is_told_it_lapsed() {
    let _serial = SERIAL.lock().await;
    let cluster = cluster().await;
    let (event, info) = paused_room(&cluster).await;
    let mut line = join_in_line(&info, event, 2_000, 10).await;
    let (stop_tx, stop) = watch::channel(false);
    let (late_uid, late_fan, late_node) = leave(line.remove(1));
    let (lapsed_uid, lapsed_fan, lapsed_node) = leave(line.remove(1));
    let (stay, _clients) = listen_all(line, &stop);
    println!("fans {late_uid} {:?} and {lapsed_uid} {:?} left", late_fan.place, lapsed_fan.place);

    // Away for longer than the room waits for them: the line passes their places.
    tokio::time::sleep(Duration::from_millis(ABANDON_MS + 1_000)).await;
    room_when(&cluster, event, "two abandoned fans", |r| r["counts"]["abandoned"].as_u64() >= Some(2)).await;
    put_room(&cluster, event, json!({"paused": false})).await.unwrap();
    let passed = room_when(&cluster, event, "both places passed", |r| watermark(r) >= Some(lapsed_fan.place)).await;
    let passed_at = Instant::now();
    println!("passed: {}", passed["watermark"]);

    // Back within the admission window, at another node: admitted, the window counted from the
    // pass.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let other = info.nodes.iter().find(|n| n.node != late_node).expect("another node");
    let client = RoomClient::connect_to(other).await.unwrap();
    let mut fan = client.open_fan().await.unwrap();
    let back_ms = now_ms();
    let resumed = resume(&mut fan, event, &token(late_uid), &late_fan.ticket).await.unwrap();
    assert_eq!(resumed.place, late_fan.place, "a ticket keeps its place");
    let admission = wait_admitted(&mut fan, ANSWER_TIMEOUT).await.unwrap_or_else(|e| {
        panic!("fan {late_uid}, back {:?} after its place was passed, was not admitted: {e}", passed_at.elapsed())
    });
    let claims = AdmissionClaims::read(&admission.token).expect("an admission token carries its claims");
    println!("fan {late_uid} came back at node {}: admitted until {}", other.node, claims.expires_at);
    assert_eq!((claims.event, claims.user, claims.place), (event, late_uid, late_fan.place), "{claims:?}");
    assert!(
        admission.expires_at < back_ms + ADMISSION_MS,
        "the admission window runs from the pass, not from the return: ends {} ms after the return",
        admission.expires_at.saturating_sub(back_ms)
    );

    // Back after the window closed: told so.
    tokio::time::sleep(
        (passed_at + Duration::from_millis(ADMISSION_MS + 2_000)).saturating_duration_since(Instant::now()),
    )
    .await;
    let at = info.node(lapsed_node).expect("the node that placed it");
    let client = RoomClient::connect_to(at).await.unwrap();
    let mut fan = client.open_fan().await.unwrap();
    let resumed = resume(&mut fan, event, &token(lapsed_uid), &lapsed_fan.ticket).await.unwrap();
    assert_eq!(resumed.place, lapsed_fan.place, "a ticket keeps its place");
    match fan.recv(ANSWER_TIMEOUT).await {
        Ok(ServerMsg::Lapsed { detail }) => {
            println!("fan {lapsed_uid}, back {:?} after the pass: lapsed ({detail})", passed_at.elapsed());
            assert!(!detail.trim().is_empty(), "a lapse says why");
        }
        other => panic!("fan {lapsed_uid}, back after its admission window, must be told it lapsed: {other:?}"),
    }

    let room = get_room(&cluster, event).await.unwrap();
    println!("after: {}", room["counts"]);
    assert!(room["counts"]["late"].as_u64() >= Some(1), "the fan who came back was admitted late: {room}");
    let admitted: Vec<u64> = stay.iter().filter(|(_, _, h)| first_admission(h).is_some()).map(|(u, _, _)| *u).collect();
    assert_eq!(admitted.len(), stay.len(), "every fan who stayed was admitted: only {admitted:?}");
    stop_tx.send(true).unwrap();
}

//! Fans far back in line are parked, seen from outside on real QUIC connections to a cluster of
//! real nodes: once the room knows its rate, a fan whose estimated wait is over the nodes'
//! `park_wait_ms` is told when to come back and its stream is closed; it comes back with its
//! ticket (on a new connection to the node that parked it), keeps its place, and is admitted;
//! nobody parked is counted as abandoned, and the fans near the front are never parked.

use std::time::{Duration, Instant};

use harness::room::{ClientMsg, ServerMsg, REDIRECTS_MAX};
use harness::{
    fan_token, get_room, join, put_room, resume, room_info_when, wait_clocks_in_step, Cluster, FanStream, Joined,
    Place, RoomClient, RoomError, RoomInfo, RoomNode, Secrets, Settings,
};
use serde_json::json;

/// The nodes park a fan whose estimated wait is longer than this.
const PARK_WAIT_MS: u64 = 3_000;
/// Admissions a minute: two a second, so the line of these tests passes in about 20 s.
const RATE_PER_MIN: u64 = 120;
/// Fans in line.
const FANS: u64 = 40;
/// The fans at the front: admitted in the first ten seconds, before the room has measured its
/// rate and can estimate anyone's wait, so never parked.
const FRONT: usize = 10;
/// The fans at the back: more than `PARK_WAIT_MS` of admissions from the front when the first
/// estimate is made, so all parked.
const BACK: usize = 8;
/// How long the nodes may take to find a new room and report it.
const ROOM_LISTED_WITHIN: Duration = Duration::from_secs(20);
/// How long a parked fan's stream may stay open after its `parked`.
const CLOSED_WITHIN: Duration = Duration::from_secs(2);
/// The longest any fan waits for its admission here (the line takes about 25 s).
const ADMITTED_WITHIN: Duration = Duration::from_secs(90);
/// A waiting fan says it is still there this often (the room's least `abandonMs` is 5 s).
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1_000);
const TOKEN_TTL_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn token(uid: u64) -> String {
    fan_token(Secrets::HARNESS.cluster_secret, uid, now_ms() + TOKEN_TTL_MS)
}

/// What one fan went through.
#[derive(Debug, Default)]
struct Life {
    uid: u64,
    place: Option<Place>,
    /// `(when the fan was parked, when it was told to come back, whether the node closed its
    /// stream within CLOSED_WITHIN)`, ms since the epoch.
    parks: Vec<(u64, u64, bool)>,
    /// The place each return with the ticket was given.
    resumed: Vec<Place>,
    admitted: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn far_back_fans_are_parked_and_come_back_to_their_place() {
    let settings = Settings {
        room_extra: format!("joins_per_address_per_min = 0\npark_wait_ms = {PARK_WAIT_MS}"),
        ..Settings::default()
    };
    let cluster = Cluster::start(settings).await.unwrap();
    let event = cluster.seed_event(20).await.unwrap()["id"].as_u64().unwrap();
    let room = json!({
        "ratePerMinute": RATE_PER_MIN,
        "shoppingMax": 1_000,
        "admissionMs": 30_000,
        "abandonMs": 5_000,
        "powBits": 0,
        "paused": true,
    });
    put_room(&cluster, event, room).await.unwrap();
    let info = room_info_when(&cluster, event, cluster.nodes.len(), ROOM_LISTED_WITHIN).await.unwrap();
    wait_clocks_in_step(&cluster, event, ROOM_LISTED_WITHIN).await.unwrap();

    let mut line = Vec::new();
    for uid in 1..=FANS {
        let start = info.nodes[uid as usize % info.nodes.len()].node;
        line.push(join_alone(&info, start, event, uid).await);
    }
    line.sort_by_key(|(_, _, _, _, joined)| joined.place);
    put_room(&cluster, event, json!({"paused": false})).await.unwrap();

    let lives: Vec<_> = line
        .into_iter()
        .map(|(uid, node, client, fan, joined)| tokio::spawn(wait_parked_or_not(event, uid, node, client, fan, joined)))
        .collect();
    let mut lived = Vec::new();
    for life in lives {
        lived.push(life.await.unwrap());
    }
    let parked: Vec<u64> = lived.iter().filter(|l| !l.parks.is_empty()).map(|l| l.uid).collect();
    println!("{} of {FANS} fans parked: {parked:?}", parked.len());

    let not_admitted: Vec<u64> = lived.iter().filter(|l| !l.admitted).map(|l| l.uid).collect();
    assert!(not_admitted.is_empty(), "fans never admitted within {ADMITTED_WITHIN:?}: {not_admitted:?}");
    let front_parked: Vec<u64> = lived[..FRONT].iter().filter(|l| !l.parks.is_empty()).map(|l| l.uid).collect();
    assert!(front_parked.is_empty(), "fans at the front of the line were parked: {front_parked:?}");
    let back_not_parked: Vec<u64> =
        lived[lived.len() - BACK..].iter().filter(|l| l.parks.is_empty()).map(|l| l.uid).collect();
    assert!(back_not_parked.is_empty(), "fans at the back of the line were never parked: {back_not_parked:?}");
    for life in &lived {
        for (at, come_back_at, closed) in &life.parks {
            assert!(come_back_at > at, "fan {} was told to come back at {come_back_at}, before {at}", life.uid);
            assert!(*closed, "fan {}'s stream stayed open after it was parked", life.uid);
        }
        let moved: Vec<&Place> = life.resumed.iter().filter(|p| Some(**p) != life.place).collect();
        assert!(moved.is_empty(), "fan {} came back to {moved:?}, not its place {:?}", life.uid, life.place);
    }

    let room = get_room(&cluster, event).await.unwrap();
    let counts = &room["counts"];
    println!("the room at the end: {counts}");
    assert_eq!(counts["abandoned"].as_u64(), Some(0), "parked fans are not abandoned: {counts}");
    assert_eq!(counts["admitted"].as_u64(), Some(FANS), "{counts}");
}

/// The fan waits, heartbeating; when parked it checks the stream closes, stays away until told,
/// and comes back with its ticket to `node`, on a new connection; until admitted.
async fn wait_parked_or_not(
    event: u64,
    uid: u64,
    node: RoomNode,
    mut client: RoomClient,
    mut fan: FanStream,
    joined: Joined,
) -> Life {
    let mut life = Life { uid, place: Some(joined.place), ..Life::default() };
    let deadline = Instant::now() + ADMITTED_WITHIN;
    while Instant::now() < deadline {
        match fan.recv(HEARTBEAT_INTERVAL).await {
            Ok(ServerMsg::Admitted { .. }) => {
                life.admitted = true;
                break;
            }
            Ok(ServerMsg::Parked { come_back_at }) => {
                let closed =
                    matches!(fan.recv(CLOSED_WITHIN).await, Err(RoomError::Closed) | Err(RoomError::Stream(_)));
                life.parks.push((now_ms(), come_back_at, closed));
                client.close();
                tokio::time::sleep(Duration::from_millis(come_back_at.saturating_sub(now_ms()))).await;
                client = RoomClient::connect_to(&node).await.unwrap();
                fan = client.open_fan().await.unwrap();
                let back = resume(&mut fan, event, &token(uid), &joined.ticket).await.unwrap();
                life.resumed.push(back.place);
            }
            Ok(_) | Err(RoomError::Timeout(_)) => fan.send(&ClientMsg::Heartbeat).await.unwrap(),
            Err(error) => panic!("fan {uid} waiting: {error}"),
        }
    }
    client.close();
    life
}

/// Joins `uid` at node `start` on a connection of its own, following the room's redirects: the
/// fan, the node that placed it, the connection, the stream and the place.
async fn join_alone(
    info: &RoomInfo,
    start: u64,
    event: u64,
    uid: u64,
) -> (u64, RoomNode, RoomClient, FanStream, Joined) {
    let mut node: RoomNode = info.node(start).expect("a listed node").clone();
    for _ in 0..=REDIRECTS_MAX {
        let client = RoomClient::connect_to(&node).await.unwrap();
        let mut fan = client.open_fan().await.unwrap();
        match join(&mut fan, event, &token(uid)).await {
            Ok(joined) => return (uid, node, client, fan, joined),
            Err(RoomError::Redirected { nodes, .. }) => {
                client.close();
                node = nodes.first().expect("a redirect names a node").clone();
            }
            Err(error) => panic!("fan {uid} joining at node {}: {error}", node.node),
        }
    }
    panic!("fan {uid} was redirected more than {REDIRECTS_MAX} times")
}

//! The waiting room through a node's death, seen from outside by fans on real QUIC connections to
//! a cluster of real nodes: fans of a killed node take their tickets to the others and keep their
//! places, and killing the leader of the event's group stops the line only until a new leader
//! ticks. Throughout, the watermark never moves back, no place gets two admissions, and no more
//! fans shop than the maximum.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use harness::room::{rfc3339, ClientMsg, ServerMsg};
use harness::{
    fan_token, get_room, join, put_room, resume, room_info_when, AdmissionClaims, Cluster, FanStream, Place,
    RoomClient, RoomError, RoomInfo, Secrets, Settings,
};
use serde_json::json;
use tokio::sync::{watch, Mutex as AsyncMutex};
use tokio::task::JoinHandle;

/// One cluster at a time: these tests kill nodes and time the room against the wall clock.
static SERIAL: AsyncMutex<()> = AsyncMutex::const_new(());

/// Fans in line in each test.
const FANS: u64 = 300;
/// The room's rate, its shopping maximum and how long an admission lasts: at 10 a second the
/// maximum is reached before the first admissions end, so it holds the line back for a while.
const RATE_PER_MIN: u64 = 600;
const SHOPPING_MAX: u64 = 200;
const ADMISSION_MS: u64 = 20_000;
/// How far ahead the on-sale is when the room is made: the fans join before it, at the node the
/// test picks (a pre-sale place is the same everywhere, so no node sends them to another).
const ON_SALE_AHEAD_MS: u64 = 10_000;
/// Admissions before the kill: the line is moving when the node dies.
const ADMITTED_BEFORE_KILL: u64 = 50;
/// How long every fan may take to be admitted after the kill.
const ALL_ADMITTED_WITHIN: Duration = Duration::from_secs(90);
/// How long the group may take to elect a new leader, and the watermark to move after it.
const NEW_LEADER_WITHIN: Duration = Duration::from_secs(30);
const MOVES_AGAIN_WITHIN: Duration = Duration::from_secs(10);
/// How long the nodes may take to find a new room and report it.
const ROOM_LISTED_WITHIN: Duration = Duration::from_secs(20);
/// How often every live node's view of the room is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// How often a waiting fan says it is still there (the room's default abandon is 60 s).
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(10_000);
/// Resumes a moving fan tries before it gives up, and the pause between them.
const RESUME_ATTEMPTS_MAX: u32 = 5;
const RESUME_RETRY: Duration = Duration::from_millis(500);
/// Joins in flight at once.
const JOINS_IN_FLIGHT_MAX: usize = 100;
/// Admission messages kept of one fan (a node sends an admitted fan its admission every 5 s).
const TOKENS_PER_FAN_MAX: usize = 1_000;
/// How long a fan's token lasts in these tests.
const TOKEN_TTL_MS: u64 = 3_600_000;

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

/// A new event whose room opens [`ON_SALE_AHEAD_MS`] from now, once every node lists it; and the
/// group that keeps it.
async fn room_event(cluster: &Cluster) -> (u64, u64, RoomInfo) {
    let event = cluster.seed_event(20).await.unwrap()["id"].as_u64().unwrap();
    let on_sale_at = (now_ms() + ON_SALE_AHEAD_MS).div_ceil(1_000) * 1_000;
    let settings = json!({
        "onSaleAt": rfc3339(on_sale_at),
        "ratePerMinute": RATE_PER_MIN,
        "shoppingMax": SHOPPING_MAX,
        "admissionMs": ADMISSION_MS,
        "powBits": 0,
    });
    put_room(cluster, event, settings).await.unwrap();
    let info = room_info_when(cluster, event, cluster.nodes.len(), ROOM_LISTED_WITHIN).await.unwrap();
    let group = model::group_for_new_event(event, cluster.settings.inventory_groups) as u64;
    (event, group, info)
}

/// What one fan went through.
#[derive(Debug, Default)]
struct Journey {
    /// The place of every ticket it was given (its join's, then any resume's), in order.
    places: Vec<Place>,
    /// Every admission token it was given, in order.
    tokens: Vec<String>,
    /// When its first admission arrived.
    admitted_at: Option<Instant>,
    /// The node it resumed at, if it moved.
    moved_to: Option<u64>,
    /// What went wrong on the way, if anything.
    errors: Vec<String>,
}

/// A fan in line: its id, its ticket, and its journey as it goes.
struct InLine {
    uid: u64,
    ticket: String,
    place: Place,
    journey: Arc<Mutex<Journey>>,
}

/// `uids` joined at `client` before the on-sale, each on a stream of its own.
async fn join_at(client: &RoomClient, event: u64, uids: Vec<u64>) -> Vec<(InLine, FanStream)> {
    stream::iter(uids)
        .map(|uid| async move {
            let mut fan = client.open_fan().await.unwrap();
            let joined = join(&mut fan, event, &token(uid)).await.unwrap_or_else(|e| panic!("fan {uid} joining: {e}"));
            assert!(joined.presale, "fan {uid} joined before the on-sale: {joined:?}");
            let journey = Journey { places: vec![joined.place], ..Journey::default() };
            let fan_in_line =
                InLine { uid, ticket: joined.ticket, place: joined.place, journey: Arc::new(Mutex::new(journey)) };
            (fan_in_line, fan)
        })
        .buffer_unordered(JOINS_IN_FLIGHT_MAX)
        .collect()
        .await
}

/// Reads a fan's messages into its journey until `until` turns true; says the fan is still
/// there every [`HEARTBEAT_INTERVAL`]. Ends early if the stream fails.
async fn listen(fan: &mut FanStream, journey: &Mutex<Journey>, until: &watch::Receiver<bool>) -> Result<(), RoomError> {
    let mut heartbeat_at = Instant::now() + HEARTBEAT_INTERVAL;
    while !*until.borrow() {
        if Instant::now() >= heartbeat_at {
            fan.send(&ClientMsg::Heartbeat).await?;
            heartbeat_at = Instant::now() + HEARTBEAT_INTERVAL;
        }
        let wait = heartbeat_at.saturating_duration_since(Instant::now()).min(SAMPLE_EVERY);
        match fan.recv(wait).await {
            Ok(ServerMsg::Admitted { admission_token, .. }) => {
                let mut journey = journey.lock().unwrap();
                journey.admitted_at.get_or_insert_with(Instant::now);
                if journey.tokens.len() < TOKENS_PER_FAN_MAX {
                    journey.tokens.push(admission_token);
                }
            }
            Ok(ServerMsg::Ticket { place, .. }) => journey.lock().unwrap().places.push(place),
            Ok(ServerMsg::Position { .. }) => {}
            Ok(other) => journey.lock().unwrap().errors.push(format!("unexpected {other:?}")),
            Err(RoomError::Timeout(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// A fan who waits at its node until `stop`.
async fn staying_fan(fan_in_line: &InLine, mut fan: FanStream, stop: watch::Receiver<bool>) {
    if let Err(error) = listen(&mut fan, &fan_in_line.journey, &stop).await {
        fan_in_line.journey.lock().unwrap().errors.push(format!("waiting: {error}"));
    }
}

/// A fan who waits at its node until `moved`, then takes its ticket to `to` and waits there until
/// `stop`.
async fn moving_fan(
    fan_in_line: &InLine,
    mut fan: FanStream,
    event: u64,
    to: (u64, RoomClient),
    mut moved: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    let journey = &fan_in_line.journey;
    // The stream of a killed node fails only at its idle timeout: the fan moves when told.
    let _ = listen(&mut fan, journey, &moved).await;
    moved.wait_for(|m| *m).await.unwrap();
    drop(fan);
    let (node, client) = to;
    for _ in 0..RESUME_ATTEMPTS_MAX {
        let resumed = match client.open_fan().await {
            Ok(mut fan) => {
                resume(&mut fan, event, &token(fan_in_line.uid), &fan_in_line.ticket).await.map(|j| (fan, j))
            }
            Err(error) => Err(error),
        };
        match resumed {
            Ok((mut fan, joined)) => {
                {
                    let mut journey = journey.lock().unwrap();
                    journey.places.push(joined.place);
                    journey.moved_to = Some(node);
                }
                if let Err(error) = listen(&mut fan, journey, &stop).await {
                    journey.lock().unwrap().errors.push(format!("waiting at node {node}: {error}"));
                }
                return;
            }
            Err(error) => journey.lock().unwrap().errors.push(format!("resuming at node {node}: {error}")),
        }
        tokio::time::sleep(RESUME_RETRY).await;
    }
}

/// What the test saw of the room through every live node's admin view.
#[derive(Debug, Default)]
struct Seen {
    /// The highest watermark read so far (reads are linearizable: a later read is never behind).
    watermark: Option<Place>,
    /// Reads whose watermark was behind one read before: `(node, read, highest before)`.
    backwards: Vec<(u64, Option<Place>, Option<Place>)>,
    /// The most fans shopping in any read, and the reads with more than the maximum.
    shopping_max: u64,
    over: Vec<(u64, serde_json::Value)>,
    /// `counts.admitted` and `counts.late` of the last read.
    admitted: u64,
    late: u64,
    reads: u64,
    failed_reads: u64,
}

impl Seen {
    /// Reads the room's admin view through every running node.
    async fn sample(&mut self, cluster: &Cluster, event: u64) {
        let path = format!("/admin/events/{event}/waiting-room");
        for id in cluster.running() {
            let Ok(room) = cluster.admin_get(id, &path).await else {
                self.failed_reads += 1;
                continue;
            };
            self.reads += 1;
            let watermark: Option<Place> = serde_json::from_value(room["watermark"].clone()).unwrap();
            if watermark < self.watermark {
                self.backwards.push((id, watermark, self.watermark));
            }
            self.watermark = self.watermark.max(watermark);
            let shopping = room["counts"]["shopping"].as_u64().expect("counts.shopping");
            self.shopping_max = self.shopping_max.max(shopping);
            if shopping > SHOPPING_MAX {
                self.over.push((id, room["counts"].clone()));
            }
            self.admitted = room["counts"]["admitted"].as_u64().expect("counts.admitted");
            self.late = room["counts"]["late"].as_u64().expect("counts.late");
        }
    }

    /// Samples every [`SAMPLE_EVERY`] until `done` holds of what was seen, at most `within`;
    /// whether it held.
    async fn until(&mut self, cluster: &Cluster, event: u64, within: Duration, done: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            self.sample(cluster, event).await;
            if done(self) {
                return true;
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        false
    }

    /// The rules that hold whatever died: the watermark never moves back, shopping never passes
    /// the maximum.
    fn assert_rules(&self) {
        println!(
            "{} reads ({} failed): shopping at most {}, admitted {} (late {}), watermark {:?}",
            self.reads, self.failed_reads, self.shopping_max, self.admitted, self.late, self.watermark
        );
        assert!(self.reads > 0, "no node answered");
        assert!(self.backwards.is_empty(), "the watermark moved back (node, read, before): {:?}", self.backwards);
        assert!(self.over.is_empty(), "more than {SHOPPING_MAX} fans shopping: {:?}", self.over);
    }
}

/// Whether every fan was admitted.
fn all_admitted(line: &[Arc<InLine>]) -> bool {
    line.iter().all(|f| f.journey.lock().unwrap().admitted_at.is_some())
}

/// Stops the fans, waits for their tasks, and checks each one's journey: one place whatever node
/// gave its tickets, one admission token, for that place and fan.
async fn assert_journeys(event: u64, line: &[Arc<InLine>], stop: watch::Sender<bool>, tasks: Vec<JoinHandle<()>>) {
    stop.send(true).unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let (mut moved, mut twice_told) = (0, 0);
    let mut problems = Vec::new();
    for fan in line {
        let journey = fan.journey.lock().unwrap();
        moved += u64::from(journey.moved_to.is_some());
        twice_told += u64::from(journey.tokens.len() > 1);
        let places: BTreeSet<Place> = journey.places.iter().copied().collect();
        let tokens: BTreeSet<&String> = journey.tokens.iter().collect();
        if places.len() != 1 || tokens.len() != 1 || !journey.errors.is_empty() {
            problems.push(format!("fan {} {:?}: {} distinct tokens; {journey:?}", fan.uid, fan.place, tokens.len()));
            continue;
        }
        let claims = AdmissionClaims::read(tokens.first().unwrap()).expect("an admission token carries its claims");
        if (claims.event, claims.user, claims.place) != (event, fan.uid, fan.place) {
            problems.push(format!("fan {} {:?} was admitted as {claims:?}", fan.uid, fan.place));
        }
    }
    println!("{} fans, {moved} moved, {twice_told} given their admission more than once", line.len());
    assert!(
        problems.is_empty(),
        "{} fans' journeys broke a rule (one place, one admission), e.g. {:#?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
}

/// A node other than `not`, node 2 if it can be.
fn other_than(cluster: &Cluster, not: u64) -> u64 {
    [2, 3, 1].into_iter().find(|id| *id != not && cluster.running().contains(id)).expect("a node to use")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fans_of_a_killed_node_keep_their_place_elsewhere() {
    let _serial = SERIAL.lock().await;
    let mut cluster = cluster().await;
    let (event, group, info) = room_event(&cluster).await;
    // The fans' node is not the group's leader: this test is about the fans' node alone.
    let leader = cluster.leader_of(group).await.unwrap();
    let doomed = other_than(&cluster, leader);
    let others: Vec<u64> = cluster.running().into_iter().filter(|id| *id != doomed).collect();
    let client = RoomClient::connect_to(info.node(doomed).unwrap()).await.unwrap();
    let mut to = Vec::new();
    for id in &others {
        to.push((*id, RoomClient::connect_to(info.node(*id).unwrap()).await.unwrap()));
    }
    let joined = join_at(&client, event, (1..=FANS).collect()).await;
    println!("{FANS} fans joined at node {doomed} (group {group} led by node {leader})");

    let ((moved_tx, moved), (stop_tx, stop)) = (watch::channel(false), watch::channel(false));
    let mut line = Vec::new();
    let mut tasks = Vec::new();
    for (i, (fan_in_line, fan)) in joined.into_iter().enumerate() {
        let fan_in_line = Arc::new(fan_in_line);
        let (target, moved, stop) = (to[i % to.len()].clone(), moved.clone(), stop.clone());
        let task_fan = fan_in_line.clone();
        tasks.push(tokio::spawn(async move { moving_fan(&task_fan, fan, event, target, moved, stop).await }));
        line.push(fan_in_line);
    }

    let mut seen = Seen::default();
    let moving = seen
        .until(&cluster, event, Duration::from_millis(ON_SALE_AHEAD_MS) + ALL_ADMITTED_WITHIN, |s| {
            s.admitted >= ADMITTED_BEFORE_KILL
        })
        .await;
    assert!(moving, "the line did not start moving: {seen:?}");
    println!("killing node {doomed} at {} admitted, watermark {:?}", seen.admitted, seen.watermark);
    cluster.kill(doomed);
    moved_tx.send(true).unwrap();
    let done = seen.until(&cluster, event, ALL_ADMITTED_WITHIN, |_| all_admitted(&line)).await;
    let room = get_room(&cluster, event).await.unwrap();
    println!("room after: {}", room["counts"]);
    seen.assert_rules();
    assert!(done, "not every fan was admitted within {ALL_ADMITTED_WITHIN:?} of the kill");
    // A fan admitted before the kill is admitted again where it resumes (with the same token),
    // counted as late; the ticks themselves pass each place once.
    assert!(seen.admitted - seen.late <= FANS, "ticks passed {} places of {FANS}", seen.admitted - seen.late);
    assert_journeys(event, &line, stop_tx, tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_groups_leader_loses_no_place() {
    let _serial = SERIAL.lock().await;
    let mut cluster = cluster().await;
    let (event, group, info) = room_event(&cluster).await;
    let leader = cluster.leader_of(group).await.unwrap();
    let fans_at: Vec<u64> = cluster.running().into_iter().filter(|id| *id != leader).collect();
    let mut clients = Vec::new();
    let mut joined = Vec::new();
    for (i, id) in fans_at.iter().enumerate() {
        let client = RoomClient::connect_to(info.node(*id).unwrap()).await.unwrap();
        let uids: Vec<u64> = (1..=FANS).filter(|uid| *uid as usize % fans_at.len() == i).collect();
        joined.extend(join_at(&client, event, uids).await);
        clients.push(client);
    }
    println!("{FANS} fans joined at nodes {fans_at:?} (group {group} led by node {leader})");

    let (stop_tx, stop) = watch::channel(false);
    let mut line = Vec::new();
    let mut tasks = Vec::new();
    for (fan_in_line, fan) in joined {
        let fan_in_line = Arc::new(fan_in_line);
        let (task_fan, stop) = (fan_in_line.clone(), stop.clone());
        tasks.push(tokio::spawn(async move { staying_fan(&task_fan, fan, stop).await }));
        line.push(fan_in_line);
    }

    let mut seen = Seen::default();
    let moving = seen
        .until(&cluster, event, Duration::from_millis(ON_SALE_AHEAD_MS) + ALL_ADMITTED_WITHIN, |s| {
            s.admitted >= ADMITTED_BEFORE_KILL
        })
        .await;
    assert!(moving, "the line did not start moving: {seen:?}");
    let at_kill = seen.watermark;
    println!("killing node {leader}, leader of group {group}, at {} admitted, watermark {at_kill:?}", seen.admitted);
    cluster.kill(leader);
    let killed_at = Instant::now();
    let deadline = killed_at + NEW_LEADER_WITHIN;
    let new_leader = loop {
        seen.sample(&cluster, event).await;
        if let Ok(new_leader) = cluster.leader_of(group).await {
            break new_leader;
        }
        assert!(Instant::now() < deadline, "group {group} had no new leader within {NEW_LEADER_WITHIN:?}");
        tokio::time::sleep(SAMPLE_EVERY).await;
    };
    let led_at = Instant::now();
    println!("node {new_leader} leads group {group} {:?} after the kill", led_at.duration_since(killed_at));
    let moves = seen.until(&cluster, event, MOVES_AGAIN_WITHIN, |s| s.watermark > at_kill).await;
    println!("the watermark moved on {:?} after the new leader was seen: {:?}", led_at.elapsed(), seen.watermark);
    assert!(moves, "the watermark did not move within {MOVES_AGAIN_WITHIN:?} of a new leader: {seen:?}");
    let done = seen.until(&cluster, event, ALL_ADMITTED_WITHIN, |_| all_admitted(&line)).await;
    seen.assert_rules();
    assert!(done, "not every fan was admitted within {ALL_ADMITTED_WITHIN:?} of the kill");
    assert!(seen.admitted - seen.late <= FANS, "ticks passed {} places of {FANS}", seen.admitted - seen.late);
    assert_journeys(event, &line, stop_tx, tasks).await;
}

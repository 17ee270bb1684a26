//! The waiting room's workload and its recorder: fans of one event whose room is on join its line
//! over QUIC while the faults come and go, and what they see goes into the room's history
//! (`room.jsonl`, [`RoomRecord`]s) for the room's checks.
//!
//! - The room goes on sale a few seconds after it is set up ([`ON_SALE_AFTER_MS`]); about a third
//!   of the fans join before, drawing pre-sale places, the rest after.
//! - A fan joins at a random node (following redirects to its home node), heartbeats, and waits
//!   for its admission. Some abandon (close the stream and stay away past `abandonMs`), some drop
//!   their stream and resume with their ticket at another node, some join again without their
//!   ticket; a fan whose stream breaks (its node was killed) resumes elsewhere too.
//! - An admitted fan holds one or two seats with the `Admission-Token` header through any
//!   gateway (the holds go into the main history too, so the seat checks cover them), then pays,
//!   releases, abandons the hold, or tries a second hold under the same admission. Now and then a
//!   fan tries a hold with no admission at all.
//! - Every ~500 ms the room's admin view is read through each node (watermark, fans shopping
//!   and the limit).
//!
//! QUIC goes straight to the nodes' UDP endpoints, not through the chaos proxies (which are on the
//! raft links): a node cut off from the others still serves its fans from a stale replica.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use harness::room::{
    self as client, AdmissionClaims, ClientMsg, FanStream, Joined, RoomClient, RoomError, RoomInfo, RoomNode, ServerMsg,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, SECRETS};
use crate::history::{HoldAnswer, Op, Place, Result as Outcome, RoomRecord};
use crate::workload::{Fan, Recorder, Shop, GOOD_CARD};

/// The room's settings: admissions per minute, fans shopping at once, how long an admission
/// lasts, and how long a silent fan keeps its place.
pub const ROOM_RATE_PER_MIN: u32 = 1_200;
pub const ROOM_SHOPPING_MAX: u32 = 40;
pub const ROOM_ADMISSION_MS: u64 = 15_000;
pub const ROOM_ABANDON_MS: u64 = 5_000;
/// How long after the room is set up it goes on sale (rounded up to a whole second).
pub const ON_SALE_AFTER_MS: u64 = 6_000;
/// Seats of the room's event.
pub const ROOM_SEATS: u32 = 1_000;
/// Share of the fans who come before the on-sale, and the span after it the others come in.
const PRESALE_SHARE: f64 = 0.35;
const ARRIVALS_AFTER_ON_SALE_MS: u64 = 10_000;
/// How often each node's admin view of the room is read, and how long one read may take.
const SAMPLE_INTERVAL_MS: u64 = 500;
const SAMPLE_TIMEOUT_MS: u64 = 2_000;
/// How often the room's public view (where fans join) is read again.
const LISTING_INTERVAL_MS: u64 = 1_000;
/// A waiting fan says it is still there this often: well within `abandonMs`.
const HEARTBEAT_INTERVAL_MS: u64 = 1_000;
/// Longest one heartbeat may take to send before the stream counts as broken.
const HEARTBEAT_SEND_TIMEOUT_MS: u64 = 1_000;
/// How long one read of the fan's stream waits before the fan looks at its plans again.
const RECV_SLICE_MS: u64 = 250;
/// A node pushes a position (or the admission again) at least every 5 s: a stream silent for
/// this long is taken for broken.
const SILENCE_MS_MAX: u64 = 8_000;
/// Longest a QUIC handshake, or a join or resume, may take.
const CONNECT_TIMEOUT_MS: u64 = 3_000;
const JOIN_TIMEOUT_MS: u64 = 6_000;
/// A node that could not be reached is not dialled again for this long.
const UNREACHABLE_BACKOFF_MS: u64 = 1_000;
/// How long the nodes may take to list a new room.
const ROOM_LISTED_WITHIN_MS: u64 = 30_000;
/// How long a room fan's token lasts.
const FAN_TOKEN_TTL_MS: u64 = 24 * 60 * 60 * 1_000;
/// Sign-ups in flight at once while the room's fans are made, and tries of each.
const SIGNUPS_IN_FLIGHT_MAX: usize = 6;
const SIGNUP_ATTEMPTS_MAX: usize = 3;
/// Tries of a join (each at a node picked again) and of a resume before a visit gives up.
const JOIN_ATTEMPTS_MAX: usize = 3;
const RESUME_ATTEMPTS_MAX: usize = 5;
/// Holds one admission tries when the seats it asked for were taken.
const HOLD_ATTEMPTS_MAX: usize = 3;
/// Longest a fan stays away between visits.
const AWAY_MS_MAX: u64 = 20_000;
/// A report older than this (by the admin view's `reportAgeMs`) does not tell where fans are.
const REPORT_FRESH_MS: u64 = 3_000;
/// Share of visits that first try a hold with no admission (it must be refused).
const UNADMITTED_HOLD_SHARE: f64 = 0.05;

/// The room's history being recorded: kept in memory for the checker and streamed to a file,
/// on the main history's clock.
pub struct RoomRecorder {
    clock: Arc<Recorder>,
    records: Mutex<Vec<RoomRecord>>,
    file: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl RoomRecorder {
    pub fn new(path: &std::path::Path, clock: Arc<Recorder>) -> std::io::Result<RoomRecorder> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        Ok(RoomRecorder { clock, records: Mutex::new(Vec::new()), file: Mutex::new(file) })
    }

    /// Real time of the run, as the main history has it.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn record(&self, record: RoomRecord) {
        if let Ok(line) = serde_json::to_string(&record) {
            let _ = writeln!(self.file.lock().expect("room history file lock"), "{line}");
        }
        self.records.lock().expect("room history lock").push(record);
    }

    pub fn records(&self) -> Vec<RoomRecord> {
        self.records.lock().expect("room history lock").clone()
    }

    pub fn flush(&self) {
        let _ = self.file.lock().expect("room history file lock").flush();
    }
}

/// The room under test, once set up.
#[derive(Debug, Clone)]
pub struct RoomPlan {
    pub event: u64,
    pub seats: u32,
    /// When it goes on sale, in the run's real time.
    pub on_sale_ms: u64,
    /// Where fans joined it when it was set up.
    pub listed: Vec<RoomNode>,
    /// The cluster's nodes, 1 to `nodes`.
    pub nodes: u64,
}

/// Milliseconds since the epoch, as tokens and the room's settings count them.
fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Signs up `count` fans of the room (real users: a hold needs one) and mints each a fan token
/// signed with the cluster secret.
pub async fn sign_up(cluster: &Cluster, count: u64) -> anyhow::Result<Vec<Fan>> {
    let bases: Vec<String> = cluster.serving().into_iter().map(|id| cluster.url(id)).collect();
    if bases.is_empty() {
        bail!("no node serves to sign the room's fans up");
    }
    let mut tasks = tokio::task::JoinSet::new();
    let mut fans = Vec::new();
    for n in 0..count {
        if tasks.len() >= SIGNUPS_IN_FLIGHT_MAX {
            fans.push(tasks.join_next().await.expect("a sign-up is in flight")??);
        }
        let (http, base) = (cluster.http.clone(), bases[n as usize % bases.len()].clone());
        tasks.spawn(async move { sign_up_one(&http, &base, n).await });
    }
    while let Some(fan) = tasks.join_next().await {
        fans.push(fan??);
    }
    fans.sort_by_key(|f| f.user);
    Ok(fans)
}

async fn sign_up_one(http: &reqwest::Client, base: &str, n: u64) -> anyhow::Result<Fan> {
    let name = format!("roomfan{n}");
    let body = json!({"name": name, "email": format!("{name}@fans.test"), "password": format!("{name}-password")});
    let mut last = String::new();
    for _ in 0..SIGNUP_ATTEMPTS_MAX {
        match http.post(format!("{base}/users")).json(&body).send().await {
            Ok(response) if response.status().is_success() => {
                let user: Value = response.json().await?;
                let user = user["id"].as_u64().ok_or_else(|| anyhow!("sign up {name}: no id in {user}"))?;
                let token = client::fan_token(SECRETS.cluster_secret, user, epoch_ms() + FAN_TOKEN_TTL_MS);
                return Ok(Fan { user, token });
            }
            Ok(response) => last = format!("{}: {}", response.status(), response.text().await.unwrap_or_default()),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(anyhow!("sign up {name} failed: {last}"))
}

/// Turns the room of `event` on (on sale in [`ON_SALE_AFTER_MS`]), records it, and waits until
/// every node lists it.
pub async fn open(cluster: &Cluster, event: u64, recorder: &RoomRecorder) -> anyhow::Result<RoomPlan> {
    let now = epoch_ms();
    let on_sale_at = (now + ON_SALE_AFTER_MS).div_ceil(1_000) * 1_000;
    let settings = json!({
        "enabled": true, "onSaleAt": client::rfc3339(on_sale_at), "ratePerMinute": ROOM_RATE_PER_MIN,
        "shoppingMax": ROOM_SHOPPING_MAX, "admissionMs": ROOM_ADMISSION_MS, "abandonMs": ROOM_ABANDON_MS,
        "powBits": 0
    });
    client::put_room(cluster, event, settings).await?;
    let on_sale_ms = recorder.now_ms() + (on_sale_at - now);
    recorder.record(RoomRecord::Room {
        event,
        rate_per_min: u64::from(ROOM_RATE_PER_MIN),
        shopping_max: u64::from(ROOM_SHOPPING_MAX),
        admission_ms: ROOM_ADMISSION_MS,
        abandon_ms: ROOM_ABANDON_MS,
        on_sale_ms,
    });
    let nodes = cluster.settings.nodes;
    let within = Duration::from_millis(ROOM_LISTED_WITHIN_MS);
    let info = client::room_info_when(cluster, event, nodes as usize, within).await?;
    Ok(RoomPlan { event, seats: ROOM_SEATS, on_sale_ms, listed: info.nodes, nodes })
}

/// The room's admin view through `base`, if it answered in time.
async fn admin_view(http: &reqwest::Client, base: &str, event: u64) -> Option<Value> {
    let url = format!("{base}/admin/events/{event}/waiting-room");
    let request = http.get(url).bearer_auth(SECRETS.admin_token).timeout(Duration::from_millis(SAMPLE_TIMEOUT_MS));
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// The node of `serving` with the most connected fans by the fresh reports of an admin view.
pub fn busiest_in(view: &Value, serving: &[u64]) -> Option<u64> {
    let nodes = view["nodes"].as_array()?;
    nodes
        .iter()
        .filter_map(|n| Some((n["node"].as_u64()?, n["connected"].as_u64()?, n["reportAgeMs"].as_u64()?)))
        .filter(|(node, connected, age)| serving.contains(node) && *connected > 0 && *age <= REPORT_FRESH_MS)
        .max_by_key(|(node, connected, _)| (*connected, std::cmp::Reverse(*node)))
        .map(|(node, _, _)| node)
}

/// The serving node with the most connected room fans, by the admin view read now.
pub async fn busiest(http: &reqwest::Client, serving: &[(u64, String)], event: u64) -> Option<u64> {
    let (_, base) = serving.first()?;
    let view = admin_view(http, base, event).await?;
    let ids: Vec<u64> = serving.iter().map(|(id, _)| *id).collect();
    busiest_in(&view, &ids)
}

/// An admin view as a sample, if it reads as one.
fn sample_of(node: u64, at_ms: u64, view: &Value) -> Option<RoomRecord> {
    let watermark = match &view["watermark"] {
        Value::Null => None,
        place => Some(serde_json::from_value::<Place>(place.clone()).ok()?),
    };
    Some(RoomRecord::Sample {
        node,
        at_ms,
        watermark,
        shopping: view["counts"]["shopping"].as_u64()?,
        shopping_max: view["settings"]["shoppingMax"].as_u64()?,
    })
}

/// A second admission, under another token, of the first place the history shows admitted:
/// what `--plant-room-violation` adds to show that the checker catches it.
pub fn planted_double_admission(records: &[RoomRecord]) -> Option<RoomRecord> {
    records.iter().find_map(|record| match record {
        RoomRecord::Admission { fan, place, token, node, at_ms, since_ms, .. } => Some(RoomRecord::Admission {
            fan: *fan,
            place: *place,
            token: format!("{token}.planted"),
            node: *node,
            at_ms: at_ms + 1,
            steady: false,
            since_ms: *since_ms,
        }),
        _ => None,
    })
}

fn place_of(place: client::Place) -> Place {
    Place { class: place.class, primary: place.primary, node: place.node, seq: place.seq }
}

/// Whether an error means the connection (not just this fan's exchange) may be gone.
fn connection_lost(error: &RoomError) -> bool {
    matches!(error, RoomError::Stream(_) | RoomError::Closed | RoomError::Timeout(_) | RoomError::Connect { .. })
}

/// One node's connection as fans share it: many fans' streams ride one QUIC connection.
#[derive(Default)]
struct Door {
    /// The connection, the endpoint and certificate it was made to, and its generation.
    open: Option<(String, String, u64, RoomClient)>,
    generations: u64,
    /// Until when a node that could not be reached is not dialled again.
    shut_until: Option<Instant>,
}

/// Where fans reach each node's room: the public view's listing, read again every second, and
/// one connection per node.
struct Doors {
    listed: RwLock<Vec<RoomNode>>,
    doors: BTreeMap<u64, tokio::sync::Mutex<Door>>,
}

impl Doors {
    fn new(plan: &RoomPlan) -> Doors {
        let doors = (1..=plan.nodes).map(|id| (id, tokio::sync::Mutex::new(Door::default()))).collect();
        Doors { listed: RwLock::new(plan.listed.clone()), doors }
    }

    fn listed(&self) -> Vec<RoomNode> {
        self.listed.read().expect("listing lock").clone()
    }

    /// The connection to `node`, made now if there is none to its current endpoint.
    async fn client(&self, node: &RoomNode) -> Result<(RoomClient, u64), RoomError> {
        let slot = self.doors.get(&node.node).ok_or_else(|| RoomError::Setup(format!("no node {}", node.node)))?;
        let mut door = slot.lock().await;
        if let Some((endpoint, cert, generation, conn)) = &door.open {
            if *endpoint == node.endpoint && *cert == node.cert_sha256 {
                return Ok((conn.clone(), *generation));
            }
        }
        let addr = node.addr().map_err(|e| RoomError::Setup(e.to_string()))?;
        if door.shut_until.is_some_and(|until| Instant::now() < until) {
            return Err(RoomError::Connect { addr, detail: "unreachable a moment ago".into() });
        }
        let timeout = Duration::from_millis(CONNECT_TIMEOUT_MS);
        let connected = tokio::time::timeout(timeout, RoomClient::connect(addr, &node.cert_sha256)).await;
        let connected = connected.unwrap_or_else(|_| {
            Err(RoomError::Connect { addr, detail: format!("no handshake within {CONNECT_TIMEOUT_MS} ms") })
        });
        match connected {
            Ok(conn) => {
                door.generations += 1;
                let generation = door.generations;
                door.open = Some((node.endpoint.clone(), node.cert_sha256.clone(), generation, conn.clone()));
                door.shut_until = None;
                Ok((conn, generation))
            }
            Err(error) => {
                door.shut_until = Some(Instant::now() + Duration::from_millis(UNREACHABLE_BACKOFF_MS));
                Err(error)
            }
        }
    }

    /// Stops handing out a connection that failed (fans on it keep it until their streams end).
    async fn forget(&self, node: u64, generation: u64) {
        if let Some(slot) = self.doors.get(&node) {
            let mut door = slot.lock().await;
            if door.open.as_ref().is_some_and(|(_, _, g, _)| *g == generation) {
                door.open = None;
            }
        }
    }
}

/// A fan in line: its stream, at which node, and its place.
struct Seat {
    node: u64,
    /// The connection the stream rides (kept so that it lives as long as the stream), and its
    /// generation.
    conn: (RoomClient, u64),
    stream: FanStream,
    ticket: String,
    place: Place,
    /// When this stream got its ticket.
    since_ms: u64,
    /// Joined on this stream and never dropped: its admission shows the room's order.
    steady: bool,
}

/// What a fan means to do while it waits, drawn at each visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    /// Wait for the admission.
    Wait,
    /// Close the stream and stay away longer than `abandonMs`.
    Abandon,
    /// Drop the stream and resume with the ticket at another node.
    Drop,
    /// Drop the stream and join again without the ticket.
    Rejoin,
}

impl Intent {
    fn draw(rng: &mut StdRng) -> Intent {
        match rng.gen_range(0..100) {
            0..8 => Intent::Abandon,
            8..20 => Intent::Drop,
            20..28 => Intent::Rejoin,
            _ => Intent::Wait,
        }
    }
}

/// How a wait ended.
enum Waited {
    Admitted {
        token: String,
        expires_at: u64,
    },
    /// The time came to do what the fan meant to.
    Intent,
    /// The stream broke or went silent.
    Lost,
    Parked {
        come_back_at: u64,
    },
    /// Lapsed, refused, or the run is over: the visit ends.
    Over,
}

/// What every room fan and sampler shares.
pub struct RoomWorkload {
    shop: Shop,
    recorder: Arc<RoomRecorder>,
    plan: RoomPlan,
    doors: Doors,
}

impl RoomWorkload {
    pub fn new(shop: Shop, recorder: Arc<RoomRecorder>, plan: RoomPlan) -> Arc<RoomWorkload> {
        let doors = Doors::new(&plan);
        Arc::new(RoomWorkload { shop, recorder, plan, doors })
    }

    /// Starts the fans, the samplers of every node and the listing's reader; they stop with the
    /// shop.
    pub fn start(self: &Arc<Self>, fans: Vec<Fan>, seed: u64) -> Vec<JoinHandle<()>> {
        let mut tasks = vec![tokio::spawn(self.clone().list())];
        tasks.extend((1..=self.plan.nodes).map(|node| tokio::spawn(self.clone().sample(node))));
        let seeds = fans.into_iter().map(|fan| (seed ^ fan.user.rotate_left(17) ^ 0x5eed_f700, fan));
        tasks.extend(seeds.map(|(seed, fan)| tokio::spawn(self.clone().fan(fan, seed))));
        tasks
    }

    fn stopped(&self) -> bool {
        self.shop.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `ms`, or less if the run ends.
    async fn nap(&self, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        while !self.stopped() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(RECV_SLICE_MS).min(until - Instant::now())).await;
        }
    }

    fn base_of(&self, node: u64) -> Option<String> {
        let targets = self.shop.targets.read().expect("targets lock");
        targets.iter().find(|(id, _)| *id == node).map(|(_, base)| base.clone())
    }

    /// Reads the room's public view again and again: where fans join.
    async fn list(self: Arc<Self>) {
        let mut rng = StdRng::seed_from_u64(self.plan.event);
        while !self.stopped() {
            let base = self.shop.targets.read().expect("targets lock").choose(&mut rng).map(|(_, b)| b.clone());
            if let Some(info) = self.public_view(base).await.filter(|info| !info.nodes.is_empty()) {
                *self.doors.listed.write().expect("listing lock") = info.nodes;
            }
            self.nap(LISTING_INTERVAL_MS).await;
        }
    }

    async fn public_view(&self, base: Option<String>) -> Option<RoomInfo> {
        let url = format!("{}/events/{}/waiting-room", base?, self.plan.event);
        let response = self.shop.http.get(url).timeout(Duration::from_millis(SAMPLE_TIMEOUT_MS)).send().await.ok()?;
        response.status().is_success().then_some(())?;
        response.json().await.ok()
    }

    /// Reads the room's admin view through `node` every [`SAMPLE_INTERVAL_MS`] while it serves.
    async fn sample(self: Arc<Self>, node: u64) {
        while !self.stopped() {
            let started = Instant::now();
            if let Some(base) = self.base_of(node) {
                let at_ms = self.recorder.now_ms();
                let view = admin_view(&self.shop.http, &base, self.plan.event).await;
                if let Some(sample) = view.and_then(|view| sample_of(node, at_ms, &view)) {
                    self.recorder.record(sample);
                }
            }
            self.nap(SAMPLE_INTERVAL_MS.saturating_sub(started.elapsed().as_millis() as u64)).await;
        }
    }

    /// One fan: comes before or after the on-sale, then visits the room until the run ends.
    async fn fan(self: Arc<Self>, fan: Fan, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let now = self.recorder.now_ms();
        let arrive_ms = if now < self.plan.on_sale_ms && rng.gen_bool(PRESALE_SHARE) {
            rng.gen_range(now..self.plan.on_sale_ms)
        } else {
            self.plan.on_sale_ms + rng.gen_range(0..ARRIVALS_AFTER_ON_SALE_MS)
        };
        self.nap(arrive_ms.saturating_sub(now)).await;
        while !self.stopped() {
            let away_ms = self.visit(&fan, &mut rng).await;
            self.nap(away_ms.min(AWAY_MS_MAX)).await;
        }
    }

    /// One visit: join, wait (doing what the fan meant to meanwhile), shop if admitted; returns
    /// how long the fan then stays away.
    async fn visit(&self, fan: &Fan, rng: &mut StdRng) -> u64 {
        if rng.gen_bool(UNADMITTED_HOLD_SHARE) {
            let tickets = self.pick_seats(rng);
            self.hold(fan, tickets, None, rng).await;
        }
        let intent = Intent::draw(rng);
        let mut intent_at =
            (intent != Intent::Wait).then(|| Instant::now() + Duration::from_millis(rng.gen_range(500..4_000)));
        let Some(mut seat) = self.join(fan, rng).await else { return 1_000 };
        loop {
            let waited = self.wait(&mut seat, intent_at).await;
            let next = match waited {
                Waited::Admitted { token, expires_at } => {
                    self.admitted(fan, &seat, &token);
                    seat.stream.finish();
                    self.shop_admitted(fan, &token, rng).await;
                    return expires_at.saturating_sub(epoch_ms()) + rng.gen_range(0..3_000);
                }
                Waited::Intent => {
                    intent_at = None;
                    seat.stream.finish();
                    match intent {
                        Intent::Abandon => return ROOM_ABANDON_MS + rng.gen_range(1_000..4_000),
                        Intent::Rejoin => self.join(fan, rng).await.map(|seat| Seat { steady: false, ..seat }),
                        Intent::Drop | Intent::Wait => self.resume(fan, &seat, rng).await,
                    }
                }
                Waited::Lost => {
                    self.doors.forget(seat.node, seat.conn.1).await;
                    self.resume(fan, &seat, rng).await
                }
                Waited::Parked { come_back_at } => {
                    self.nap(come_back_at.saturating_sub(epoch_ms()).min(AWAY_MS_MAX)).await;
                    self.resume(fan, &seat, rng).await
                }
                Waited::Over => return 1_000,
            };
            match next {
                Some(next) => seat = next,
                None => return 1_000,
            }
        }
    }

    fn admitted(&self, fan: &Fan, seat: &Seat, token: &str) {
        self.recorder.record(RoomRecord::Admission {
            fan: fan.user,
            place: seat.place,
            token: token.to_string(),
            node: seat.node,
            at_ms: self.recorder.now_ms(),
            steady: seat.steady,
            since_ms: seat.since_ms,
        });
    }

    /// Joins without a ticket at random nodes until one gives a place.
    async fn join(&self, fan: &Fan, rng: &mut StdRng) -> Option<Seat> {
        for _ in 0..JOIN_ATTEMPTS_MAX {
            if self.stopped() {
                return None;
            }
            let Some(node) = self.doors.listed().choose(rng).cloned() else {
                self.nap(500).await;
                continue;
            };
            match self.join_at(fan, node, None).await {
                Ok((node, conn, stream, joined)) => {
                    let at_ms = self.recorder.now_ms();
                    let place = place_of(joined.place);
                    let presale = joined.presale;
                    self.recorder.record(RoomRecord::Ticket { fan: fan.user, place, node, at_ms, presale });
                    let ticket = joined.ticket;
                    return Some(Seat { node, conn, stream, ticket, place, since_ms: at_ms, steady: true });
                }
                Err(_) => self.nap(300).await,
            }
        }
        None
    }

    /// Takes the fan's ticket to another node (the same one if it is the only one listed).
    async fn resume(&self, fan: &Fan, old: &Seat, rng: &mut StdRng) -> Option<Seat> {
        for _ in 0..RESUME_ATTEMPTS_MAX {
            if self.stopped() {
                return None;
            }
            let listed = self.doors.listed();
            let others: Vec<&RoomNode> = listed.iter().filter(|n| n.node != old.node).collect();
            let node = match others.choose(rng) {
                Some(node) => (*node).clone(),
                None => match listed.first() {
                    Some(node) => node.clone(),
                    None => {
                        self.nap(500).await;
                        continue;
                    }
                },
            };
            match self.join_at(fan, node, Some(&old.ticket)).await {
                Ok((node, conn, stream, joined)) => {
                    let place = place_of(joined.place);
                    let at_ms = self.recorder.now_ms();
                    self.recorder.record(RoomRecord::Resume { fan: fan.user, place, from_node: old.node, node, at_ms });
                    let (ticket, since_ms) = (joined.ticket, old.since_ms);
                    return Some(Seat { node, conn, stream, ticket, place, since_ms, steady: false });
                }
                Err(_) => self.nap(500).await,
            }
        }
        None
    }

    /// Joins (or resumes with `ticket`) at `node`, following the room's redirects.
    async fn join_at(
        &self,
        fan: &Fan,
        mut node: RoomNode,
        ticket: Option<&str>,
    ) -> Result<(u64, (RoomClient, u64), FanStream, Joined), RoomError> {
        for _ in 0..=client::REDIRECTS_MAX {
            let (conn, generation) = self.doors.client(&node).await?;
            let mut stream = match conn.open_fan().await {
                Ok(stream) => stream,
                Err(error) => {
                    self.doors.forget(node.node, generation).await;
                    return Err(error);
                }
            };
            let joined = tokio::time::timeout(Duration::from_millis(JOIN_TIMEOUT_MS), async {
                match ticket {
                    Some(ticket) => client::resume(&mut stream, self.plan.event, &fan.token, ticket).await,
                    None => client::join(&mut stream, self.plan.event, &fan.token).await,
                }
            })
            .await
            .unwrap_or(Err(RoomError::Timeout(JOIN_TIMEOUT_MS)));
            match joined {
                Ok(joined) => return Ok((node.node, (conn, generation), stream, joined)),
                Err(RoomError::Redirected { nodes, detail }) => {
                    stream.finish();
                    node = nodes.into_iter().next().ok_or(RoomError::Refused { code: "redirect".into(), detail })?;
                }
                Err(error) => {
                    if connection_lost(&error) {
                        self.doors.forget(node.node, generation).await;
                    }
                    return Err(error);
                }
            }
        }
        Err(RoomError::Setup(format!("more than {} redirects", client::REDIRECTS_MAX)))
    }

    /// Waits for the admission, heartbeating, until the fan's intent is due.
    async fn wait(&self, seat: &mut Seat, intent_at: Option<Instant>) -> Waited {
        let mut heard = Instant::now();
        let mut heartbeat_at = Instant::now() + Duration::from_millis(HEARTBEAT_INTERVAL_MS);
        loop {
            let now = Instant::now();
            if self.stopped() {
                return Waited::Over;
            }
            if intent_at.is_some_and(|at| now >= at) {
                return Waited::Intent;
            }
            if now >= heard + Duration::from_millis(SILENCE_MS_MAX) {
                return Waited::Lost;
            }
            if now >= heartbeat_at {
                let send = seat.stream.send(&ClientMsg::Heartbeat);
                if !matches!(
                    tokio::time::timeout(Duration::from_millis(HEARTBEAT_SEND_TIMEOUT_MS), send).await,
                    Ok(Ok(()))
                ) {
                    return Waited::Lost;
                }
                heartbeat_at = now + Duration::from_millis(HEARTBEAT_INTERVAL_MS);
            }
            match seat.stream.recv(Duration::from_millis(RECV_SLICE_MS)).await {
                Ok(ServerMsg::Admitted { admission_token, expires_at }) => {
                    return Waited::Admitted { token: admission_token, expires_at }
                }
                Ok(ServerMsg::Parked { come_back_at }) => return Waited::Parked { come_back_at },
                Ok(ServerMsg::Lapsed { .. } | ServerMsg::Error { .. }) => return Waited::Over,
                Ok(_) => heard = Instant::now(),
                Err(RoomError::Timeout(_)) => {}
                Err(_) => return Waited::Lost,
            }
        }
    }

    fn pick_seats(&self, rng: &mut StdRng) -> Vec<u32> {
        let count = rng.gen_range(1..=2u32).min(self.plan.seats);
        let first = rng.gen_range(0..=self.plan.seats - count);
        (first..first + count).collect()
    }

    /// Holds `tickets` on the room's event under `token` (or none), recording it in both
    /// histories.
    async fn hold(&self, fan: &Fan, tickets: Vec<u32>, token: Option<&str>, rng: &mut StdRng) -> Outcome {
        let start_ms = self.recorder.now_ms();
        let event = self.plan.event;
        let (entry, outcome) = self.shop.request_admitted(fan, Op::Hold { event, tickets }, token, rng).await;
        let answer = match &outcome {
            Outcome::Ok { booking } => HoldAnswer::Ok { booking: booking.id.clone() },
            Outcome::Fail { status, .. } => HoldAnswer::Fail { status: *status },
            Outcome::Unknown { .. } => HoldAnswer::Unknown,
        };
        let place = token.and_then(AdmissionClaims::read).map(|claims| place_of(claims.place));
        let end_ms = self.recorder.now_ms();
        let token = token.map(String::from);
        self.recorder.record(RoomRecord::Hold { entry, fan: fan.user, event, token, place, start_ms, end_ms, answer });
        outcome
    }

    /// Holds seats under the admission (other seats if the first were taken), then pays,
    /// releases, abandons the hold, or tries a second hold under the same admission.
    async fn shop_admitted(&self, fan: &Fan, token: &str, rng: &mut StdRng) {
        for _ in 0..HOLD_ATTEMPTS_MAX {
            let tickets = self.pick_seats(rng);
            match self.hold(fan, tickets, Some(token), rng).await {
                Outcome::Ok { booking } => return self.after_hold(fan, token, &booking.id, rng).await,
                Outcome::Fail { status: 409, .. } => continue,
                _ => return,
            }
        }
    }

    async fn after_hold(&self, fan: &Fan, token: &str, booking: &str, rng: &mut StdRng) {
        let release = Op::Release { booking: booking.into() };
        match rng.gen_range(0..100) {
            0..45 => {
                self.shop.request(fan, Op::Pay { booking: booking.into(), card: GOOD_CARD.into() }, rng).await;
            }
            45..75 => {
                self.shop.request(fan, release, rng).await;
            }
            75..90 => {} // abandoned: the hold ends by itself
            _ => {
                // One admission makes one booking: a second hold under it must be refused.
                let tickets = self.pick_seats(rng);
                self.hold(fan, tickets, Some(token), rng).await;
                self.shop.request(fan, release, rng).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_node_is_the_serving_one_with_most_fresh_connected_fans() {
        let view = json!({"nodes": [
            {"node": 1, "connected": 30, "reportAgeMs": 400},
            {"node": 2, "connected": 50, "reportAgeMs": 9_000},
            {"node": 3, "connected": 40, "reportAgeMs": 800},
        ]});
        assert_eq!(busiest_in(&view, &[1, 2, 3]), Some(3), "node 2's report is stale");
        assert_eq!(busiest_in(&view, &[1, 2]), Some(1), "node 3 does not serve");
        let idle = json!({"nodes": [{"node": 1, "connected": 0, "reportAgeMs": 10}]});
        assert_eq!(busiest_in(&idle, &[1]), None, "nobody connected: no busiest node");
        assert_eq!(busiest_in(&json!({}), &[1]), None);
    }

    #[test]
    fn an_admin_view_reads_into_a_sample() {
        let view = json!({
            "watermark": {"class": 1, "primary": 1_700_000_000_000u64, "node": 2, "seq": 5},
            "counts": {"shopping": 12}, "settings": {"shoppingMax": 40}
        });
        let sample = sample_of(3, 900, &view).unwrap();
        let watermark = Place { class: 1, primary: 1_700_000_000_000, node: 2, seq: 5 };
        assert_eq!(
            sample,
            RoomRecord::Sample { node: 3, at_ms: 900, watermark: Some(watermark), shopping: 12, shopping_max: 40 }
        );
        let before = json!({"watermark": null, "counts": {"shopping": 0}, "settings": {"shoppingMax": 40}});
        assert!(matches!(sample_of(1, 5, &before), Some(RoomRecord::Sample { watermark: None, .. })));
        assert_eq!(sample_of(1, 5, &json!({"watermark": null})), None, "no counts: no sample");
    }

    #[test]
    fn a_planted_second_admission_breaks_the_one_token_per_place_rule() {
        let place = Place { class: 1, primary: 10, node: 1, seq: 1 };
        let records = vec![
            RoomRecord::Ticket { fan: 4, place, node: 1, at_ms: 100, presale: false },
            RoomRecord::Admission {
                fan: 4,
                place,
                token: "a1.x".into(),
                node: 1,
                at_ms: 900,
                steady: true,
                since_ms: 100,
            },
        ];
        assert_eq!(crate::checker::room_no_double_admission(&records).violations.len(), 0);
        let planted = planted_double_admission(&records).unwrap();
        let RoomRecord::Admission { place: planted_place, token, .. } = &planted else { panic!("{planted:?}") };
        assert_eq!((planted_place, token.as_str()), (&place, "a1.x.planted"));
        let records = [records, vec![planted]].concat();
        let check = crate::checker::room_no_double_admission(&records);
        assert_eq!(check.violations.len(), 1, "{check}");
        assert_eq!(planted_double_admission(&[]), None, "nothing admitted: nothing to plant");
    }
}

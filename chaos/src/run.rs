//! One chaos run: start a cluster behind proxies, fill a catalog, let fans shop while faults
//! come and go on a seeded schedule, heal everything, read the final state, check it all.
//!
//! Everything the run produces goes into its folder: `history.jsonl`, `room.jsonl` (the waiting
//! room's history, when the run has a room), `final.json`, `faults.json`, `report.json`,
//! `summary.txt` and every node's config, data and log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde_json::{json, Value};

use harness::Settings;

use crate::checker;
use crate::cluster::{Cluster, Proxies, SECRETS};
use crate::faults::{self, Aims, FaultKind, FaultRecord, Schedule};
use crate::history::{Entry, FinalEvent, FinalPayment, FinalState, FinalTicket, ReplicaDigest, RoomRecord};
use crate::report::Report;
use crate::room::{self, RoomRecorder, RoomWorkload};
use crate::workload::{Events, Fan, Recorder, Shop, Targets};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub bin: PathBuf,
    pub out: PathBuf,
    pub duration_ms: u64,
    pub seed: u64,
    pub nodes: u64,
    pub fans: u64,
    pub kinds: Vec<FaultKind>,
    pub hold_ttl_ms: u64,
    /// Fans of the waiting room's event (0: the run has no room).
    pub room_fans: u64,
    /// Adds a second admission of an admitted place, under another token, to the room's history
    /// before checking it: the run must then fail `room_no_double_admission`.
    pub plant_room_violation: bool,
}

/// Inventory groups of a chaos cluster: few, so that the hot event's group is busy.
const INVENTORY_GROUPS: u32 = 4;
/// Seats of a hot event and of each quiet one.
const HOT_SEATS: u32 = 400;
/// Groups a hot event is sold by: its holds go to the group of their seats' rows, so faults
/// meet holds routed by part, and a fan's seats across the parts' boundary are refused whole.
const HOT_GROUPS: u32 = 2;
const QUIET_SEATS: u32 = 60;
const QUIET_EVENTS: usize = 3;
/// When this share of a hot event is sold, a new hot event goes on sale.
const HOT_SOLD_SHARE_MAX: f64 = 0.6;
/// How often the run prints a progress line.
const PROGRESS_INTERVAL_MS: u64 = 10_000;
/// How long the healed cluster may take to elect leaders and catch up.
const SETTLE_TIMEOUT_MS: u64 = 90_000;

/// What a run found.
pub struct Outcome {
    pub report: Report,
    pub summary: String,
}

pub async fn run(options: RunOptions) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&options.out).with_context(|| format!("cannot create {}", options.out.display()))?;
    println!("chaos: seed {} (replay with --seed {}), output in {}", options.seed, options.seed, options.out.display());
    // Every run starts a new cluster: nodes restarted on an earlier run's data would mix its
    // history into this one's (or refuse data of an older build and never come up).
    let cluster_dir = options.out.join("cluster");
    if cluster_dir.exists() {
        std::fs::remove_dir_all(&cluster_dir)
            .with_context(|| format!("cannot remove the last run's cluster in {}", cluster_dir.display()))?;
    }
    let settings = Settings {
        nodes: options.nodes,
        inventory_groups: INVENTORY_GROUPS,
        hold_ttl_ms: options.hold_ttl_ms,
        raft_extra: "snapshot_logs_since_last = 300\nsnapshot_logs_kept_max = 50\n".into(),
        // Fans here buy far more than a real fan would: no per-fan limit.
        gateway_extra: "tickets_per_fan_max = 0".into(),
        // Every room fan joins from 127.0.0.1: no limit of joins per address.
        room_extra: "joins_per_address_per_min = 0".into(),
        secrets: SECRETS,
        ..Settings::in_folder(options.bin.clone(), cluster_dir)
    };
    let mut cluster = Cluster::start_with(settings, Proxies::default()).await.context("starting the cluster")?;
    println!("chaos: {} nodes up", options.nodes);
    let catalog = Catalog::create(&cluster, options.room_fans > 0).await?;
    let hot = (catalog.hot_event().await?, HOT_SEATS);
    // Made second, the room's event lands in a group of its own (groups go round by event id).
    let room_event = match catalog.room_venue {
        Some(venue) => Some(catalog.event(venue, "Room Show".into()).await?),
        None => None,
    };
    let events = Arc::new(RwLock::new(Events { hot, quiet: catalog.quiet(&cluster).await? }));
    let all_events = Arc::new(RwLock::new(vec![events.read().expect("events lock").hot.0]));
    all_events.write().expect("events lock").extend(events.read().expect("events lock").quiet.iter().map(|e| e.0));
    all_events.write().expect("events lock").extend(room_event);

    let recorder = Arc::new(Recorder::new(&options.out.join("history.jsonl"))?);
    let targets: Targets = Arc::new(RwLock::new(Vec::new()));
    refresh_targets(&cluster, &targets);
    let shop = Shop {
        http: reqwest::Client::builder().build()?,
        targets: targets.clone(),
        events: events.clone(),
        recorder: recorder.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        hold_ttl_ms: options.hold_ttl_ms,
    };
    let fans = sign_up(&cluster, options.fans).await?;
    let room = match room_event {
        Some(event) => Some(open_room(&cluster, &options, event, &shop, &recorder).await?),
        None => None,
    };
    println!("chaos: {} fans shopping for {} ms", fans.len(), options.duration_ms);
    let mut tasks: Vec<_> =
        fans.into_iter().map(|fan| tokio::spawn(shop.clone().fan(fan.clone(), options.seed ^ fan.user))).collect();
    if let Some((workload, _, room_fans)) = &room {
        tasks.extend(workload.start(room_fans.clone(), options.seed));
    }

    let rotation = Rotation { catalog: &catalog, events: &events, all: &all_events };
    let aim = Aim { http: &shop.http, targets: &targets, room_event, room: room.as_ref().map(|(_, r, _)| r.as_ref()) };
    let records = inject(&mut cluster, &options, &recorder, &rotation, &aim).await?;

    shop.stop.store(true, Ordering::Relaxed);
    settle(&mut cluster, &targets).await?;
    for task in tasks {
        let _ = task.await;
    }
    recorder.flush();
    println!("chaos: workload stopped after {} requests; reading the final state", recorder.len());
    let room_history = match &room {
        Some((_, room_recorder, _)) => room_history(room_recorder, options.plant_room_violation)?,
        None => Vec::new(),
    };
    cluster.wait_all_caught_up(Duration::from_millis(SETTLE_TIMEOUT_MS)).await?;
    let event_ids = all_events.read().expect("events lock").clone();
    wait_payments_settled(&cluster, &event_ids).await?;
    cluster.wait_all_caught_up(Duration::from_millis(SETTLE_TIMEOUT_MS)).await?;
    let final_state = read_final_state(&cluster, &event_ids).await?;
    let history = recorder.entries();
    let report = checker::check_run(&history, &room_history, &final_state);
    let summary = summarize(&options, &records, &history, &report);
    write_json(&options.out.join("final.json"), &final_state)?;
    write_json(&options.out.join("faults.json"), &records)?;
    write_json(&options.out.join("report.json"), &report)?;
    std::fs::write(options.out.join("summary.txt"), &summary)?;
    Ok(Outcome { report, summary })
}

fn write_json<T: serde::Serialize>(path: &std::path::Path, value: &T) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?).with_context(|| format!("cannot write {}", path.display()))
}

fn refresh_targets(cluster: &Cluster, targets: &Targets) {
    let serving = cluster.serving().into_iter().map(|id| (id, cluster.url(id))).collect();
    *targets.write().expect("targets lock") = serving;
}

/// The venues and performer events are made from.
struct Catalog {
    http: reqwest::Client,
    base: String,
    hot_venue: u64,
    quiet_venue: u64,
    /// The venue of the waiting room's event, when the run has a room.
    room_venue: Option<u64>,
    performer: u64,
}

fn seat_map(seats: u32) -> Value {
    let rows: Vec<Value> = (0..seats.div_ceil(20))
        .map(|r| {
            let seats: Vec<Value> =
                (0..(seats - r * 20).min(20)).map(|s| json!({"number": (s + 1).to_string(), "x": s, "y": r})).collect();
            json!({"name": format!("R{}", r + 1), "seats": seats})
        })
        .collect();
    json!({"sections": [{"name": "Floor", "priceCents": 5000, "rows": rows}]})
}

impl Catalog {
    async fn create(cluster: &Cluster, with_room: bool) -> anyhow::Result<Catalog> {
        let http = cluster.http.clone();
        let base = cluster.url(1);
        let post = |path: &'static str, body: Value| admin_post(&http, &base, path, body);
        let hot_venue =
            post("/admin/venues", json!({"name": "Hot Arena", "city": "Chaosville", "seatMap": seat_map(HOT_SEATS)}))
                .await?;
        let quiet_venue = post(
            "/admin/venues",
            json!({"name": "Quiet Club", "city": "Chaosville", "seatMap": seat_map(QUIET_SEATS)}),
        )
        .await?;
        let room_venue = match with_room {
            true => {
                let map = seat_map(room::ROOM_SEATS);
                Some(post("/admin/venues", json!({"name": "Room Hall", "city": "Chaosville", "seatMap": map})).await?)
            }
            false => None,
        };
        let performer =
            post("/admin/performers", json!({"name": "The Faults", "description": "", "genre": "noise"})).await?;
        Ok(Catalog { http: http.clone(), base, hot_venue, quiet_venue, room_venue, performer })
    }

    async fn event(&self, venue: u64, name: String) -> anyhow::Result<u64> {
        self.event_in(venue, name, 1).await
    }

    /// A new event at `venue`, sold by `groups` inventory groups.
    async fn event_in(&self, venue: u64, name: String, groups: u32) -> anyhow::Result<u64> {
        let body = json!({"name": name, "description": "chaos", "category": "concert", "startsAt": "2035-01-01T20:00:00Z",
                          "venueId": venue, "performerIds": [self.performer], "groups": groups});
        admin_post(&self.http, &self.base, "/admin/events", body).await
    }

    async fn hot_event(&self) -> anyhow::Result<u64> {
        self.event_in(self.hot_venue, "Hot Show".into(), HOT_GROUPS).await
    }

    async fn quiet(&self, _cluster: &Cluster) -> anyhow::Result<Vec<(u64, u32)>> {
        let mut quiet = Vec::new();
        for n in 0..QUIET_EVENTS {
            quiet.push((self.event(self.quiet_venue, format!("Quiet Show {n}")).await?, QUIET_SEATS));
        }
        Ok(quiet)
    }
}

/// Posts to an admin endpoint, retrying while the cluster is briefly unavailable; returns `id`.
async fn admin_post(http: &reqwest::Client, base: &str, path: &str, body: Value) -> anyhow::Result<u64> {
    let mut last = String::new();
    for _ in 0..20 {
        match http.post(format!("{base}{path}")).bearer_auth(SECRETS.admin_token).json(&body).send().await {
            Ok(response) if response.status().is_success() => {
                let body: Value = response.json().await?;
                return body["id"].as_u64().ok_or_else(|| anyhow!("POST {path}: no id in {body}"));
            }
            Ok(response) => last = format!("{}: {}", response.status(), response.text().await.unwrap_or_default()),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(anyhow!("POST {path} failed: {last}"))
}

async fn sign_up(cluster: &Cluster, fans: u64) -> anyhow::Result<Vec<Fan>> {
    let mut signed = Vec::new();
    for n in 0..fans {
        let node = cluster.serving()[n as usize % cluster.serving().len()];
        let fan = cluster.fan(node, format!("fan{n}")).await?;
        signed.push(Fan { user: fan.user, token: fan.token });
    }
    Ok(signed)
}

/// Signs the room's fans up, turns the room of `event` on and sets its workload up (started
/// with the other fans).
async fn open_room(
    cluster: &Cluster,
    options: &RunOptions,
    event: u64,
    shop: &Shop,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<(Arc<RoomWorkload>, Arc<RoomRecorder>, Vec<Fan>)> {
    let fans = room::sign_up(cluster, options.room_fans).await.context("signing the room's fans up")?;
    let room_recorder = Arc::new(RoomRecorder::new(&options.out.join("room.jsonl"), recorder.clone())?);
    let plan = room::open(cluster, event, &room_recorder).await.context("opening the waiting room")?;
    println!(
        "chaos: waiting room of event {event} listed by {} nodes, on sale in {} ms, {} room fans",
        plan.listed.len(),
        plan.on_sale_ms.saturating_sub(room_recorder.now_ms()),
        fans.len()
    );
    Ok((RoomWorkload::new(shop.clone(), room_recorder.clone(), plan), room_recorder, fans))
}

/// The room's history as recorded, with the planted violation if asked for.
fn room_history(recorder: &RoomRecorder, plant: bool) -> anyhow::Result<Vec<RoomRecord>> {
    if plant {
        let planted = room::planted_double_admission(&recorder.records())
            .ok_or_else(|| anyhow!("no place was admitted: there is no admission to plant a second one of"))?;
        println!("chaos: planting a second admission under another token (--plant-room-violation): {planted:?}");
        recorder.record(planted);
    }
    recorder.flush();
    Ok(recorder.records())
}

/// What role faults aim at: the groups' leaders and the room's busiest node.
struct Aim<'a> {
    http: &'a reqwest::Client,
    targets: &'a Targets,
    room_event: Option<u64>,
    /// Where faults are recorded for the room's checks, when the run has a room.
    room: Option<&'a RoomRecorder>,
}

impl Aim<'_> {
    /// The leaders of the hot event's and the room's groups, and for a `kill-room-busiest` the
    /// node with the most connected room fans; and the room's group's leader alone.
    async fn aims(&self, cluster: &Cluster, hot: u64, kind: FaultKind) -> (Aims, Option<u64>) {
        let leader_of = |event: u64| cluster.leader_of(u64::from(model::group_for_new_event(event, INVENTORY_GROUPS)));
        let hot_leader = leader_of(hot).await.ok();
        let room_leader = match self.room_event {
            Some(event) => leader_of(event).await.ok(),
            None => None,
        };
        let mut leaders: Vec<u64> = hot_leader.into_iter().collect();
        leaders.extend(room_leader.filter(|l| Some(*l) != hot_leader));
        let room_busiest = match (kind, self.room_event) {
            (FaultKind::KillRoomBusiest, Some(event)) => {
                let serving = self.targets.read().expect("targets lock").clone();
                room::busiest(self.http, &serving, event).await
            }
            _ => None,
        };
        (Aims { leaders, room_busiest }, room_leader)
    }

    /// Records a fault for the room's checks, with the nodes whose view of the room's group it
    /// may have held back: those it touched, or every node when it touched the group's leader
    /// (or the leader was unknown): an election follows, and every replica may lag behind it.
    fn record(&self, kind: String, touched: &[u64], all: &[u64], room_leader: Option<u64>, span: (u64, u64)) {
        let Some(room) = self.room else { return };
        let leader_touched = room_leader.is_none_or(|leader| touched.contains(&leader));
        let nodes = if leader_touched && !touched.is_empty() { all.to_vec() } else { touched.to_vec() };
        room.record(RoomRecord::Fault { kind, nodes, start_ms: span.0, end_ms: span.1 });
    }
}

/// Puts a new hot event on sale when the current one is mostly sold.
struct Rotation<'a> {
    catalog: &'a Catalog,
    events: &'a Arc<RwLock<Events>>,
    all: &'a Arc<RwLock<Vec<u64>>>,
}

impl Rotation<'_> {
    async fn check(&self, history: &[Entry]) {
        let hot = self.events.read().expect("events lock").hot.0;
        let sold: usize = history
            .iter()
            .filter_map(|e| match (&e.op, &e.result) {
                (crate::history::Op::Pay { .. }, crate::history::Result::Ok { booking }) if booking.event == hot => {
                    Some(booking.tickets.len())
                }
                _ => None,
            })
            .sum();
        if (sold as f64) < HOT_SOLD_SHARE_MAX * HOT_SEATS as f64 {
            return;
        }
        if let Ok(event) = self.catalog.hot_event().await {
            self.events.write().expect("events lock").hot = (event, HOT_SEATS);
            self.all.write().expect("events lock").push(event);
            println!("chaos: hot event {hot} is mostly sold; event {event} goes on sale");
        }
    }
}

/// Runs the fault schedule until the run's time is up; returns what was done.
async fn inject(
    cluster: &mut Cluster,
    options: &RunOptions,
    recorder: &Recorder,
    rotation: &Rotation<'_>,
    aim: &Aim<'_>,
) -> anyhow::Result<Vec<FaultRecord>> {
    let deadline = Instant::now() + Duration::from_millis(options.duration_ms);
    let mut records: Vec<FaultRecord> = Vec::new();
    let mut next_progress = Instant::now() + Duration::from_millis(PROGRESS_INTERVAL_MS);
    let mut schedule = Schedule::new(options.seed, options.kinds.clone());
    let all_nodes: Vec<u64> = (1..=options.nodes).collect();
    let targets = aim.targets;
    while Instant::now() < deadline {
        let planned = schedule.next().expect("the schedule never ends");
        let hot = rotation.events.read().expect("events lock").hot.0;
        let (aims, room_leader) = aim.aims(cluster, hot, planned.kind).await;
        let start_ms = recorder.now_ms();
        let (active, target) = faults::apply(cluster, &planned, &aims).await;
        refresh_targets(cluster, targets);
        wait_reaping(cluster, aim, recorder, Duration::from_millis(planned.duration_ms), &all_nodes).await?;
        faults::heal(cluster, &active).await?;
        refresh_targets(cluster, targets);
        let (nodes, end_ms) = (faults::touched(&active, &all_nodes), recorder.now_ms());
        aim.record(planned.kind.to_string(), &nodes, &all_nodes, room_leader, (start_ms, end_ms));
        records.push(FaultRecord { kind: planned.kind, target, nodes, start_ms, end_ms });
        let quiet = Duration::from_millis(faults::QUIET_AFTER_FAULT_MS);
        wait_reaping(cluster, aim, recorder, quiet, &all_nodes).await?;
        if Instant::now() >= next_progress {
            next_progress += Duration::from_millis(PROGRESS_INTERVAL_MS);
            let history = recorder.entries();
            println!("{}", progress(recorder.now_ms(), &history, &records));
            rotation.check(&history).await;
        }
    }
    Ok(records)
}

/// Waits `duration`, restarting any node that stopped on its own (a "full disk") meanwhile.
async fn wait_reaping(
    cluster: &mut Cluster,
    aim: &Aim<'_>,
    recorder: &Recorder,
    duration: Duration,
    all_nodes: &[u64],
) -> anyhow::Result<()> {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now()))).await;
        for node in cluster.reap_exited() {
            println!("chaos: node {node} stopped on its own; restarting it");
            cluster.start_node(node)?;
            refresh_targets(cluster, aim.targets);
            let now = recorder.now_ms();
            // Whether it led the room's group is not known: taken as if it did.
            aim.record("exited".into(), &[node], all_nodes, None, (now, now));
        }
    }
    Ok(())
}

/// Heals every fault: links, paused and stopped nodes, clocks and disks.
async fn settle(cluster: &mut Cluster, targets: &Targets) -> anyhow::Result<()> {
    cluster.links.iter().for_each(|(_, link)| link.heal());
    cluster.reap_exited();
    for id in 1..=cluster.settings.nodes {
        if cluster.is_paused(id) {
            cluster.resume(id);
        }
        if cluster.is_down(id) {
            cluster.start_node(id)?;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in 1..=cluster.settings.nodes {
        let clear = json!({"clockOffsetMs": 0, "logWriteDelayMs": 0, "logWriteFail": false});
        let _ = cluster.faults(id, clear).await;
    }
    refresh_targets(cluster, targets);
    cluster.wait_ready().await
}

async fn read_final_state(cluster: &Cluster, events: &[u64]) -> anyhow::Result<FinalState> {
    let node = cluster.serving()[0];
    let mut finals = Vec::new();
    for &event in events {
        let state = cluster.admin_get(node, &format!("/admin/events/{event}/state")).await?;
        finals.push(final_event(event, &state)?);
    }
    let mut replicas = Vec::new();
    for group in 0..=INVENTORY_GROUPS {
        replicas.extend(read_group_digests(cluster, group).await?);
    }
    let payments = read_payments(cluster).await?;
    Ok(FinalState { events: finals, replicas, payments })
}

/// Reads of a group's digests at most, until its replicas answer at one applied index.
const DIGEST_READS_MAX: usize = 50;

/// Every replica's digest of `group`, read again while they answer at different applied indexes:
/// a waiting room keeps writing to its group (its nodes' reports), so an entry can land between
/// the reads of two replicas that agree. Replicas that stay apart are the checker's to judge.
async fn read_group_digests(cluster: &Cluster, group: u32) -> anyhow::Result<Vec<ReplicaDigest>> {
    let mut digests = Vec::new();
    for _ in 0..DIGEST_READS_MAX {
        digests.clear();
        for id in 1..=cluster.settings.nodes {
            let digest = cluster.admin_get(id, &format!("/admin/groups/{group}/digest")).await?;
            digests.push(ReplicaDigest {
                group,
                node: id,
                applied_index: digest["appliedIndex"].as_u64().unwrap_or(0),
                digest: digest["digest"].as_str().unwrap_or_default().to_string(),
            });
        }
        if digests.windows(2).all(|pair| pair[0].applied_index == pair[1].applied_index) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(digests)
}

/// Every payment the sandbox provider holds.
async fn read_payments(cluster: &Cluster) -> anyhow::Result<Vec<FinalPayment>> {
    let url = format!("{}/v1/payment_intents?limit=1000000", cluster.sandbox_url);
    let list: Value = cluster.http.get(url).bearer_auth(SECRETS.payment_api_key).send().await?.json().await?;
    let data = list["data"].as_array().ok_or_else(|| anyhow!("the provider listed no payments: {list}"))?;
    data.iter()
        .map(|p| {
            Some(FinalPayment {
                id: p["id"].as_str()?.to_string(),
                booking: p["bookingId"].as_str()?.to_string(),
                status: p["status"].as_str()?.to_string(),
                amount: p["amount"].as_u64()?,
                amount_refunded: p["amountRefunded"].as_u64().unwrap_or(0),
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow!("the provider's payments are unreadable"))
}

/// Waits until every payment the provider captured is either refunded or has bought its
/// booking: webhooks and the reconciliation task may still be at work after the faults healed.
async fn wait_payments_settled(cluster: &Cluster, events: &[u64]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(SETTLE_TIMEOUT_MS);
    loop {
        let payments = read_payments(cluster).await?;
        let node = cluster.serving()[0];
        let mut confirmed = std::collections::HashSet::new();
        for &event in events {
            let state = cluster.admin_get(node, &format!("/admin/events/{event}/state")).await?;
            for b in state["bookings"].as_array().into_iter().flatten().filter(|b| b["status"] == "confirmed") {
                confirmed.insert(b["id"].as_str().unwrap_or_default().to_string());
            }
        }
        let open = payments
            .iter()
            .filter(|p| p.status == "succeeded" && p.amount_refunded < p.amount && !confirmed.contains(&p.booking))
            .count();
        if open == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            println!("chaos: {open} captured payments still unsettled after {SETTLE_TIMEOUT_MS} ms");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn final_event(event: u64, state: &Value) -> anyhow::Result<FinalEvent> {
    let bad = || anyhow!("unreadable state of event {event}: {state}");
    let tickets = state["tickets"].as_array().ok_or_else(bad)?;
    let tickets = tickets
        .iter()
        .map(|t| {
            Some(FinalTicket {
                id: t["id"].as_u64()? as u32,
                state: t["state"].as_str()?.to_string(),
                booking: t["booking"].as_str()?.to_string(),
                until_ms: t["untilMs"].as_u64(),
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?;
    let bookings = state["bookings"].as_array().ok_or_else(bad)?;
    let bookings = bookings
        .iter()
        .map(|b| {
            Some(crate::history::Booking {
                id: b["id"].as_str()?.to_string(),
                event: b["event"].as_u64()?,
                fan: b["fan"].as_u64()?,
                tickets: b["tickets"].as_array()?.iter().filter_map(|t| t.as_u64().map(|n| n as u32)).collect(),
                status: b["status"].as_str()?.to_string(),
                created_at_ms: b["createdAtMs"].as_u64()?,
                held_until_ms: b["heldUntilMs"].as_u64()?,
                confirmed_at_ms: b["confirmedAtMs"].as_u64(),
                released_at_ms: b["releasedAtMs"].as_u64(),
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?;
    let parts = state["groups"].as_array().map_or(1, |groups| groups.len().max(1) as u32);
    Ok(FinalEvent { event, parts, tickets, bookings })
}

fn result_kind(entry: &Entry) -> &'static str {
    match entry.result {
        crate::history::Result::Ok { .. } => "ok",
        crate::history::Result::Fail { .. } => "fail",
        crate::history::Result::Unknown { .. } => "unknown",
    }
}

fn progress(now_ms: u64, history: &[Entry], records: &[FaultRecord]) -> String {
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    history.iter().for_each(|e| *by_kind.entry(result_kind(e)).or_default() += 1);
    format!(
        "chaos: t={}s requests={} ok={} fail={} unknown={} faults={}",
        now_ms / 1000,
        history.len(),
        by_kind.get("ok").unwrap_or(&0),
        by_kind.get("fail").unwrap_or(&0),
        by_kind.get("unknown").unwrap_or(&0),
        records.len()
    )
}

/// The human summary: faults by kind, requests by outcome, throughput over time, verdicts.
fn summarize(options: &RunOptions, records: &[FaultRecord], history: &[Entry], report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "chaos run: seed {}, {} nodes, {} fans, {} room fans, {} s",
        options.seed,
        options.nodes,
        options.fans,
        options.room_fans,
        options.duration_ms / 1000
    );
    let _ = writeln!(out, "\nfaults ({}):", records.len());
    let mut by_kind: BTreeMap<FaultKind, usize> = BTreeMap::new();
    records.iter().for_each(|r| *by_kind.entry(r.kind).or_default() += 1);
    for kind in &options.kinds {
        let _ = writeln!(out, "  {:<18} {}", kind.to_string(), by_kind.get(kind).unwrap_or(&0));
    }
    let _ = writeln!(out, "\nthroughput (answered ok per second, by 10 s window):");
    let mut windows: BTreeMap<u64, [usize; 3]> = BTreeMap::new();
    for entry in history {
        let slot = windows.entry(entry.end_ms / 10_000).or_default();
        slot[match result_kind(entry) {
            "ok" => 0,
            "fail" => 1,
            _ => 2,
        }] += 1;
    }
    for (window, [ok, fail, unknown]) in &windows {
        let bar = "#".repeat((*ok / 100).min(60));
        let _ = writeln!(
            out,
            "  {:>4}-{:<4}s ok {:>6.1}/s fail {:>5} unknown {:>5} {bar}",
            window * 10,
            window * 10 + 10,
            *ok as f64 / 10.0,
            fail,
            unknown
        );
    }
    let _ = writeln!(out, "\n{report}");
    let violations: usize = report.checks.iter().map(|c| c.violations.len()).sum();
    let verdict = if report.ok() { "PASS: 0 violations".to_string() } else { format!("FAIL: {violations} violations") };
    let _ = writeln!(out, "verdict: {verdict}");
    out
}

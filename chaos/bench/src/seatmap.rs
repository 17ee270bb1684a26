//! Scenario `m`, the live seat map: `--map-subscribers` fans hold an event's seat stream open
//! (`GET /events/{id}/seats/stream`, spread over the cluster's gateways) while holds of one seat
//! each run at `--map-holds-per-s` for `--map-duration`. It reports the streams held, each
//! gateway's memory per stream (its node's RSS growth ÷ the streams it serves), what a watching
//! fan receives a second, and the time from a hold's answer to its delta's arrival at
//! [`PROBES`] of the subscribers (the others only count bytes, so that the benchmark's own CPU
//! goes to holding streams, not parsing them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use harness::{Cluster, Settings};
use hdrhistogram::Histogram;
use http::Method;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

use crate::http::Conn;
use crate::room::{self, Quantiles, SseDecoder};

/// Subscribers that decode their stream and time each delta.
pub const PROBES: usize = 100;
/// Streams being opened at once.
const OPENS_IN_FLIGHT_MAX: usize = 256;
/// Connections that make the holds.
const HOLD_CONNECTIONS: usize = 32;
/// How long after the last hold the probes may take to see it.
const SETTLE_MS: u64 = 3_000;
/// Bytes of a stream's answer head, at most.
const HEAD_BYTES_MAX: usize = 4_096;
/// Streams one process holds at most: each is a socket, and a process here may have 20,000
/// files open; the streams beyond are held by helper processes (this binary again).
pub const STREAMS_PER_PROCESS_MAX: usize = 15_000;
/// The environment variable that makes this binary a helper: `<event> <count> <addr>...`.
pub const HELPER_ENV: &str = "BOXOFFICE_BENCH_SEAT_STREAMS";

pub struct MapSpec {
    pub bin: std::path::PathBuf,
    pub dir: std::path::PathBuf,
    pub nodes: u64,
    pub subscribers: usize,
    pub seats: usize,
    pub holds_per_s: u64,
    pub duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MapFigures {
    pub nodes: u64,
    pub seats: usize,
    pub subscribers_asked: usize,
    pub subscribers_held: usize,
    pub open_s: f64,
    /// Each node's RSS growth per stream it serves, in bytes.
    pub bytes_per_subscriber: Vec<(u64, f64)>,
    pub holds: u64,
    pub hold_failures: u64,
    pub holds_per_s: f64,
    /// From a hold's answer to its delta at the probes.
    pub delta_latency: Quantiles,
    /// Holds a probe never saw.
    pub deltas_missed: u64,
    /// What a watching fan received a second while the holds ran.
    pub bytes_per_s_per_fan: f64,
    /// The first event of a stream (the snapshot), in bytes.
    pub snapshot_bytes: usize,
    pub stream_failures: u64,
}

/// What the subscribers share.
#[derive(Default)]
struct Watch {
    /// Bytes received by the probes.
    probe_bytes: AtomicU64,
    /// When each probe first saw each seat held, in ms since the scenario's start.
    seen: Mutex<HashMap<(usize, u32), u64>>,
    failures: AtomicU64,
    snapshot_bytes: AtomicUsize,
}

/// Runs scenario `m`.
pub async fn run(spec: MapSpec) -> anyhow::Result<MapFigures> {
    let here = spec.subscribers.min(STREAMS_PER_PROCESS_MAX);
    room::raise_open_files(here as u64 + 4_096)?;
    let settings = Settings {
        nodes: spec.nodes,
        // Every stream is a connection: the node's connection cap must not be what is measured.
        gateway_extra: format!(
            "tickets_per_fan_max = 0\nseat_subscribers_max = {}\nconnections_max = {}",
            spec.subscribers * 2,
            spec.subscribers + 10_000
        ),
        ..Settings::in_folder(spec.bin.clone(), spec.dir.clone())
    };
    let cluster = Cluster::start(settings).await?;
    println!("seat map: {} seats, {} subscribers, holds at {}/s", spec.seats, spec.subscribers, spec.holds_per_s);
    let event = cluster.seed_event(spec.seats).await?["id"].as_u64().ok_or_else(|| anyhow!("no event id"))?;
    let fan = cluster.fan(1, "holder").await?;
    let bases: Vec<String> = (1..=spec.nodes).map(|id| cluster.url(id)).collect();
    for base in &bases {
        // Starts each gateway's feed, so that the memory measured is the streams'.
        reqwest::get(format!("{base}/events/{event}/seats")).await?.error_for_status()?;
    }
    let pids = room::node_pids(cluster.dir(), spec.nodes)?;
    let before = room::nodes_rss(&pids)?;
    let start = Instant::now();
    let watch = Arc::new(Watch::default());
    let (stop, stopped) = watch::channel(false);
    let opening = Instant::now();
    let addrs: Vec<String> = bases.iter().map(|b| b.trim_start_matches("http://").to_string()).collect();
    let (mut held, _) = open_streams(&addrs, event, 0, here, &watch, &stopped, start).await?;
    let mut helpers = Vec::new();
    let mut rest = spec.subscribers - here;
    while rest > 0 {
        let count = rest.min(STREAMS_PER_PROCESS_MAX);
        let (helper, opened) = start_helper(&addrs, event, count).await?;
        held += opened;
        helpers.push(helper);
        rest -= count;
    }
    let open_s = opening.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = room::nodes_rss(&pids)?;
    let per_node = (spec.subscribers as f64 / spec.nodes as f64).max(1.0);
    let bytes_per_subscriber =
        before.iter().zip(&after).map(|((id, b), (_, a))| (*id, a.saturating_sub(*b) as f64 / per_node)).collect();
    let bytes_before = watch.probe_bytes.load(Ordering::Relaxed);
    let hold_start = Instant::now();
    let answers = hold_all(&bases, event, &fan.token, &spec, start).await;
    let hold_s = hold_start.elapsed().as_secs_f64();
    let bytes_during = watch.probe_bytes.load(Ordering::Relaxed) - bytes_before;
    tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
    let _ = stop.send(true);
    for mut helper in helpers {
        // Its input closed, a helper lets its streams go and exits.
        drop(helper.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(30), helper.wait()).await;
    }
    let (delta_latency, deltas_missed) = latencies(&answers.granted, &watch);
    let figures = MapFigures {
        nodes: spec.nodes,
        seats: spec.seats,
        subscribers_asked: spec.subscribers,
        subscribers_held: held,
        open_s,
        bytes_per_subscriber,
        holds: answers.granted.len() as u64,
        hold_failures: answers.failures,
        holds_per_s: answers.granted.len() as f64 / hold_s.max(0.001),
        delta_latency,
        deltas_missed,
        bytes_per_s_per_fan: bytes_during as f64 / PROBES.min(held).max(1) as f64 / hold_s.max(0.001),
        snapshot_bytes: watch.snapshot_bytes.load(Ordering::Relaxed),
        stream_failures: watch.failures.load(Ordering::Relaxed),
    };
    drop(cluster);
    Ok(figures)
}

/// Starts a helper process holding `count` streams; it and how many it opened.
async fn start_helper(addrs: &[String], event: u64, count: usize) -> anyhow::Result<(tokio::process::Child, usize)> {
    use tokio::io::AsyncBufReadExt;
    let role = format!("{event} {count} {}", addrs.join(" "));
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .env(HELPER_ENV, role)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no helper output"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(opened) = line.strip_prefix("opened ") {
            return Ok((child, opened.trim().parse()?));
        }
        println!("{line}");
    }
    bail!("a seat stream helper ended before it said how many streams it opened")
}

/// A helper's life: opens the streams its role names, says `opened N`, reads them until its
/// input closes.
pub async fn be_helper(role: &str) -> anyhow::Result<()> {
    let mut words = role.split_whitespace();
    let event: u64 = words.next().ok_or_else(|| anyhow!("no event in {role:?}"))?.parse()?;
    let count: usize = words.next().ok_or_else(|| anyhow!("no count in {role:?}"))?.parse()?;
    let addrs: Vec<String> = words.map(str::to_string).collect();
    if addrs.is_empty() {
        bail!("no gateway address in {role:?}");
    }
    room::raise_open_files(count as u64 + 1_024)?;
    let watch = Arc::new(Watch::default());
    let (stop, stopped) = watch::channel(false);
    // Indexes from PROBES on: a helper's streams only read.
    let (opened, _) = open_streams(&addrs, event, PROBES, count, &watch, &stopped, Instant::now()).await?;
    println!("opened {opened}");
    let mut input = String::new();
    let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut input)).await;
    let _ = stop.send(true);
    Ok(())
}

/// Opens streams `first..first + count` (stream `i` on gateway `i % gateways`); how many opened,
/// in how long.
async fn open_streams(
    addrs: &[String],
    event: u64,
    first: usize,
    subscribers: usize,
    watch: &Arc<Watch>,
    stopped: &watch::Receiver<bool>,
    start: Instant,
) -> anyhow::Result<(usize, f64)> {
    let opening = Instant::now();
    let gate = Arc::new(Semaphore::new(OPENS_IN_FLIGHT_MAX));
    let opened = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(subscribers);
    for i in first..first + subscribers {
        let permit = gate.clone().acquire_owned().await?;
        let addr = addrs[i % addrs.len()].clone();
        let (watch, stopped, opened) = (watch.clone(), stopped.clone(), opened.clone());
        tasks.push(tokio::spawn(async move {
            let stream = open_stream(&addr, event).await;
            // Counted before the permit goes back: the opener reads the count once every permit
            // is back.
            let failures_before = match &stream {
                Ok(_) => {
                    opened.fetch_add(1, Ordering::Relaxed);
                    0
                }
                Err(_) => watch.failures.fetch_add(1, Ordering::Relaxed),
            };
            drop(permit);
            match stream {
                Ok((stream, first)) => follow(i, stream, first, &watch, stopped, start).await,
                Err(error) if failures_before < 3 => eprintln!("subscriber {i}: {error:#}"),
                Err(_) => {}
            }
        }));
        if (i + 1 - first).is_multiple_of(5_000) {
            println!("  opening streams: {} of {subscribers}", i + 1 - first);
        }
    }
    let _ = gate.acquire_many(OPENS_IN_FLIGHT_MAX as u32).await?;
    let held = opened.load(Ordering::Relaxed);
    println!("{held} of {subscribers} streams open in {:.1} s", opening.elapsed().as_secs_f64());
    drop(tasks);
    Ok((held, opening.elapsed().as_secs_f64()))
}

async fn open_stream(addr: &str, event: u64) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request =
        format!("GET /events/{event}/seats/stream HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 2048];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the gateway closed the stream before its head");
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            if !head.starts_with(b"HTTP/1.1 200") {
                bail!("the stream answered {}", String::from_utf8_lossy(&head[..end]));
            }
            return Ok((stream, head[end + 4..].to_vec()));
        }
        if head.len() > HEAD_BYTES_MAX {
            bail!("a stream's head over {HEAD_BYTES_MAX} bytes");
        }
    }
}

/// Reads one stream until the scenario stops: a probe decodes it and notes when it saw each seat
/// held; any other subscriber only reads.
async fn follow(
    i: usize,
    mut stream: TcpStream,
    first: Vec<u8>,
    watch: &Watch,
    mut stopped: watch::Receiver<bool>,
    start: Instant,
) {
    let probe = i < PROBES;
    let mut decoder = SseDecoder::default();
    let mut buf = vec![0u8; if probe { 16 * 1024 } else { 2 * 1024 }];
    let mut bytes = first;
    loop {
        if probe {
            watch.probe_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            match decoder.push(&bytes) {
                Ok(events) => events.iter().for_each(|data| note(i, data, watch, start)),
                Err(error) => {
                    watch.failures.fetch_add(1, Ordering::Relaxed);
                    return eprintln!("probe {i}: {error:#}");
                }
            }
        }
        let n = tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    watch.failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(n) => n,
            },
            _ = stopped.changed() => return,
        };
        bytes = buf[..n].to_vec();
    }
}

/// Notes the seats a probe's event shows held.
fn note(probe: usize, data: &str, watch: &Watch, start: Instant) {
    let Ok(event) = serde_json::from_str::<Value>(data) else { return };
    if event.get("sold").and_then(Value::as_str).is_some() {
        // A snapshot: its size, once.
        let _ = watch.snapshot_bytes.compare_exchange(0, data.len(), Ordering::Relaxed, Ordering::Relaxed);
        return;
    }
    let at = start.elapsed().as_millis() as u64;
    let mut seen = watch.seen.lock().expect("seen lock");
    for seat in event["held"].as_array().into_iter().flatten().filter_map(Value::as_u64) {
        seen.entry((probe, seat as u32)).or_insert(at);
    }
}

/// The holds made: each seat held and when its answer came (ms since the start), and failures.
struct Answers {
    granted: Vec<(u32, u64)>,
    failures: u64,
}

/// Holds one seat at a time, seat after seat, at `holds_per_s` over [`HOLD_CONNECTIONS`]
/// connections, for the spec's duration or until the seats run out.
async fn hold_all(bases: &[String], event: u64, token: &str, spec: &MapSpec, start: Instant) -> Answers {
    let next = Arc::new(AtomicUsize::new(0));
    let per_connection_ms = HOLD_CONNECTIONS as f64 * 1_000.0 / spec.holds_per_s.max(1) as f64;
    let deadline = Instant::now() + spec.duration;
    let mut tasks = Vec::new();
    for c in 0..HOLD_CONNECTIONS {
        let (next, token, seats) = (next.clone(), token.to_string(), spec.seats);
        let mut conn = Conn::new(&bases[c % bases.len()]);
        tasks.push(tokio::spawn(async move {
            let mut answers = Answers { granted: Vec::new(), failures: 0 };
            let mut pace = tokio::time::interval(Duration::from_secs_f64(per_connection_ms / 1_000.0));
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < deadline {
                pace.tick().await;
                let seat = next.fetch_add(1, Ordering::Relaxed);
                if seat >= seats {
                    break;
                }
                let body = format!("{{\"ticketIds\":[{seat}]}}");
                let path = format!("/events/{event}/bookings");
                match conn.send(Method::POST, &path, Some(&token), Some(body)).await {
                    Ok((status, _)) if status.as_u16() == 201 => {
                        answers.granted.push((seat as u32, start.elapsed().as_millis() as u64));
                    }
                    _ => answers.failures += 1,
                }
            }
            answers
        }));
    }
    let mut all = Answers { granted: Vec::new(), failures: 0 };
    for task in tasks {
        if let Ok(answers) = task.await {
            all.granted.extend(answers.granted);
            all.failures += answers.failures;
        }
    }
    println!("{} holds ({} failed)", all.granted.len(), all.failures);
    all
}

/// From each hold's answer to its delta at each probe (a delta that came before the answer
/// counts as 0), and the holds a probe never saw.
fn latencies(granted: &[(u32, u64)], watch: &Watch) -> (Quantiles, u64) {
    let seen = watch.seen.lock().expect("seen lock");
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
    let mut missed = 0;
    let probes = seen.keys().map(|(probe, _)| *probe).max().map_or(0, |p| p + 1);
    for probe in 0..probes {
        for (seat, answered_ms) in granted {
            match seen.get(&(probe, *seat)) {
                Some(at) => {
                    let _ = histogram.record(at.saturating_sub(*answered_ms).max(1) * 1_000);
                }
                None => missed += 1,
            }
        }
    }
    (Quantiles::of(&histogram), missed)
}

/// The scenario's table.
pub fn markdown(f: &MapFigures, header: &str) -> String {
    let per_subscriber: Vec<String> =
        f.bytes_per_subscriber.iter().map(|(node, bytes)| format!("node {node}: {bytes:.0} B")).collect();
    let worst = f.bytes_per_subscriber.iter().map(|(_, b)| *b).fold(0.0, f64::max);
    let mut out = format!("{header}\n\n| figure | target | measured | met |\n|---|---|---:|---|\n");
    let met = |ok: bool| if ok { "yes" } else { "no" };
    out +=
        &format!("| seat streams held | ≥ 20,000 | {} | {} |\n", f.subscribers_held, met(f.subscribers_held >= 20_000));
    out += &format!(
        "| hold answer → delta at subscribers, p99 | ≤ 1 s | {:.0} ms | {} |\n",
        f.delta_latency.p99_ms,
        met(f.delta_latency.p99_ms <= 1_000.0 && f.deltas_missed == 0)
    );
    out += &format!(
        "| bytes a second a watching fan receives, at {:.0} holds/s | ≤ 10 KB/s | {:.1} KB/s | {} |\n",
        f.holds_per_s,
        f.bytes_per_s_per_fan / 1_000.0,
        met(f.bytes_per_s_per_fan <= 10_000.0)
    );
    out += &format!("| gateway memory per stream | | {worst:.0} B (worst node) | |\n\n");
    out += "| phase | figures |\n|---|---|\n";
    out += &format!(
        "| streams | {} of {} open in {:.1} s over {} gateways; {} failed; the snapshot event {} bytes |\n",
        f.subscribers_held, f.subscribers_asked, f.open_s, f.nodes, f.stream_failures, f.snapshot_bytes
    );
    out += &format!("| memory per stream | {} |\n", per_subscriber.join("; "));
    out += &format!("| holds | {} granted ({} failed), {:.0}/s |\n", f.holds, f.hold_failures, f.holds_per_s);
    out += &format!(
        "| hold answer → delta | {} probes × holds: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} never seen |\n",
        PROBES, f.delta_latency.p50_ms, f.delta_latency.p99_ms, f.delta_latency.max_ms, f.deltas_missed
    );
    out
}

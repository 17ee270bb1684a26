//! Scenario `w`: the waiting room of a 3-node cluster holding tens of thousands of fans, each on a
//! QUIC connection of its own, and a few thousand more on the HTTP fallback's event streams.
//!
//! Phases, in one run (see docs/benchmarks/README.md, "Waiting room"):
//! 1. connections: `fans` QUIC connections spread evenly over the nodes' endpoints, from several
//!    client sockets (`--room-fans-per-socket` each), then on each one stream that says hello and
//!    solves the challenge it gets; once every fan has, the joins go together (join frame, ticket),
//!    timed apart from the hellos: a join is a join frame checked, ticketed and answered;
//! 2. holding: every node's resident memory before and after, per connected fan, and the
//!    benchmark's own;
//! 3. the HTTP fallback: `sse_fans` fans join by `POST hello` and `POST join` and wait on a
//!    `GET .../stream` of server-sent events; the nodes' memory per such fan;
//! 4. pushes: a pause and a resume before the on-sale, each timed from the admin `PUT` until
//!    every waiting fan has been told; after the on-sale, a rate change, timed alike;
//! 5. admissions: the on-sale at a set rate, the rate over a window from the admin counts, the
//!    time from the tick that passed each place to its fan's `admitted`, and places admitted out
//!    of order.
//!
//! A tick's time comes from the admission token itself: it ends `admissionMs` after the tick that
//! passed its place, stamped by the group's clock on this machine.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use futures::stream::{self, StreamExt};
use harness::room::{rfc3339, ClientMsg, ServerMsg, ALPN, FRAME_BYTES_MAX, SERVER_NAME};
use harness::{fan_token, get_room, put_room, room_info_when, AdmissionClaims, Cluster, Place, RoomNode, Settings};
use hdrhistogram::Histogram;
use http::Method;
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::http::Conn;

/// Handshakes under way at once.
const CONNECTS_IN_FLIGHT_MAX: usize = 100;
/// Hellos, or joins, under way at once. More do not join faster here: with 1,000, the answers'
/// bursts and the benchmark's backlog took joins from 7,900 a second to 3,900.
const JOINS_IN_FLIGHT_MAX: usize = 200;
/// HTTP connections that make the fallback's joins (each fan's hello and join in turn).
const SSE_JOIN_CONNECTIONS: usize = 64;
/// Event streams being opened at once.
const SSE_OPENS_IN_FLIGHT_MAX: usize = 256;
/// Receive and send buffers of each client UDP socket: 8 KiB for each of its 500 fans (a few
/// datagrams each, as the kernel counts a datagram's buffer). One socket stands for many fans' devices, each
/// with a buffer of its own: too small, and a push to every fan overflows it (what is dropped
/// comes again a loss timeout later); too large, and the benchmark's backlog sits in it for
/// seconds, while the nodes' loss timers fire and send each push again (a burst then cost 9
/// datagrams a push instead of 2). Forced past `net.core.rmem_max` when the benchmark may
/// (`SO_RCVBUFFORCE`, as root), else what the kernel allows.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;
/// Longest wait for one answer of a node.
const ANSWER_TIMEOUT_MS: u64 = 15_000;
/// Keep-alive of a client connection: it keeps a fan connected between its join and the first
/// position (after that, positions come every 5 s, and each one defers it).
const KEEP_ALIVE_INTERVAL_MS: u64 = 10_000;
/// Outcomes of joins queued for the phase that counts them.
const OUTCOMES_QUEUE_MAX: usize = 4_096;
/// How long a new room may take to be listed by every node.
const ROOM_LISTED_WITHIN_MS: u64 = 30_000;
/// How long the room's counts may take to show every fan connected (reports come each second).
const COUNTED_WITHIN_MS: u64 = 30_000;
/// Pause after the joins before memory is read, so that what they left in flight settles.
const SETTLE_MS: u64 = 3_000;
/// How long a push round may take before it is reported as not reaching everyone.
const ROUND_TIMEOUT_MS: u64 = 30_000;
/// How far ahead the on-sale is set once every fan waits (the admin API takes whole seconds).
const ON_SALE_AHEAD_MS: u64 = 3_000;
/// Time after the on-sale before the admission window opens (the first tick's burst).
const WINDOW_SKIP_MS: u64 = 5_000;
/// Longest admission window.
const WINDOW_MS_MAX: u64 = 60_000;
/// Longest wait for the line to empty once the rate has been raised.
const DRAIN_TIMEOUT_MS: u64 = 180_000;
/// How often the phases look at the ledger and the admin view.
const POLL_MS: u64 = 50;
/// How long an admission lasts (the token's expiry gives the tick that passed the place).
const ADMISSION_MS: u64 = 600_000;
/// How long a fan whose connection ended keeps its place.
const ABANDON_MS: u64 = 300_000;
/// The room's shopping limit, high enough never to hold the line back here.
const SHOPPING_MAX: u32 = 10_000_000;
/// How long the fans' tokens last.
const FAN_TOKEN_TTL_MS: u64 = 3_600_000;
/// First fan id: clear of the cluster's signed-up fans.
const FIRST_UID: u64 = 1_000_000;
/// How much earlier than a place ahead of it a place may be passed before it counts as out of
/// order: ticks come a second apart, give or take the raft write.
const ORDER_SLACK_MS: u64 = 1_500;
/// Latencies are recorded in microseconds, up to ten minutes.
const LATENCY_MAX_US: u64 = 600_000_000;
/// Failure messages kept as examples.
const FAILURE_EXAMPLES_MAX: usize = 5;
/// Largest SSE buffer of one fan (the node's messages are a few hundred bytes).
const SSE_BUFFER_BYTES_MAX: usize = 64 << 10;
/// Largest head of an event stream's answer.
const SSE_HEAD_BYTES_MAX: usize = 16 << 10;

/// What the scenario is asked to do.
#[derive(Debug, Clone)]
pub struct RoomSpec {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub nodes: u64,
    /// Fans on QUIC, one connection each.
    pub fans: usize,
    /// Fans on the HTTP fallback, one event stream each.
    pub sse_fans: usize,
    pub pow_bits: u8,
    /// The admission rate set at the on-sale.
    pub rate_per_min: u32,
    /// QUIC connections one client UDP socket (one quinn endpoint) carries.
    pub fans_per_socket: usize,
}

/// Everything the scenario measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomFigures {
    pub nodes: u64,
    pub fans: usize,
    pub sse_fans: usize,
    pub pow_bits: u8,
    pub rate_per_minute: u32,
    pub client_sockets: usize,
    pub connections: ConnectFigures,
    pub joins: JoinFigures,
    pub holding: HoldingFigures,
    pub sse: SseFigures,
    pub pushes: Vec<RoundFigures>,
    pub admissions: AdmissionFigures,
    /// Datagrams the kernel dropped over the run because a socket's receive buffer was full.
    pub datagrams_dropped: DropFigures,
    /// Fans whose stream or connection failed, whatever the phase, and a few of the failures.
    pub failures: u64,
    pub failure_examples: Vec<String>,
    pub targets: Vec<TargetCheck>,
}

/// Datagrams dropped on arrival (a full receive buffer): on one machine, the side that cannot keep
/// up. Drops at the benchmark's sockets make its latencies the benchmark's, not the nodes'.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DropFigures {
    pub client_sockets: u64,
    pub node_sockets: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quantiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Quantiles {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Quantiles {
        let ms = |us: u64| us as f64 / 1_000.0;
        Quantiles {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.5)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectFigures {
    pub opened: u64,
    pub failed: u64,
    pub elapsed_s: f64,
    pub per_s: f64,
    /// Handshake time of each connection.
    pub handshake: Quantiles,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinFigures {
    pub joined: u64,
    pub failed: u64,
    /// From the go to the last ticket: every greeted fan sends its join frame (at most
    /// `JOINS_IN_FLIGHT_MAX` at once) and waits for its ticket.
    pub elapsed_s: f64,
    /// Fans ticketed per second from the go: join frames checked (proof of work, challenge),
    /// ticketed and answered.
    pub per_s: f64,
    /// From the join frame sent to the ticket received.
    pub join: Quantiles,
    /// How long the hellos took, all fans (before the go, not part of a join).
    pub hello_elapsed_s: f64,
    /// From opening the stream to the challenge solved.
    pub hello_to_challenge: Quantiles,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeHolding {
    pub node: u64,
    /// Connections the benchmark opened to the node and that joined.
    pub fans: u64,
    /// Fans the node's own report counts as connected.
    pub reported_connected: u64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub per_fan_bytes: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldingFigures {
    /// Fans waiting and connected by the room's counts, once every QUIC fan joined.
    pub fans_held: u64,
    pub per_node: Vec<NodeHolding>,
    /// The nodes' resident memory growth, all together, per fan held.
    pub rss_per_fan_bytes: f64,
    /// The benchmark's own resident memory growth per fan (its side of each connection).
    pub bench_rss_per_fan_bytes: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SseFigures {
    pub joined: u64,
    pub failed: u64,
    pub streams_open: u64,
    pub elapsed_s: f64,
    /// From the join request sent to its answer (the ticket).
    pub join: Quantiles,
    pub per_node: Vec<NodeHolding>,
    pub rss_per_fan_bytes: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundFigures {
    /// `pause`, `resume` (both before the on-sale, every fan waiting) or `rate` (after it).
    pub kind: String,
    /// Fans that were to be told (waiting, connected) and those told within the round's limit.
    pub fans: u64,
    pub reached: u64,
    /// From the admin `PUT` sent until the last fan was told.
    pub all_reached_ms: f64,
    pub quic: Quantiles,
    pub sse: Quantiles,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionFigures {
    pub set_rate_per_minute: u32,
    pub window_s: f64,
    pub admitted_in_window: u64,
    /// `counts.admitted` of the admin view over the window, per minute.
    pub per_minute: f64,
    pub admitted_quic: u64,
    pub admitted_sse: u64,
    /// From the tick that passed the place to the fan's `admitted`.
    pub quic: Quantiles,
    pub sse: Quantiles,
    /// Places passed more than a tick before a place ahead of them.
    pub order_violations: u64,
    /// Places passed at all before a place ahead of them (within a tick too).
    pub inversions: u64,
    /// The room's late admissions, parked and lapsed fans.
    pub late: u64,
    pub parked: u64,
    pub lapsed: u64,
    /// Fans still waiting when the scenario gave up on the line emptying.
    pub never_admitted: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetCheck {
    pub figure: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// Which transport a fan waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Quic,
    Sse,
}

/// What one admission told: the tick that passed the place and when the fan heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Admit {
    place: Place,
    passed_at_ms: u64,
    arrival_ms: u64,
}

#[derive(Debug, Clone)]
struct FanRecord {
    via: Via,
    /// Known once the fan holds a ticket.
    place: Option<Place>,
    admitted: Option<Admit>,
    /// Its stream or connection failed (or the node sent it away): it waits no more.
    gone: bool,
    /// The last push round that reached it.
    reached_round: u32,
}

/// A push round under way: what the fans must be told, since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoundKind {
    Pause,
    Resume,
    Rate,
}

impl RoundKind {
    fn name(self) -> &'static str {
        match self {
            RoundKind::Pause => "pause",
            RoundKind::Resume => "resume",
            RoundKind::Rate => "rate",
        }
    }

    /// Whether a position tells a fan about this round's change.
    fn told_by(self, paused: bool, note: Option<&str>) -> bool {
        match self {
            RoundKind::Pause => paused,
            RoundKind::Resume => !paused,
            RoundKind::Rate => note.is_some_and(|n| n.contains("admission rate changed")),
        }
    }
}

struct Round {
    id: u32,
    kind: RoundKind,
    started: Instant,
    /// Each fan told, with how long after the start, in µs.
    told: Vec<(Via, u64)>,
}

#[derive(Default)]
struct Ledger {
    fans: Vec<FanRecord>,
    round: Option<Round>,
    /// Rounds started so far: the next round's id is one more.
    rounds: u32,
    parked: u64,
    lapsed: u64,
    failures: u64,
    failure_examples: Vec<String>,
}

/// What every fan's task reports, shared by the tasks and the phases.
struct Tally {
    ledger: Mutex<Ledger>,
}

impl Tally {
    fn new(quic: usize, sse: usize) -> Tally {
        let record = |via| FanRecord { via, place: None, admitted: None, gone: false, reached_round: 0 };
        let mut fans = vec![record(Via::Quic); quic];
        fans.extend(vec![record(Via::Sse); sse]);
        Tally { ledger: Mutex::new(Ledger { fans, ..Ledger::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("ledger lock")
    }

    fn joined(&self, fan: usize, place: Place) {
        self.lock().fans[fan].place = Some(place);
    }

    /// Notes a fan's failure; it waits no more.
    fn failed(&self, fan: usize, error: String) {
        let mut ledger = self.lock();
        if let Some(record) = ledger.fans.get_mut(fan) {
            record.gone = true;
        }
        ledger.failures += 1;
        if ledger.failure_examples.len() < FAILURE_EXAMPLES_MAX {
            ledger.failure_examples.push(format!("fan {fan}: {error}"));
        }
    }

    /// Notes a message of the node to `fan`; true when the fan's wait is over.
    fn message(&self, fan: usize, msg: ServerMsg) -> bool {
        match msg {
            ServerMsg::Position { paused, note, .. } => {
                self.position(fan, paused, note.as_deref());
                false
            }
            ServerMsg::Admitted { admission_token, .. } => {
                self.admitted(fan, &admission_token);
                true
            }
            ServerMsg::Parked { .. } => {
                let mut ledger = self.lock();
                ledger.parked += 1;
                ledger.fans[fan].gone = true;
                true
            }
            ServerMsg::Lapsed { .. } => {
                let mut ledger = self.lock();
                ledger.lapsed += 1;
                ledger.fans[fan].gone = true;
                true
            }
            ServerMsg::Error { code, detail } => {
                self.failed(fan, format!("refused: {code} ({detail})"));
                true
            }
            ServerMsg::Ticket { .. } | ServerMsg::Challenge { .. } | ServerMsg::Redirect { .. } => false,
        }
    }

    fn position(&self, fan: usize, paused: bool, note: Option<&str>) {
        let mut ledger = self.lock();
        let Ledger { fans, round, .. } = &mut *ledger;
        let Some(round) = round else { return };
        let record = &mut fans[fan];
        if record.reached_round == round.id || !round.kind.told_by(paused, note) {
            return;
        }
        record.reached_round = round.id;
        round.told.push((record.via, round.started.elapsed().as_micros() as u64));
    }

    fn admitted(&self, fan: usize, token: &str) {
        let arrival_ms = now_ms();
        let Some(claims) = AdmissionClaims::read(token) else {
            return self.failed(fan, "an admission token without claims".into());
        };
        let passed_at_ms = claims.expires_at.saturating_sub(ADMISSION_MS);
        let mut ledger = self.lock();
        let record = &mut ledger.fans[fan];
        if record.admitted.is_none() {
            record.admitted = Some(Admit { place: claims.place, passed_at_ms, arrival_ms });
        }
    }

    /// Starts a push round of `kind`, timed from now.
    fn start_round(&self, kind: RoundKind) {
        let mut ledger = self.lock();
        ledger.rounds += 1;
        let id = ledger.rounds;
        ledger.round = Some(Round { id, kind, started: Instant::now(), told: Vec::new() });
    }

    /// `(fans still to be told, fans told)` of the round under way: a fan admitted or gone needs
    /// no telling.
    fn round_progress(&self) -> (u64, u64) {
        let ledger = self.lock();
        let Some(round) = &ledger.round else { return (0, 0) };
        let waiting = |f: &&FanRecord| f.place.is_some() && f.admitted.is_none() && !f.gone;
        let untold = ledger.fans.iter().filter(waiting).filter(|f| f.reached_round != round.id).count();
        (untold as u64, round.told.len() as u64)
    }

    /// The round under way's figures; it ends.
    fn end_round(&self) -> RoundFigures {
        let (untold, _) = self.round_progress();
        let round = self.lock().round.take().expect("a round under way");
        let (mut quic, mut sse) = (histogram(), histogram());
        for (via, us) in &round.told {
            let h = if *via == Via::Quic { &mut quic } else { &mut sse };
            h.saturating_record(*us);
        }
        let max_us = round.told.iter().map(|(_, us)| *us).max().unwrap_or(0);
        let reached = round.told.len() as u64;
        RoundFigures {
            kind: round.kind.name().into(),
            fans: reached + untold,
            reached,
            all_reached_ms: max_us as f64 / 1_000.0,
            quic: Quantiles::of(&quic),
            sse: Quantiles::of(&sse),
        }
    }

    /// Fans holding a ticket, neither admitted nor gone.
    fn waiting(&self) -> u64 {
        let ledger = self.lock();
        ledger.fans.iter().filter(|f| f.place.is_some() && f.admitted.is_none() && !f.gone).count() as u64
    }

    /// Every admission so far, with its transport.
    fn admissions(&self) -> Vec<(Via, Admit)> {
        self.lock().fans.iter().filter_map(|f| f.admitted.map(|a| (f.via, a))).collect()
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Places passed after a place behind them: `(by more than slack_ms, at all)`. `admitted` is
/// every admission's place and the time of the tick that passed it.
pub fn order_violations(mut admitted: Vec<(Place, u64)>, slack_ms: u64) -> (u64, u64) {
    admitted.sort_unstable();
    let (mut violations, mut inversions, mut latest_ahead) = (0, 0, 0u64);
    for (_, passed_at) in admitted {
        if passed_at < latest_ahead {
            inversions += 1;
        }
        if passed_at + slack_ms < latest_ahead {
            violations += 1;
        }
        latest_ahead = latest_ahead.max(passed_at);
    }
    (violations, inversions)
}

// ---------------------------------------------------------------------------------------------
// Processes: open files and resident memory.

/// Raises this process's open-file limit to its hard limit if it is under `needed` (the nodes
/// started afterwards inherit it); the limit in force.
pub(crate) fn raise_open_files(needed: u64) -> anyhow::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct given, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("cannot read the open-file limit: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur >= needed {
        return Ok(limit.rlim_cur);
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit reads the struct given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        bail!("cannot raise the open-file limit: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur < needed {
        bail!("the open-file limit is {} (hard), under the {needed} the event streams need", limit.rlim_cur);
    }
    Ok(limit.rlim_cur)
}

/// `VmRSS` of a `/proc/<pid>/status` text, in bytes.
pub fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

fn rss_of(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("process {pid}"))?;
    parse_rss(&status).ok_or_else(|| anyhow!("no VmRSS for process {pid}"))
}

/// The pid of every node of the cluster in `dir`, by node id: the processes that run
/// `boxoffice node --config <dir>/node<id>.toml`.
pub(crate) fn node_pids(dir: &Path, nodes: u64) -> anyhow::Result<Vec<(u64, String)>> {
    let mut pids = Vec::new();
    for id in 1..=nodes {
        let config = dir.join(format!("node{id}.toml"));
        let config = config.to_string_lossy();
        let found = std::fs::read_dir("/proc")?.filter_map(Result::ok).find_map(|entry| {
            let pid = entry.file_name().to_string_lossy().to_string();
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cmdline.split(|b| *b == 0).any(|arg| arg == config.as_bytes()).then_some(pid)
        });
        pids.push((id, found.ok_or_else(|| anyhow!("no process runs node {id} ({config})"))?));
    }
    Ok(pids)
}

/// Every node's resident memory, by node id.
pub(crate) fn nodes_rss(pids: &[(u64, String)]) -> anyhow::Result<Vec<(u64, u64)>> {
    pids.iter().map(|(id, pid)| Ok((*id, rss_of(pid)?))).collect()
}

// ---------------------------------------------------------------------------------------------
// The QUIC client: pinned certificates, client sockets, one fan's stream of frames.

/// Accepts exactly the certificate whose DER hashes to the pinned SHA-256, and checks the
/// handshake's TLS 1.3 signature with it.
#[derive(Debug)]
struct Pinned {
    sha256_hex: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if hex::encode(Sha256::digest(end_entity.as_ref())) == self.sha256_hex {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("the room speaks tls 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// ring's provider, as the nodes use it (rustls deprecates it only for lacking post-quantum key
/// exchange, which the workspace leaves to aws-lc, a C build it avoids).
#[allow(deprecated)]
fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration pinning `cert_sha256`: small windows, and no streams the node may
/// open (a fan never takes one), so that the benchmark's side of a connection stays small.
fn client_config(cert_sha256: &str) -> anyhow::Result<quinn::ClientConfig> {
    let provider = ring_provider();
    let pin = Arc::new(Pinned { sha256_hex: cert_sha256.to_ascii_lowercase(), provider: provider.clone() });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(pin)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_INTERVAL_MS)))
        .stream_receive_window(quinn::VarInt::from_u32(16 * 1024))
        .receive_window(quinn::VarInt::from_u32(64 * 1024))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(0))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// A client endpoint on its own loopback UDP socket with large buffers (a node's push to
/// thousands of fans arrives at once).
fn client_endpoint() -> anyhow::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    if set_buffer(&socket, libc::SO_RCVBUFFORCE).is_err() {
        set_buffer(&socket, libc::SO_RCVBUF).context("cannot size a client socket's receive buffer")?;
    }
    set_buffer(&socket, libc::SO_SNDBUF).context("cannot size a client socket's send buffer")?;
    let runtime = Arc::new(quinn::TokioRuntime);
    Ok(quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)?)
}

/// Sets a buffer option of `socket` to [`SOCKET_BUFFER_BYTES`].
fn set_buffer(socket: &std::net::UdpSocket, option: libc::c_int) -> std::io::Result<()> {
    let bytes = SOCKET_BUFFER_BYTES as libc::c_int;
    // SAFETY: setsockopt on a socket the caller owns, with a pointer to a live c_int.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A node's endpoint as the fans dial it.
#[derive(Clone)]
struct Target {
    node: u64,
    addr: SocketAddr,
    config: quinn::ClientConfig,
}

impl Target {
    fn of(node: &RoomNode) -> anyhow::Result<Target> {
        Ok(Target { node: node.node, addr: node.addr()?, config: client_config(&node.cert_sha256)? })
    }
}

/// One fan's bidirectional stream: frames of a 4-byte big-endian length and JSON.
struct Link {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    /// Bytes read and not yet cut into frames (reads may be cancelled between frames).
    inbox: Vec<u8>,
}

impl Link {
    async fn send(&mut self, msg: &ClientMsg) -> anyhow::Result<()> {
        let body = serde_json::to_vec(msg)?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        Ok(self.send.write_all(&frame).await?)
    }

    /// The next message; cancel-safe (a chunk read is kept in the inbox before any await).
    async fn recv(&mut self) -> anyhow::Result<ServerMsg> {
        loop {
            if let Some(body) = take_frame(&mut self.inbox)? {
                return serde_json::from_slice(&body).context("a frame that is no message of the room");
            }
            match self.recv.read_chunk(FRAME_BYTES_MAX, true).await? {
                Some(chunk) => self.inbox.extend_from_slice(&chunk.bytes),
                None => bail!("the node ended the fan's stream"),
            }
        }
    }

    async fn recv_within(&mut self, ms: u64) -> anyhow::Result<ServerMsg> {
        tokio::time::timeout(Duration::from_millis(ms), self.recv())
            .await
            .map_err(|_| anyhow!("no answer within {ms} ms"))?
    }
}

/// Cuts the first whole frame off `inbox`, if there is one.
pub fn take_frame(inbox: &mut Vec<u8>) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(head) = inbox.get(..4) else { return Ok(None) };
    let len = u32::from_be_bytes(head.try_into().expect("four bytes")) as usize;
    if len > FRAME_BYTES_MAX {
        bail!("a frame of {len} bytes is over {FRAME_BYTES_MAX}");
    }
    if inbox.len() < 4 + len {
        return Ok(None);
    }
    let body = inbox[4..4 + len].to_vec();
    inbox.drain(..4 + len);
    Ok(Some(body))
}

/// A fan greeted: its stream, and the challenge it solved (a join is then one frame).
struct Greeted {
    link: Link,
    challenge: String,
    answer: u64,
}

/// Hello, and the challenge solved: everything before the join frame.
async fn hello_quic(mut link: Link, event: u64, token: &str) -> anyhow::Result<Greeted> {
    link.send(&ClientMsg::Hello { event, token: token.into(), ticket: None }).await?;
    let (challenge, bits) = match link.recv_within(ANSWER_TIMEOUT_MS).await? {
        ServerMsg::Challenge { challenge, bits } => (challenge, bits),
        other => bail!("hello answered {other:?}"),
    };
    let answer = harness::room::solve(&challenge, bits);
    Ok(Greeted { link, challenge, answer })
}

/// The join frame, and the ticket: the place, and how long the node took.
async fn join_quic(greeted: &mut Greeted) -> anyhow::Result<(Place, Duration)> {
    let at = Instant::now();
    let join = ClientMsg::Join { challenge: std::mem::take(&mut greeted.challenge), answer: greeted.answer };
    greeted.link.send(&join).await?;
    match greeted.link.recv_within(ANSWER_TIMEOUT_MS).await? {
        ServerMsg::Ticket { place, .. } => Ok((place, at.elapsed())),
        other => bail!("join answered {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Phase 1: connections and joins.

/// What the fans' tasks share.
struct FanContext {
    event: u64,
    tally: Arc<Tally>,
    /// Hellos or joins under way at once.
    slots: Arc<Semaphore>,
    /// Each fan's hello, then each greeted fan's join.
    outcomes: mpsc::Sender<Outcome>,
    /// Turns true once every fan was greeted: the joins start together.
    go: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
}

/// How one fan's hello or join went.
enum Outcome {
    /// Hello sent and the challenge solved, after this long.
    Greeted(Duration),
    Joined {
        node: u64,
        took: Duration,
    },
    Failed,
}

fn token(fan: usize) -> String {
    fan_token(harness::Secrets::HARNESS.cluster_secret, FIRST_UID + fan as u64, now_ms() + FAN_TOKEN_TTL_MS)
}

/// Opens one connection per fan, fan `i` to target `i % targets` from socket `i % sockets`.
async fn connect_all(
    endpoints: &[quinn::Endpoint],
    targets: &[Target],
    fans: usize,
    tally: &Tally,
) -> (Vec<Option<(u64, quinn::Connection)>>, ConnectFigures) {
    let started = Instant::now();
    let attempts = stream::iter(0..fans).map(|fan| {
        let (endpoint, target) = (&endpoints[fan % endpoints.len()], &targets[fan % targets.len()]);
        async move {
            let at = Instant::now();
            let connecting = endpoint.connect_with(target.config.clone(), target.addr, SERVER_NAME);
            let connected = async { Ok::<_, anyhow::Error>(connecting?.await?) };
            let result = tokio::time::timeout(Duration::from_millis(ANSWER_TIMEOUT_MS), connected).await;
            (fan, target.node, result.map_err(|_| anyhow!("no handshake within {ANSWER_TIMEOUT_MS} ms")), at.elapsed())
        }
    });
    let mut attempts = attempts.buffer_unordered(CONNECTS_IN_FLIGHT_MAX);
    let (mut connections, mut handshakes, mut failed) = ((0..fans).map(|_| None).collect::<Vec<_>>(), histogram(), 0);
    let mut progress = Progress::new("connected", fans);
    while let Some((fan, node, result, took)) = attempts.next().await {
        progress.one_more();
        match result.and_then(|r| r) {
            Ok(conn) => {
                handshakes.saturating_record(took.as_micros() as u64);
                connections[fan] = Some((node, conn));
            }
            Err(error) => {
                failed += 1;
                tally.failed(fan, format!("connect: {error:#}"));
            }
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let opened = handshakes.len();
    let figures = ConnectFigures {
        opened,
        failed,
        elapsed_s,
        per_s: opened as f64 / elapsed_s,
        handshake: Quantiles::of(&handshakes),
    };
    (connections, figures)
}

/// One QUIC fan for its whole life: says hello and solves its challenge (when a slot is free),
/// waits for the go, joins (when a slot is free), then waits for pushes until it is admitted,
/// fails or the scenario stops.
async fn quic_fan(fan: usize, node: u64, conn: quinn::Connection, ctx: Arc<FanContext>) {
    let permit = ctx.slots.clone().acquire_owned().await.expect("the slots stay open");
    let at = Instant::now();
    let greeted = async {
        let (send, recv) = conn.open_bi().await?;
        hello_quic(Link { send, recv, inbox: Vec::new() }, ctx.event, &token(fan)).await
    }
    .await;
    drop(permit);
    let mut greeted = match greeted {
        Ok(greeted) => {
            let _ = ctx.outcomes.send(Outcome::Greeted(at.elapsed())).await;
            greeted
        }
        Err(error) => {
            ctx.tally.failed(fan, format!("hello: {error:#}"));
            let _ = ctx.outcomes.send(Outcome::Failed).await;
            return;
        }
    };
    if ctx.go.clone().wait_for(|go| *go).await.is_err() {
        return;
    }
    let permit = ctx.slots.clone().acquire_owned().await.expect("the slots stay open");
    let joined = join_quic(&mut greeted).await;
    drop(permit);
    match joined {
        Ok((place, took)) => {
            ctx.tally.joined(fan, place);
            let _ = ctx.outcomes.send(Outcome::Joined { node, took }).await;
        }
        Err(error) => {
            ctx.tally.failed(fan, format!("join: {error:#}"));
            let _ = ctx.outcomes.send(Outcome::Failed).await;
            return;
        }
    }
    wait_quic(fan, greeted.link, &ctx.tally, ctx.stop.clone()).await;
    conn.close(0u32.into(), b"done");
}

/// Reads what the node pushes until the fan is admitted, fails or the scenario stops. A fan
/// sends nothing while it waits: its open connection keeps its place.
async fn wait_quic(fan: usize, mut link: Link, tally: &Tally, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            msg = link.recv() => match msg {
                Ok(msg) => {
                    if tally.message(fan, msg) {
                        return;
                    }
                }
                Err(error) => return tally.failed(fan, format!("waiting: {error:#}")),
            },
            _ = stop.changed() => return,
        }
    }
}

/// Starts every connected fan's task; once every fan said hello and solved its challenge, lets
/// them join together and waits for all their tickets. Fans held per node.
async fn join_all(
    connections: Vec<Option<(u64, quinn::Connection)>>,
    event: u64,
    tally: &Arc<Tally>,
    stop: &watch::Receiver<bool>,
) -> (JoinFigures, Vec<(u64, u64)>) {
    let (outcomes, mut results) = mpsc::channel(OUTCOMES_QUEUE_MAX);
    let (go_tx, go) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(JOINS_IN_FLIGHT_MAX));
    let ctx = Arc::new(FanContext { event, tally: tally.clone(), slots, outcomes, go, stop: stop.clone() });
    let started = Instant::now();
    let mut expected = 0;
    for (fan, connection) in connections.into_iter().enumerate() {
        if let Some((node, conn)) = connection {
            expected += 1;
            tokio::spawn(quic_fan(fan, node, conn, ctx.clone()));
        }
    }
    drop(ctx);
    let (mut hello, mut greeted, mut failed) = (histogram(), 0, 0);
    let mut progress = Progress::new("greeted", expected);
    for _ in 0..expected {
        match results.recv().await {
            Some(Outcome::Greeted(took)) => {
                hello.saturating_record(took.as_micros() as u64);
                greeted += 1;
            }
            Some(_) => failed += 1,
            None => break,
        }
        progress.one_more();
    }
    let hello_elapsed_s = started.elapsed().as_secs_f64();
    println!("{greeted} hellos in {hello_elapsed_s:.1} s ({failed} failed); the joins go");
    let started = Instant::now();
    go_tx.send_replace(true);
    let mut join = histogram();
    let mut per_node = std::collections::BTreeMap::new();
    let mut progress = Progress::new("joined", greeted);
    for _ in 0..greeted {
        match results.recv().await {
            Some(Outcome::Joined { node, took }) => {
                join.saturating_record(took.as_micros() as u64);
                *per_node.entry(node).or_insert(0) += 1;
            }
            Some(_) => failed += 1,
            None => break,
        }
        progress.one_more();
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let joined = join.len();
    let figures = JoinFigures {
        joined,
        failed,
        elapsed_s,
        per_s: joined as f64 / elapsed_s,
        join: Quantiles::of(&join),
        hello_elapsed_s,
        hello_to_challenge: Quantiles::of(&hello),
    };
    (figures, per_node.into_iter().collect())
}

/// Datagrams dropped so far by the UDP sockets bound to `ports` on this machine (the last column
/// of `/proc/net/udp` and `udp6`).
fn udp_drops(ports: &[u16]) -> anyhow::Result<u64> {
    let mut dropped = 0;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).with_context(|| format!("cannot read {table}"))?;
        dropped += udp_table_drops(&text, ports);
    }
    Ok(dropped)
}

fn udp_table_drops(table: &str, ports: &[u16]) -> u64 {
    let mut dropped = 0;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = fields.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
        if port.is_some_and(|p| ports.contains(&p)) {
            dropped += fields.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    dropped
}

/// How often a long phase says how far it got.
const PROGRESS_INTERVAL_MS: u64 = 10_000;

/// A line every [`PROGRESS_INTERVAL_MS`] while a phase counts towards `total`.
struct Progress {
    what: &'static str,
    total: usize,
    done: usize,
    started: Instant,
    said_at: Instant,
}

impl Progress {
    fn new(what: &'static str, total: usize) -> Self {
        Progress { what, total, done: 0, started: Instant::now(), said_at: Instant::now() }
    }

    fn one_more(&mut self) {
        self.done += 1;
        if self.said_at.elapsed() >= Duration::from_millis(PROGRESS_INTERVAL_MS) {
            self.said_at = Instant::now();
            let per_s = self.done as f64 / self.started.elapsed().as_secs_f64();
            println!("  {} {} of {} ({per_s:.0}/s)", self.what, self.done, self.total);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP fallback: joins by POST, waits on server-sent events.

/// Cuts a chunked body into server-sent events, giving each event's `data`.
#[derive(Default)]
pub struct SseDecoder {
    /// Chunked bytes not yet decoded.
    raw: Vec<u8>,
    /// Decoded text not yet cut into events.
    text: Vec<u8>,
}

impl SseDecoder {
    /// Takes bytes of the body as they came; the data of every event they completed.
    pub fn push(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<String>> {
        self.raw.extend_from_slice(bytes);
        if self.raw.len() + self.text.len() > SSE_BUFFER_BYTES_MAX {
            bail!("an event stream buffered over {SSE_BUFFER_BYTES_MAX} bytes");
        }
        while let Some(end) = find(&self.raw, b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..end])?.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).with_context(|| format!("a bad chunk size {size:?}"))?;
            if size == 0 {
                bail!("the event stream ended");
            }
            if self.raw.len() < end + 2 + size + 2 {
                break;
            }
            self.text.extend_from_slice(&self.raw[end + 2..end + 2 + size]);
            self.raw.drain(..end + 2 + size + 2);
        }
        let mut events = Vec::new();
        while let Some(end) = find(&self.text, b"\n\n") {
            let block = String::from_utf8_lossy(&self.text[..end]).to_string();
            self.text.drain(..end + 2);
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        Ok(events)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Joins over HTTP through `conn`: hello, the challenge solved, join; the ticket and its place,
/// and how long the join request took.
async fn join_sse(conn: &mut Conn, event: u64, token: &str) -> anyhow::Result<(String, Place, Duration)> {
    let path = format!("/events/{event}/waiting-room/hello");
    let (status, body) = conn.send(Method::POST, &path, Some(token), Some("{}".into())).await?;
    let (challenge, bits) = match serde_json::from_slice(&body) {
        Ok(ServerMsg::Challenge { challenge, bits }) if status == 200 => (challenge, bits),
        _ => bail!("hello answered {status}: {}", String::from_utf8_lossy(&body)),
    };
    let answer = harness::room::solve(&challenge, bits);
    let path = format!("/events/{event}/waiting-room/join");
    let request = json!({"challenge": challenge, "answer": answer}).to_string();
    let at = Instant::now();
    let (status, body) = conn.send(Method::POST, &path, Some(token), Some(request)).await?;
    match serde_json::from_slice(&body) {
        Ok(ServerMsg::Ticket { ticket, place, .. }) if status == 200 => Ok((ticket, place, at.elapsed())),
        _ => bail!("join answered {status}: {}", String::from_utf8_lossy(&body)),
    }
}

/// Opens a fan's event stream at `addr` (`host:port`): the stream past its answer's head, and
/// the body's bytes read with the head.
async fn open_stream(addr: &str, event: u64, ticket: &str, token: &str) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET /events/{event}/waiting-room/stream?ticket={ticket}&token={token} HTTP/1.1\r\nhost: {addr}\r\n\
         accept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 2048];
    let end = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the node closed the stream before its head");
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            break end + 4;
        }
        if head.len() > SSE_HEAD_BYTES_MAX {
            bail!("an event stream's head over {SSE_HEAD_BYTES_MAX} bytes");
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    response.parse(&head[..end])?;
    if response.code != Some(200) {
        bail!("the stream answered {:?}: {}", response.code, String::from_utf8_lossy(&head));
    }
    Ok((stream, head[end..].to_vec()))
}

/// One HTTP fan waiting on its event stream until it is admitted, fails or the scenario stops.
async fn wait_sse(fan: usize, mut stream: TcpStream, first: Vec<u8>, tally: &Tally, mut stop: watch::Receiver<bool>) {
    let mut decoder = SseDecoder::default();
    let mut bytes = first;
    let mut buf = vec![0u8; 4096];
    loop {
        match decoder.push(&bytes) {
            Ok(events) => {
                for data in events {
                    match serde_json::from_str::<ServerMsg>(&data) {
                        Ok(msg) => {
                            if tally.message(fan, msg) {
                                return;
                            }
                        }
                        Err(error) => return tally.failed(fan, format!("event {data:?}: {error}")),
                    }
                }
            }
            Err(error) => return tally.failed(fan, format!("event stream: {error:#}")),
        }
        let n = tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) => return tally.failed(fan, "the node closed the event stream".into()),
                Ok(n) => n,
                Err(error) => return tally.failed(fan, format!("event stream: {error}")),
            },
            _ = stop.changed() => return,
        };
        bytes = buf[..n].to_vec();
    }
}

/// Event streams open, counted by the index of their node's gateway.
type OpenStreams = Arc<Vec<AtomicU64>>;

/// Joins `count` HTTP fans (ids from `first`) over the nodes' gateways and opens their event
/// streams; the figures but for memory, and the streams open on each node.
async fn sse_all(
    bases: &[(u64, String)],
    event: u64,
    first: usize,
    count: usize,
    tally: &Arc<Tally>,
    stop: &watch::Receiver<bool>,
) -> (SseFigures, Vec<(u64, u64)>) {
    let started = Instant::now();
    let (outcomes, mut results) = mpsc::channel::<Option<Duration>>(OUTCOMES_QUEUE_MAX);
    let opens = Arc::new(Semaphore::new(SSE_OPENS_IN_FLIGHT_MAX));
    let streams: OpenStreams = Arc::new(bases.iter().map(|_| AtomicU64::new(0)).collect());
    for worker in 0..SSE_JOIN_CONNECTIONS.min(count) {
        let index = worker % bases.len();
        let fans = (worker..count).step_by(SSE_JOIN_CONNECTIONS).map(|i| first + i).collect();
        let share = SseShare { event, index, base: bases[index].1.clone(), fans };
        let sinks = SseSinks {
            tally: tally.clone(),
            stop: stop.clone(),
            outcomes: outcomes.clone(),
            opens: opens.clone(),
            streams: streams.clone(),
        };
        tokio::spawn(share.run(sinks));
    }
    drop(outcomes);
    let (mut join, mut failed) = (histogram(), 0);
    while let Some(result) = results.recv().await {
        match result {
            Some(took) => join.saturating_record(took.as_micros() as u64),
            None => failed += 1,
        }
    }
    let open = || streams.iter().map(|s| s.load(Ordering::Relaxed)).sum::<u64>();
    let deadline = Instant::now() + Duration::from_millis(ANSWER_TIMEOUT_MS);
    while open() + failed < count as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    let figures = SseFigures {
        joined: join.len(),
        failed,
        streams_open: open(),
        elapsed_s: started.elapsed().as_secs_f64(),
        join: Quantiles::of(&join),
        per_node: Vec::new(),
        rss_per_fan_bytes: 0.0,
    };
    let per_node = bases.iter().zip(streams.iter()).map(|((id, _), n)| (*id, n.load(Ordering::Relaxed))).collect();
    (figures, per_node)
}

/// The HTTP fans one connection joins, in turn, each then waiting on a stream of its own.
struct SseShare {
    event: u64,
    /// The gateway's index among the nodes', and its `http://host:port`.
    index: usize,
    base: String,
    fans: Vec<usize>,
}

/// Where an [`SseShare`] reports, and what it shares with the other shares.
struct SseSinks {
    tally: Arc<Tally>,
    stop: watch::Receiver<bool>,
    /// Each join's time, or `None` for a join that failed.
    outcomes: mpsc::Sender<Option<Duration>>,
    /// Slots for streams being opened.
    opens: Arc<Semaphore>,
    streams: OpenStreams,
}

impl SseShare {
    async fn run(self, sinks: SseSinks) {
        let mut conn = Conn::new(&self.base);
        let addr = self.base.trim_start_matches("http://").to_string();
        for fan in self.fans {
            let token = token(fan);
            let (ticket, place, took) = match join_sse(&mut conn, self.event, &token).await {
                Ok(joined) => joined,
                Err(error) => {
                    sinks.tally.failed(fan, format!("http join: {error:#}"));
                    let _ = sinks.outcomes.send(None).await;
                    continue;
                }
            };
            sinks.tally.joined(fan, place);
            let _ = sinks.outcomes.send(Some(took)).await;
            let permit = sinks.opens.clone().acquire_owned().await.expect("the open slots stay open");
            let (tally, stop, streams) = (sinks.tally.clone(), sinks.stop.clone(), sinks.streams.clone());
            let (addr, event, index) = (addr.clone(), self.event, self.index);
            tokio::spawn(async move {
                let opened = open_stream(&addr, event, &ticket, &token).await;
                drop(permit);
                match opened {
                    Ok((stream, first)) => {
                        streams[index].fetch_add(1, Ordering::Relaxed);
                        wait_sse(fan, stream, first, &tally, stop).await;
                    }
                    Err(error) => tally.failed(fan, format!("open stream: {error:#}")),
                }
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

/// A room's admin view, read through the first node.
async fn room_view(cluster: &Cluster, event: u64) -> anyhow::Result<Value> {
    get_room(cluster, event).await
}

fn counted(view: &Value, field: &str) -> u64 {
    view["counts"][field].as_u64().unwrap_or(0)
}

/// Waits until the room counts `fans` connected (reports come once a second); the last view.
async fn wait_connected(cluster: &Cluster, event: u64, fans: u64) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_millis(COUNTED_WITHIN_MS);
    loop {
        let view = room_view(cluster, event).await?;
        if counted(&view, "connected") >= fans || Instant::now() > deadline {
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Each node's fans and memory growth between two readings; per fan for all nodes together.
fn holding(fans: &[(u64, u64)], view: &Value, before: &[(u64, u64)], after: &[(u64, u64)]) -> (Vec<NodeHolding>, f64) {
    let reported = |id: u64| {
        view["nodes"].as_array().into_iter().flatten().find(|n| n["node"] == id).and_then(|n| n["connected"].as_u64())
    };
    let per_node: Vec<NodeHolding> = before
        .iter()
        .zip(after)
        .map(|((id, rss_before), (_, rss_after))| {
            let fans = fans.iter().find(|(n, _)| n == id).map_or(0, |(_, f)| *f);
            NodeHolding {
                node: *id,
                fans,
                reported_connected: reported(*id).unwrap_or(0),
                rss_before_bytes: *rss_before,
                rss_after_bytes: *rss_after,
                per_fan_bytes: growth(*rss_before, *rss_after, fans),
            }
        })
        .collect();
    let total = |f: fn(&NodeHolding) -> u64| per_node.iter().map(f).sum::<u64>();
    let all = growth(total(|n| n.rss_before_bytes), total(|n| n.rss_after_bytes), total(|n| n.fans));
    (per_node, all)
}

fn growth(before: u64, after: u64, fans: u64) -> f64 {
    (after as f64 - before as f64) / fans.max(1) as f64
}

fn self_rss() -> anyhow::Result<u64> {
    rss_of("self")
}

/// Times one push round: `change` is put to the room, then the scenario waits until every
/// waiting fan was told (or [`ROUND_TIMEOUT_MS`]).
async fn push_round(
    cluster: &Cluster,
    event: u64,
    tally: &Tally,
    kind: RoundKind,
    change: Value,
) -> anyhow::Result<RoundFigures> {
    tally.start_round(kind);
    put_room(cluster, event, change).await?;
    let deadline = Instant::now() + Duration::from_millis(ROUND_TIMEOUT_MS);
    while Instant::now() < deadline {
        if tally.round_progress().0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    let round = tally.end_round();
    println!(
        "push round ({}): {} of {} fans told, the last {:.0} ms after the put (quic p99 {:.0} ms, http p99 {:.0} ms)",
        round.kind, round.reached, round.fans, round.all_reached_ms, round.quic.p99_ms, round.sse.p99_ms
    );
    Ok(round)
}

/// The running room, its fans and what the phases measured so far.
struct Scenario {
    spec: RoomSpec,
    cluster: Cluster,
    event: u64,
    pids: Vec<(u64, String)>,
    tally: Arc<Tally>,
    stop: watch::Sender<bool>,
}

/// Runs scenario `w`: see the module's documentation.
pub async fn run(spec: RoomSpec) -> anyhow::Result<RoomFigures> {
    let limit = raise_open_files(spec.sse_fans as u64 * 2 + 4_096)?;
    println!("waiting room: {} quic fans, {} http fans, open-file limit {limit}", spec.fans, spec.sse_fans);
    let settings = Settings {
        nodes: spec.nodes,
        room_extra: "joins_per_address_per_min = 0".into(),
        ..Settings::in_folder(spec.bin.clone(), spec.dir.clone())
    };
    let cluster = Cluster::start(settings).await?;
    let event = cluster.seed_event(20).await?["id"].as_u64().ok_or_else(|| anyhow!("no id in the seeded event"))?;
    let room = json!({
        "enabled": true,
        "onSaleAt": rfc3339(now_ms() + FAN_TOKEN_TTL_MS),
        "ratePerMinute": spec.rate_per_min,
        "shoppingMax": SHOPPING_MAX,
        "admissionMs": ADMISSION_MS,
        "powBits": spec.pow_bits,
        "abandonMs": ABANDON_MS,
    });
    put_room(&cluster, event, room).await?;
    let pids = node_pids(cluster.dir(), spec.nodes)?;
    let tally = Arc::new(Tally::new(spec.fans, spec.sse_fans));
    let (stop, _) = watch::channel(false);
    let scenario = Scenario { spec, cluster, event, pids, tally, stop };
    let figures = scenario.phases().await;
    let _ = scenario.stop.send(true);
    figures
}

impl Scenario {
    async fn phases(&self) -> anyhow::Result<RoomFigures> {
        let info = room_info_when(
            &self.cluster,
            self.event,
            self.spec.nodes as usize,
            Duration::from_millis(ROOM_LISTED_WITHIN_MS),
        )
        .await?;
        let mut nodes = info.nodes.clone();
        nodes.sort_by_key(|n| n.node);
        let targets = nodes.iter().map(Target::of).collect::<anyhow::Result<Vec<_>>>()?;
        let sockets = self.spec.fans.div_ceil(self.spec.fans_per_socket.max(1)).max(1);
        let endpoints = (0..sockets).map(|_| client_endpoint()).collect::<anyhow::Result<Vec<_>>>()?;
        let client_ports = endpoints.iter().map(|e| e.local_addr().map(|a| a.port())).collect::<Result<Vec<_>, _>>()?;
        let node_ports: Vec<u16> = targets.iter().map(|t| t.addr.port()).collect();
        let drops_before = (udp_drops(&client_ports)?, udp_drops(&node_ports)?);
        let (connections, joins, holding) = self.quic_phase(&endpoints, &targets).await?;
        let sse = self.sse_phase().await?;
        let mut pushes = vec![
            push_round(&self.cluster, self.event, &self.tally, RoundKind::Pause, json!({"paused": true})).await?,
            push_round(&self.cluster, self.event, &self.tally, RoundKind::Resume, json!({"paused": false})).await?,
        ];
        let (admissions, rate_round) = self.admission_phase().await?;
        pushes.push(rate_round);
        let datagrams_dropped = DropFigures {
            client_sockets: udp_drops(&client_ports)?.saturating_sub(drops_before.0),
            node_sockets: udp_drops(&node_ports)?.saturating_sub(drops_before.1),
        };
        println!(
            "datagrams dropped at full receive buffers: {} at the benchmark's sockets, {} at the nodes'",
            datagrams_dropped.client_sockets, datagrams_dropped.node_sockets
        );
        let (failures, failure_examples) = {
            let ledger = self.tally.lock();
            (ledger.failures, ledger.failure_examples.clone())
        };
        let mut figures = RoomFigures {
            nodes: self.spec.nodes,
            fans: self.spec.fans,
            sse_fans: self.spec.sse_fans,
            pow_bits: self.spec.pow_bits,
            rate_per_minute: self.spec.rate_per_min,
            client_sockets: sockets,
            connections,
            joins,
            holding,
            sse,
            pushes,
            admissions,
            datagrams_dropped,
            failures,
            failure_examples,
            targets: Vec::new(),
        };
        figures.targets = targets_of(&figures);
        endpoints.iter().for_each(|e| e.close(0u32.into(), b"done"));
        Ok(figures)
    }

    /// Phases 1 and 2: connections, joins, and the memory they hold.
    async fn quic_phase(
        &self,
        endpoints: &[quinn::Endpoint],
        targets: &[Target],
    ) -> anyhow::Result<(ConnectFigures, JoinFigures, HoldingFigures)> {
        let (rss_before, bench_before) = (nodes_rss(&self.pids)?, self_rss()?);
        println!("connecting {} fans over {} client sockets", self.spec.fans, endpoints.len());
        let (connections, connect) = connect_all(endpoints, targets, self.spec.fans, &self.tally).await;
        println!(
            "{} connections in {:.1} s: {:.0}/s, handshake p50 {:.1} ms p99 {:.1} ms ({} failed)",
            connect.opened,
            connect.elapsed_s,
            connect.per_s,
            connect.handshake.p50_ms,
            connect.handshake.p99_ms,
            connect.failed
        );
        let (joins, per_node) = join_all(connections, self.event, &self.tally, &self.stop.subscribe()).await;
        println!(
            "{} joins in {:.1} s: {:.0}/s, join p50 {:.1} ms p99 {:.1} ms ({} failed)",
            joins.joined, joins.elapsed_s, joins.per_s, joins.join.p50_ms, joins.join.p99_ms, joins.failed
        );
        tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
        let view = wait_connected(&self.cluster, self.event, joins.joined).await?;
        let (rss_after, bench_after) = (nodes_rss(&self.pids)?, self_rss()?);
        let (per_node, rss_per_fan_bytes) = holding(&per_node, &view, &rss_before, &rss_after);
        let holding = HoldingFigures {
            fans_held: counted(&view, "connected"),
            per_node,
            rss_per_fan_bytes,
            bench_rss_per_fan_bytes: growth(bench_before, bench_after, joins.joined),
        };
        println!(
            "{} fans held; nodes' memory {:.0} bytes per fan, the benchmark's {:.0}",
            holding.fans_held, holding.rss_per_fan_bytes, holding.bench_rss_per_fan_bytes
        );
        Ok((connect, joins, holding))
    }

    /// Phase 3: the HTTP fallback's fans and the memory they hold.
    async fn sse_phase(&self) -> anyhow::Result<SseFigures> {
        let rss_before = nodes_rss(&self.pids)?;
        let bases: Vec<(u64, String)> = self.cluster.nodes.iter().map(|n| (n.id, self.cluster.url(n.id))).collect();
        let (first, count, stop) = (self.spec.fans, self.spec.sse_fans, self.stop.subscribe());
        let (mut sse, per_node) = sse_all(&bases, self.event, first, count, &self.tally, &stop).await;
        tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
        let view = wait_connected(&self.cluster, self.event, self.tally.waiting()).await?;
        let rss_after = nodes_rss(&self.pids)?;
        (sse.per_node, sse.rss_per_fan_bytes) = holding(&per_node, &view, &rss_before, &rss_after);
        println!(
            "{} http fans joined, {} streams open in {:.1} s (join p99 {:.1} ms); nodes' memory {:.0} bytes per stream",
            sse.joined, sse.streams_open, sse.elapsed_s, sse.join.p99_ms, sse.rss_per_fan_bytes
        );
        Ok(sse)
    }

    /// Phases 4 and 5: the on-sale, the admission window, the rate change and the line emptied.
    async fn admission_phase(&self) -> anyhow::Result<(AdmissionFigures, RoundFigures)> {
        let (cluster, event, rate) = (&self.cluster, self.event, self.spec.rate_per_min);
        let on_sale_at = (now_ms() + ON_SALE_AHEAD_MS).div_ceil(1_000) * 1_000;
        put_room(cluster, event, json!({"onSaleAt": rfc3339(on_sale_at)})).await?;
        let fans = self.tally.waiting();
        // The window ends while a quarter of the line still waits, so that the line never runs dry
        // within it.
        let drain_ms = fans * 60_000 / u64::from(rate.max(1));
        let window_ms = WINDOW_MS_MAX.min((drain_ms * 3 / 4).saturating_sub(WINDOW_SKIP_MS)).max(1_000);
        println!("on-sale at {}; {fans} fans wait; admissions counted over {window_ms} ms", rfc3339(on_sale_at));
        sleep_until_ms(on_sale_at + WINDOW_SKIP_MS).await;
        let window = Window::measure(cluster, event, rate, window_ms).await?;
        println!(
            "{} admitted in {:.1} s: {:.0} a minute (set: {rate})",
            window.admitted, window.seconds, window.per_minute
        );
        let faster = json!({"ratePerMinute": rate.saturating_mul(2)});
        let rate_round = push_round(cluster, event, &self.tally, RoundKind::Rate, faster).await?;
        let deadline = Instant::now() + Duration::from_millis(DRAIN_TIMEOUT_MS);
        while self.tally.waiting() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let view = room_view(cluster, event).await?;
        Ok((self.admission_figures(&view, window), rate_round))
    }

    /// What the fans' admissions say: latencies from the tick, and their order.
    fn admission_figures(&self, view: &Value, window: Window) -> AdmissionFigures {
        let admissions = self.tally.admissions();
        let (mut quic, mut sse) = (histogram(), histogram());
        for (via, admit) in &admissions {
            let h = if *via == Via::Quic { &mut quic } else { &mut sse };
            h.saturating_record(admit.arrival_ms.saturating_sub(admit.passed_at_ms).max(1) * 1_000);
        }
        let order = admissions.iter().map(|(_, a)| (a.place, a.passed_at_ms)).collect();
        let (order_violations, inversions) = order_violations(order, ORDER_SLACK_MS);
        let ledger = self.tally.lock();
        AdmissionFigures {
            set_rate_per_minute: window.rate,
            window_s: window.seconds,
            admitted_in_window: window.admitted,
            per_minute: window.per_minute,
            admitted_quic: quic.len(),
            admitted_sse: sse.len(),
            quic: Quantiles::of(&quic),
            sse: Quantiles::of(&sse),
            order_violations,
            inversions,
            late: counted(view, "late"),
            parked: ledger.parked,
            lapsed: ledger.lapsed,
            never_admitted: ledger.fans.iter().filter(|f| f.place.is_some() && f.admitted.is_none() && !f.gone).count()
                as u64,
        }
    }
}

/// Admissions over a window, by the room's own counts.
struct Window {
    /// The rate set.
    rate: u32,
    seconds: f64,
    admitted: u64,
    per_minute: f64,
}

impl Window {
    /// Reads `counts.admitted` now and `window_ms` later.
    async fn measure(cluster: &Cluster, event: u64, rate: u32, window_ms: u64) -> anyhow::Result<Window> {
        let (first, at) = (counted(&room_view(cluster, event).await?, "admitted"), Instant::now());
        tokio::time::sleep(Duration::from_millis(window_ms)).await;
        let last = counted(&room_view(cluster, event).await?, "admitted");
        let seconds = at.elapsed().as_secs_f64();
        let admitted = last.saturating_sub(first);
        Ok(Window { rate, seconds, admitted, per_minute: admitted as f64 * 60.0 / seconds })
    }
}

async fn sleep_until_ms(at_ms: u64) {
    tokio::time::sleep(Duration::from_millis(at_ms.saturating_sub(now_ms()))).await;
}

/// The targets of the scenario on a 2-core machine, against what was measured.
fn targets_of(f: &RoomFigures) -> Vec<TargetCheck> {
    let pause = f.pushes.iter().find(|r| r.kind == "pause");
    let all_told = pause.is_some_and(|r| r.reached == r.fans && r.fans > 0);
    let push_ms = pause.map_or(f64::INFINITY, |r| r.all_reached_ms);
    let check = |figure: &str, target: &str, measured: String, met: bool| TargetCheck {
        figure: figure.into(),
        target: target.into(),
        measured,
        met,
    };
    vec![
        check("waiting fans held (quic)", "≥ 50,000", f.holding.fans_held.to_string(), f.holding.fans_held >= 50_000),
        check(
            "node memory per connected fan",
            "≤ 32 KiB",
            format!("{:.1} KiB", f.holding.rss_per_fan_bytes / 1024.0),
            f.holding.rss_per_fan_bytes <= 32.0 * 1024.0,
        ),
        check("joins per second", "≥ 5,000", format!("{:.0}", f.joins.per_s), f.joins.per_s >= 5_000.0),
        check(
            "a push to all fans",
            "< 5 s",
            format!("{:.2} s{}", push_ms / 1_000.0, if all_told { "" } else { " (not all told)" }),
            all_told && push_ms < 5_000.0,
        ),
        check(
            "order violations",
            "0",
            f.admissions.order_violations.to_string(),
            f.admissions.order_violations == 0 && f.admissions.admitted_quic > 0,
        ),
    ]
}

/// The figures as a markdown page: the targets, then every phase.
pub fn markdown(f: &RoomFigures, header: &str) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{header}\n\n| figure | target | measured | met |\n|---|---|---:|---|\n");
    for t in &f.targets {
        let _ =
            writeln!(out, "| {} | {} | {} | {} |", t.figure, t.target, t.measured, if t.met { "yes" } else { "no" });
    }
    let q = |q: &Quantiles| format!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", q.p50_ms, q.p99_ms, q.max_ms);
    let c = &f.connections;
    let j = &f.joins;
    let _ = writeln!(out, "\n| phase | figures |\n|---|---|");
    let _ = writeln!(
        out,
        "| connections | {} opened ({} failed) in {:.1} s: {:.0}/s over {} client sockets; handshake {} |",
        c.opened,
        c.failed,
        c.elapsed_s,
        c.per_s,
        f.client_sockets,
        q(&c.handshake)
    );
    let _ = writeln!(
        out,
        "| joins | {} ({} failed) in {:.1} s: {:.0}/s; join frame to ticket {}; before them, every fan's hello and challenge in {:.1} s, stream to challenge {} |",
        j.joined,
        j.failed,
        j.elapsed_s,
        j.per_s,
        q(&j.join),
        j.hello_elapsed_s,
        q(&j.hello_to_challenge)
    );
    holding_rows(&mut out, "holding (quic)", &f.holding.per_node, f.holding.rss_per_fan_bytes);
    let _ = writeln!(out, "| the benchmark's memory | {:.0} bytes per quic fan |", f.holding.bench_rss_per_fan_bytes);
    let s = &f.sse;
    let _ = writeln!(
        out,
        "| http fallback | {} joined ({} failed), {} event streams open in {:.1} s; join request {} |",
        s.joined,
        s.failed,
        s.streams_open,
        s.elapsed_s,
        q(&s.join)
    );
    holding_rows(&mut out, "holding (http)", &s.per_node, s.rss_per_fan_bytes);
    for r in &f.pushes {
        let _ = writeln!(
            out,
            "| push: {} | {} of {} waiting fans told, the last after {:.0} ms; quic {}; http {} |",
            r.kind,
            r.reached,
            r.fans,
            r.all_reached_ms,
            q(&r.quic),
            q(&r.sse)
        );
    }
    admission_rows(&mut out, f);
    let _ = writeln!(
        out,
        "| datagrams dropped (full receive buffers) | {} at the benchmark's sockets, {} at the nodes' |",
        f.datagrams_dropped.client_sockets, f.datagrams_dropped.node_sockets
    );
    out
}

fn holding_rows(out: &mut String, phase: &str, nodes: &[NodeHolding], per_fan: f64) {
    use std::fmt::Write as _;
    let each: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "node {}: {} fans ({} reported), {:.0} → {:.0} MiB, {:.0} bytes/fan",
                n.node,
                n.fans,
                n.reported_connected,
                n.rss_before_bytes as f64 / 1_048_576.0,
                n.rss_after_bytes as f64 / 1_048_576.0,
                n.per_fan_bytes
            )
        })
        .collect();
    let _ = writeln!(out, "| {phase} | {:.0} bytes per fan in all; {} |", per_fan, each.join("; "));
}

fn admission_rows(out: &mut String, f: &RoomFigures) {
    use std::fmt::Write as _;
    let a = &f.admissions;
    let q = |q: &Quantiles| format!("p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms", q.p50_ms, q.p99_ms, q.max_ms);
    let _ = writeln!(
        out,
        "| admission rate | {} admitted in {:.1} s: {:.0} a minute, set {} |",
        a.admitted_in_window, a.window_s, a.per_minute, a.set_rate_per_minute
    );
    let _ = writeln!(
        out,
        "| tick to `admitted` | quic ({} fans) {}; http ({} fans) {} |",
        a.admitted_quic,
        q(&a.quic),
        a.admitted_sse,
        q(&a.sse)
    );
    let _ = writeln!(
        out,
        "| order | {} violations (passed over a tick after a place behind), {} within a tick; late {}, parked {}, \
         lapsed {}, never admitted {} |",
        a.order_violations, a.inversions, a.late, a.parked, a.lapsed, a.never_admitted
    );
    let _ = writeln!(out, "| failures | {} {:?} |", f.failures, f.failure_examples);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(primary: u64) -> Place {
        Place { class: 0, primary, node: 0, seq: 0 }
    }

    #[test]
    fn places_passed_over_a_tick_late_are_violations() {
        let in_order = vec![(place(1), 1_000), (place(2), 1_000), (place(3), 2_000)];
        assert_eq!(order_violations(in_order, ORDER_SLACK_MS), (0, 0));
        let within_a_tick = vec![(place(1), 2_000), (place(2), 1_000)];
        assert_eq!(order_violations(within_a_tick, ORDER_SLACK_MS), (0, 1));
        let two_ticks_early = vec![(place(3), 1_000), (place(1), 3_000), (place(2), 5_000)];
        assert_eq!(order_violations(two_ticks_early, ORDER_SLACK_MS), (1, 1), "place 3 passed before 1 and 2");
    }

    #[test]
    fn frames_are_cut_whole() {
        let mut inbox = vec![0, 0, 0, 2, b'{', b'}', 0, 0];
        assert_eq!(take_frame(&mut inbox).unwrap(), Some(b"{}".to_vec()));
        assert_eq!(take_frame(&mut inbox).unwrap(), None, "half a length");
        assert_eq!(inbox, vec![0, 0]);
        let mut big = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes().to_vec();
        assert!(take_frame(&mut big).is_err());
    }

    #[test]
    fn events_are_read_across_chunks() {
        let mut decoder = SseDecoder::default();
        let first = b"1f\r\nevent: position\ndata: {\"a\":1}\n\n\r\n";
        assert_eq!(decoder.push(first).unwrap(), vec![r#"{"a":1}"#.to_string()]);
        assert!(decoder.push(b"3\r\n:\n\n\r\n").unwrap().is_empty(), "a keep-alive comment has no data");
        assert!(decoder.push(b"e\r\ndata: {\"b\"").unwrap().is_empty(), "half a chunk");
        assert_eq!(decoder.push(b":2}\n\r\n1\r\n\n\r\n").unwrap(), vec![r#"{"b":2}"#.to_string()]);
        assert!(decoder.push(b"0\r\n\r\n").is_err(), "the end of the stream");
    }

    #[test]
    fn drops_are_read_for_the_ports_asked() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 0100007F:8386 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 17
  2: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2 2 0000000000000000 5
";
        assert_eq!(udp_table_drops(table, &[0x8386]), 17);
        assert_eq!(udp_table_drops(table, &[0x8386, 0x35]), 22);
        assert_eq!(udp_table_drops(table, &[1]), 0);
        assert!(udp_drops(&[1]).is_ok());
    }

    #[test]
    fn resident_memory_is_read_in_bytes() {
        let status = "Name:\tboxoffice\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(parse_rss(status), Some(12_345 * 1024));
        assert_eq!(parse_rss("Name: x\n"), None);
        assert!(rss_of("self").unwrap() > 0);
    }

    #[test]
    fn a_round_counts_each_fan_once_and_only_when_told() {
        let tally = Tally::new(2, 1);
        (0..3).for_each(|fan| tally.joined(fan, place(fan as u64)));
        tally.start_round(RoundKind::Pause);
        let position = |paused| ServerMsg::Position { ahead: 1, wait_seconds: None, note: None, on_sale_at: 0, paused };
        assert!(!tally.message(0, position(false)), "not yet paused");
        assert!(!tally.message(0, position(true)));
        assert!(!tally.message(0, position(true)));
        assert!(!tally.message(2, position(true)));
        assert_eq!(tally.round_progress(), (1, 2), "fan 1 is still to be told");
        let round = tally.end_round();
        assert_eq!((round.fans, round.reached, round.quic.count, round.sse.count), (3, 2, 1, 1));
        tally.start_round(RoundKind::Resume);
        assert_eq!(tally.round_progress(), (3, 0), "a new round: every waiting fan is to be told again");
        assert!(!tally.message(1, position(false)));
        assert_eq!(tally.round_progress(), (2, 1));
        assert!(RoundKind::Rate.told_by(false, Some("the admission rate changed to 5 a minute")));
        assert!(!RoundKind::Rate.told_by(true, Some("the room is paused")));
    }

    #[test]
    fn growth_is_per_fan_and_may_be_negative() {
        assert_eq!(growth(1_000, 3_000, 1_000), 2.0);
        assert_eq!(growth(3_000, 1_000, 1_000), -2.0);
        assert_eq!(growth(0, 10, 0), 10.0, "no fans: the whole growth");
    }
}

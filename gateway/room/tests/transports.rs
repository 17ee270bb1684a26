//! The room's transports against an echo of the logic: native QUIC, WebTransport and the HTTP
//! fallback carry the same messages, close every session exactly once, refuse what they must,
//! and keep an idle fan's connection small.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use room::certs::{self, RoomCert};
use room::endpoint::{self, EndpointConfig, RoomEndpoint, CLOSE_SHUTDOWN};
use room::session::{self, OutboxReceiver, OutboxSender, SessionId, Sessions, Via};
use room::wire::{self, code, ClientMsg, PlaceView, ServerMsg, FRAME_BYTES_MAX};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, RwLock};

/// The memory test takes it alone, every other test shares it, so that the RSS it reads grows
/// by its own connections only.
static SERIAL: RwLock<()> = RwLock::const_new(());

/// The answer the echo accepts to any challenge.
const ANSWER: u64 = 42;
/// How long an event stream stays quiet in the test that it outlives its quiet.
const STREAM_QUIET_MS: u64 = 2_000;

/// The room's logic reduced to answers: a challenge to a hello, a ticket to a join (and to a
/// hello with a ticket, followed by a position); it counts what transports do.
#[derive(Default)]
struct Echo {
    next_id: AtomicU64,
    outboxes: Mutex<HashMap<SessionId, OutboxSender>>,
    opened: Mutex<Vec<(SessionId, IpAddr, Via)>>,
    closes: Mutex<HashMap<SessionId, usize>>,
}

impl Echo {
    fn opens(&self) -> usize {
        self.opened.lock().unwrap().len()
    }

    fn closes_of(&self, id: SessionId) -> usize {
        self.closes.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn closes_total(&self) -> usize {
        self.closes.lock().unwrap().values().sum()
    }

    fn answer(msg: ClientMsg) -> Vec<ServerMsg> {
        match msg {
            ClientMsg::Hello { token, .. } if token == "bad" => {
                vec![ServerMsg::Error { code: code::BAD_TOKEN.into(), detail: "not a fan token".into() }]
            }
            ClientMsg::Hello { event, ticket: None, .. } => {
                vec![ServerMsg::Challenge { challenge: format!("c-{event}"), bits: 4 }]
            }
            ClientMsg::Hello { ticket: Some(ticket), .. } => vec![
                ServerMsg::Ticket { ticket, place: place(), presale: false },
                ServerMsg::Position { ahead: 3, wait_seconds: None, note: None, on_sale_at: 1, paused: false },
            ],
            ClientMsg::Join { challenge, answer } if answer == ANSWER => {
                vec![ServerMsg::Ticket { ticket: format!("t-{challenge}"), place: place(), presale: false }]
            }
            ClientMsg::Join { .. } => {
                vec![ServerMsg::Error { code: code::BAD_ANSWER.into(), detail: "wrong answer".into() }]
            }
            ClientMsg::Heartbeat => Vec::new(),
        }
    }
}

impl Sessions for Echo {
    fn open(&self, peer: IpAddr, via: Via) -> (SessionId, OutboxReceiver) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = session::outbox();
        self.outboxes.lock().unwrap().insert(id, tx);
        self.opened.lock().unwrap().push((id, peer, via));
        (id, rx)
    }

    async fn message(&self, session: SessionId, msg: ClientMsg) {
        let Some(outbox) = self.outboxes.lock().unwrap().get(&session).cloned() else { return };
        for answer in Echo::answer(msg) {
            let _ = outbox.send(Box::new(answer)).await;
        }
    }

    fn close(&self, session: SessionId) {
        self.outboxes.lock().unwrap().remove(&session);
        *self.closes.lock().unwrap().entry(session).or_default() += 1;
    }
}

fn place() -> PlaceView {
    PlaceView { class: 0, primary: 7, node: 1, seq: 9 }
}

/// Pins the server's certificate by the SHA-256 of its DER, as clients of the room do.
#[derive(Debug)]
struct Pin {
    sha256_hex: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if certs::sha256_hex(end_entity) == self.sha256_hex {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
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

/// A room endpoint on 127.0.0.1 over an echo, and the sender that shuts it down.
struct Room {
    echo: Arc<Echo>,
    endpoint: RoomEndpoint,
    shutdown: watch::Sender<bool>,
}

async fn room(config: EndpointConfig) -> Room {
    let cert = RoomCert::self_signed(&["localhost".into(), "127.0.0.1".into()], 10).unwrap();
    let echo = Arc::new(Echo::default());
    let (shutdown, signal) = watch::channel(false);
    let config = EndpointConfig { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..config };
    let endpoint = endpoint::start(config, cert, echo.clone(), signal).await.unwrap();
    Room { echo, endpoint, shutdown }
}

/// A native client endpoint pinning `sha256_hex`.
fn native_client(sha256_hex: &str) -> quinn::Endpoint {
    let provider = certs::crypto_provider();
    let pin = Arc::new(Pin { sha256_hex: sha256_hex.into(), provider: provider.clone() });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(pin)
        .with_no_client_auth();
    tls.alpn_protocols = vec![wire::ALPN_NATIVE.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(0u32.into()).max_concurrent_uni_streams(0u32.into());
    config.transport_config(Arc::new(transport));
    let mut client = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    client.set_default_client_config(config);
    client
}

async fn send<W: AsyncWrite + Unpin>(send: &mut W, msg: &ClientMsg) {
    send.write_all(&wire::encode(msg)).await.unwrap();
}

async fn receive<R: AsyncRead + Unpin>(recv: &mut R) -> Option<ServerMsg> {
    let frame = tokio::time::timeout(Duration::from_secs(10), wire::read_frame(recv)).await.expect("an answer in time");
    frame.unwrap().map(|body| serde_json::from_slice(&body).unwrap())
}

/// Hello, challenge, join, ticket: the exchange every transport must carry.
async fn hello_then_join<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(recv: &mut R, out: &mut W) {
    send(out, &ClientMsg::Hello { event: 7, token: "fan".into(), ticket: None }).await;
    let challenge = receive(recv).await.unwrap();
    assert_eq!(challenge, ServerMsg::Challenge { challenge: "c-7".into(), bits: 4 });
    send(out, &ClientMsg::Join { challenge: "c-7".into(), answer: ANSWER }).await;
    let ticket = receive(recv).await.unwrap();
    assert_eq!(ticket, ServerMsg::Ticket { ticket: "t-c-7".into(), place: place(), presale: false });
}

/// Waits until `done` holds, or fails after a few seconds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_clients_join_over_quic_and_each_session_closes_once() {
    let _serial = SERIAL.read().await;
    let room = room(EndpointConfig::default()).await;
    let client = native_client(&room.endpoint.cert_sha256);
    let conn = client.connect(room.endpoint.local_addr, "localhost").unwrap().await.unwrap();
    let (mut out_a, mut in_a) = conn.open_bi().await.unwrap();
    let (mut out_b, mut in_b) = conn.open_bi().await.unwrap();
    hello_then_join(&mut in_a, &mut out_a).await;
    hello_then_join(&mut in_b, &mut out_b).await;
    send(&mut out_a, &ClientMsg::Heartbeat).await;
    out_a.write_all(&wire::encode(&json!({"type": "wave"}))).await.unwrap();
    let refused = receive(&mut in_a).await.unwrap();
    assert!(matches!(refused, ServerMsg::Error { ref code, .. } if code == code::BAD_MESSAGE), "{refused:?}");
    assert_eq!(room.endpoint.stats().sessions_open, 2);
    assert_eq!(room.endpoint.stats().connections_open, 1);
    let opened = room.echo.opened.lock().unwrap().clone();
    assert!(opened.iter().all(|(_, peer, via)| peer.is_loopback() && *via == Via::Quic), "{opened:?}");

    out_a.finish().unwrap();
    eventually("the finished stream's session closed", || room.echo.closes_total() == 1).await;
    conn.close(0u32.into(), b"bye");
    eventually("every session closed", || room.echo.closes_total() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((room.echo.closes_of(1), room.echo.closes_of(2)), (1, 1), "each session closes once");
    eventually("no connection open", || room.endpoint.stats().connections_open == 0).await;
    assert_eq!(room.endpoint.stats().sessions_open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_multiplexes_many_fans() {
    let _serial = SERIAL.read().await;
    let room = room(EndpointConfig { streams_per_connection_max: 64, ..EndpointConfig::default() }).await;
    let client = native_client(&room.endpoint.cert_sha256);
    let conn = client.connect(room.endpoint.local_addr, "localhost").unwrap().await.unwrap();
    let mut fans = Vec::new();
    for _ in 0..64 {
        let opened = tokio::time::timeout(Duration::from_secs(5), conn.open_bi()).await;
        let (mut out, mut recv) = opened.expect("the stream limit grows").unwrap();
        hello_then_join(&mut recv, &mut out).await;
        fans.push((out, recv));
    }
    assert_eq!(room.endpoint.stats().sessions_open, 64);
    let over = tokio::time::timeout(Duration::from_millis(500), conn.open_bi()).await;
    assert!(over.is_err(), "no stream beyond streams_per_connection_max");
    drop(fans);
    eventually("every session closed", || room.echo.closes_total() == 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_closes_its_stream_and_its_session_once() {
    let _serial = SERIAL.read().await;
    let room = room(EndpointConfig::default()).await;
    let client = native_client(&room.endpoint.cert_sha256);
    let conn = client.connect(room.endpoint.local_addr, "localhost").unwrap().await.unwrap();
    let (mut out, mut recv) = conn.open_bi().await.unwrap();
    out.write_all(&((FRAME_BYTES_MAX + 1) as u32).to_be_bytes()).await.unwrap();
    out.write_all(&[b'x'; 64]).await.unwrap();
    let refused = receive(&mut recv).await.unwrap();
    assert!(matches!(refused, ServerMsg::Error { ref code, .. } if code == code::BAD_MESSAGE), "{refused:?}");
    assert_eq!(receive(&mut recv).await, None, "the stream ends after the refusal");
    eventually("the session closed", || room.echo.closes_of(1) == 1).await;

    // The connection stays usable for other fans.
    let (mut out, mut recv) = conn.open_bi().await.unwrap();
    hello_then_join(&mut recv, &mut out).await;
    conn.close(0u32.into(), b"bye");
    eventually("both sessions closed", || room.echo.closes_total() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(room.echo.closes_of(1), 1, "closed exactly once");
    assert_eq!(room.echo.opens(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pinning_another_certificate_cannot_connect() {
    let _serial = SERIAL.read().await;
    let room = room(EndpointConfig::default()).await;
    let client = native_client(&"0".repeat(64));
    let connected = client.connect(room.endpoint.local_addr, "localhost").unwrap().await;
    assert!(connected.is_err(), "the pin must hold");
    assert_eq!(room.echo.opens(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_clients_join_on_the_room_path() {
    let _serial = SERIAL.read().await;
    let room = room(EndpointConfig::default()).await;
    let pin = hex::decode(&room.endpoint.cert_sha256).unwrap();
    let client = web_transport_quinn::ClientBuilder::new().with_server_certificate_hashes(vec![pin]).unwrap();
    let port = room.endpoint.local_addr.port();
    let url: reqwest::Url = format!("https://127.0.0.1:{port}/room").parse().unwrap();
    let session = client.connect(url).await.unwrap();
    let (mut out, mut recv) = session.open_bi().await.unwrap();
    hello_then_join(&mut recv, &mut out).await;
    let (mut out, mut recv) = session.open_bi().await.unwrap();
    hello_then_join(&mut recv, &mut out).await;
    assert_eq!(room.endpoint.stats().sessions_open, 2);
    let opened = room.echo.opened.lock().unwrap().clone();
    assert!(opened.iter().all(|(_, peer, via)| peer.is_loopback() && *via == Via::WebTransport), "{opened:?}");
    session.close(0, b"bye");
    eventually("both sessions closed", || room.echo.closes_total() == 2).await;

    let elsewhere: reqwest::Url = format!("https://127.0.0.1:{port}/elsewhere").parse().unwrap();
    let refused = client.connect(elsewhere).await.expect_err("only /room is served");
    assert!(refused.to_string().contains("404"), "{refused}");
    assert_eq!(room.echo.opens(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_maximum_are_refused() {
    let _serial = SERIAL.read().await;
    let room = room(EndpointConfig { connections_max: 2, ..EndpointConfig::default() }).await;
    let client = native_client(&room.endpoint.cert_sha256);
    let addr = room.endpoint.local_addr;
    let first = client.connect(addr, "localhost").unwrap().await.unwrap();
    let _second = client.connect(addr, "localhost").unwrap().await.unwrap();
    let third = client.connect(addr, "localhost").unwrap().await;
    assert!(matches!(third, Err(quinn::ConnectionError::ConnectionClosed(_))), "{third:?}");
    assert_eq!(room.endpoint.stats().connections_open, 2);

    first.close(0u32.into(), b"bye");
    eventually("a place freed", || room.endpoint.stats().connections_open == 1).await;
    let again = client.connect(addr, "localhost").unwrap().await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_connection_with_the_shutdown_code() {
    let _serial = SERIAL.read().await;
    let room = room(EndpointConfig::default()).await;
    let client = native_client(&room.endpoint.cert_sha256);
    let conn = client.connect(room.endpoint.local_addr, "localhost").unwrap().await.unwrap();
    let (mut out, mut recv) = conn.open_bi().await.unwrap();
    hello_then_join(&mut recv, &mut out).await;
    room.shutdown.send(true).unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await.unwrap();
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => assert_eq!(close.error_code, CLOSE_SHUTDOWN.into()),
        other => panic!("closed otherwise: {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(5), room.endpoint.stopped()).await.expect("stopped in time");
    eventually("the session closed", || room.echo.closes_total() == 1).await;
}

/// The RSS of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Opens `count` connections, each with one stream past its challenge, `batch` at a time.
async fn open_fans(client: &quinn::Endpoint, addr: SocketAddr, count: usize) -> Vec<FanConn> {
    let batch_max = 50;
    let mut fans = Vec::with_capacity(count);
    while fans.len() < count {
        let batch = batch_max.min(count - fans.len());
        let opening = (0..batch).map(|_| open_fan(client, addr));
        fans.extend(futures::future::join_all(opening).await);
    }
    fans
}

/// A fan connection held open: the connection and its stream's halves.
type FanConn = (quinn::Connection, quinn::SendStream, quinn::RecvStream);

async fn open_fan(client: &quinn::Endpoint, addr: SocketAddr) -> FanConn {
    let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
    let (mut out, mut recv) = conn.open_bi().await.unwrap();
    send(&mut out, &ClientMsg::Hello { event: 1, token: "fan".into(), ticket: None }).await;
    assert!(matches!(receive(&mut recv).await, Some(ServerMsg::Challenge { .. })));
    (conn, out, recv)
}

/// Where the fans' process connects, when this test binary runs as the fans (see below).
const FANS_ADDR_ENV: &str = "ROOM_TEST_FANS_ADDR";
/// The certificate pin the fans' process uses.
const FANS_PIN_ENV: &str = "ROOM_TEST_FANS_PIN";
/// Fans opened before the first measure, so that one-time allocations are not counted.
const WARM_FANS: usize = 200;
/// Fans measured.
const FANS: usize = 2_000;
/// The most an idle native connection with one stream may cost the endpoint's process.
const PER_CONNECTION_BYTES_MAX: u64 = 34 * 1024;

/// The RSS growth of the endpoint's process per connection, each with one stream held open past
/// its challenge. The fans run in a child process (this test binary again, in the fans' role),
/// so that only the server's memory is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_fan_connection_costs_little_memory() {
    if let (Ok(addr), Ok(pin)) = (std::env::var(FANS_ADDR_ENV), std::env::var(FANS_PIN_ENV)) {
        return be_the_fans(addr.parse().unwrap(), &pin).await;
    }
    let _alone = SERIAL.write().await;
    let room = room(EndpointConfig::default()).await;
    let mut fans = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["an_idle_fan_connection_costs_little_memory", "--exact", "--nocapture", "--test-threads=1"])
        .env(FANS_ADDR_ENV, room.endpoint.local_addr.to_string())
        .env(FANS_PIN_ENV, &room.endpoint.cert_sha256)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut said = tokio::io::BufReader::new(fans.stdout.take().unwrap()).lines();
    let mut go = fans.stdin.take().unwrap();
    wait_for_line(&mut said, "fans warm").await;
    let before = rss_bytes();
    go.write_all(b"go\n").await.unwrap();
    wait_for_line(&mut said, "fans ready").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes();
    let per_connection = after.saturating_sub(before) / FANS as u64;
    println!(
        "endpoint rss {} KiB -> {} KiB for {FANS} more native connections with one stream each: \
         {per_connection} bytes per connection",
        before / 1024,
        after / 1024,
    );
    let stats = room.endpoint.stats();
    assert_eq!((stats.connections_open, stats.sessions_open), (WARM_FANS + FANS, WARM_FANS + FANS));
    // quinn and rustls hold some 29 KB of it (a bare quinn server holding one stream per
    // connection measured about 30 kB here); the room's transport adds its tasks and a queue.
    assert!(per_connection < PER_CONNECTION_BYTES_MAX, "{per_connection} bytes per connection");
    drop(go);
    let exited = tokio::time::timeout(Duration::from_secs(30), fans.wait()).await.unwrap().unwrap();
    assert!(exited.success(), "the fans' process failed: {exited}");
}

/// The fans' role: opens the warm fans, says so, waits for a line, opens the measured fans, says
/// so, and holds them until its input closes.
async fn be_the_fans(addr: SocketAddr, pin: &str) {
    let client = native_client(pin);
    let warm = open_fans(&client, addr, WARM_FANS).await;
    println!("fans warm");
    assert_eq!(told().await, "go\n");
    let fans = open_fans(&client, addr, FANS).await;
    println!("fans ready");
    assert_eq!(told().await, "", "held until the measure is done");
    drop((warm, fans));
}

/// The next line of the fans' input ("" at its end).
async fn told() -> String {
    let reading = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    reading.await.unwrap().unwrap()
}

async fn wait_for_line(lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>, want: &str) {
    let waiting = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest's "test <name> ... " may start the line.
            if line.ends_with(want) {
                return;
            }
        }
        panic!("the fans' process ended before saying {want:?}");
    };
    tokio::time::timeout(Duration::from_secs(120), waiting).await.expect("the fans in time");
}

/// The HTTP routes over an echo, served on 127.0.0.1 with the peers' addresses.
async fn http_room() -> (Arc<Echo>, String) {
    let echo = Arc::new(Echo::default());
    let router = room::http::routes(echo.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    (echo, base)
}

async fn problem_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_hello_and_join_answer_a_challenge_then_a_ticket() {
    let _serial = SERIAL.read().await;
    let (echo, base) = http_room().await;
    let http = reqwest::Client::new();
    let hello =
        http.post(format!("{base}/events/7/waiting-room/hello")).bearer_auth("fan").json(&json!({"ticket": null}));
    let hello = hello.send().await.unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.json::<Value>().await.unwrap(), json!({"type": "challenge", "challenge": "c-7", "bits": 4}));

    let join = http.post(format!("{base}/events/7/waiting-room/join")).bearer_auth("fan");
    let join = join.json(&json!({"challenge": "c-7", "answer": ANSWER})).send().await.unwrap();
    assert_eq!(join.status(), 200);
    let ticket: Value = join.json().await.unwrap();
    assert_eq!(ticket["type"], "ticket");
    assert_eq!(ticket["ticket"], "t-c-7");
    assert_eq!(ticket["place"], json!({"class": 0, "primary": 7, "node": 1, "seq": 9}));

    let wrong = http.post(format!("{base}/events/7/waiting-room/join")).bearer_auth("fan");
    let wrong = wrong.json(&json!({"challenge": "c-7", "answer": 1})).send().await.unwrap();
    let (status, problem) = problem_of(wrong).await;
    assert_eq!(status, 400);
    assert!(problem["type"].as_str().unwrap().ends_with("/problems/waiting-room/bad_answer"), "{problem}");

    eventually("every http session closed", || echo.closes_total() == 3).await;
    assert_eq!(echo.opens(), 3);
    let opened = echo.opened.lock().unwrap().clone();
    assert!(opened.iter().all(|(_, peer, via)| peer.is_loopback() && *via == Via::Http), "{opened:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_refusals_are_problems_and_bad_input_is_a_4xx() {
    let _serial = SERIAL.read().await;
    let (echo, base) = http_room().await;
    let http = reqwest::Client::new();
    let hello = format!("{base}/events/7/waiting-room/hello");

    let bad_token = http.post(&hello).bearer_auth("bad").json(&json!({})).send().await.unwrap();
    let (status, problem) = problem_of(bad_token).await;
    assert_eq!(status, 401);
    assert!(problem["type"].as_str().unwrap().ends_with("/problems/waiting-room/bad_token"), "{problem}");
    assert_eq!(problem["code"], "bad_token");

    let no_token = http.post(&hello).json(&json!({})).send().await.unwrap();
    assert_eq!(problem_of(no_token).await.0, 401);

    let bad_json = http.post(&hello).bearer_auth("fan").body("{\"ticket\":").send().await.unwrap();
    let (status, problem) = problem_of(bad_json).await;
    assert_eq!(status, 400);
    assert!(problem["type"].as_str().unwrap().ends_with("/problems/waiting-room/bad_message"), "{problem}");

    let unknown_field = http.post(&hello).bearer_auth("fan").json(&json!({"ticket": null, "seat": 1}));
    assert_eq!(problem_of(unknown_field.send().await.unwrap()).await.0, 400);

    let join = format!("{base}/events/7/waiting-room/join");
    let missing_answer = http.post(&join).bearer_auth("fan").json(&json!({"challenge": "c"}));
    assert_eq!(problem_of(missing_answer.send().await.unwrap()).await.0, 400);

    let bad_event = http.post(format!("{base}/events/seven/waiting-room/hello")).bearer_auth("fan").json(&json!({}));
    assert_eq!(problem_of(bad_event.send().await.unwrap()).await.0, 400);

    let huge = json!({"ticket": "x".repeat(5_000)});
    let huge = http.post(&hello).bearer_auth("fan").json(&huge).send().await.unwrap();
    assert_eq!(problem_of(huge).await.0, 413);

    eventually("every session that opened closed", || echo.closes_total() == echo.opens()).await;
    assert_eq!(echo.opens(), 1, "only the well-formed hello reached the logic");
}

/// Reads server-sent events from `response` until `count` have come: (event, data) pairs.
async fn sse_events(response: &mut reqwest::Response, count: usize) -> Vec<(String, Value)> {
    let mut text = String::new();
    loop {
        let events: Vec<(String, Value)> = text
            .split("\n\n")
            .filter_map(|block| {
                let event = block.lines().find_map(|line| line.strip_prefix("event: "))?;
                let data = block.lines().find_map(|line| line.strip_prefix("data: "))?;
                Some((event.to_owned(), serde_json::from_str(data).ok()?))
            })
            .collect();
        if events.len() >= count {
            return events;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk.expect("the stream stays open")).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_every_message_and_keeps_its_session_as_long_as_it_is_open() {
    let _serial = SERIAL.read().await;
    let (echo, base) = http_room().await;
    let http = reqwest::Client::new();
    let url = format!("{base}/events/7/waiting-room/stream?ticket=t-1&token=fan");
    let mut stream = http.get(url).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let events = sse_events(&mut stream, 2).await;
    assert_eq!(events[0].0, "ticket");
    assert_eq!(events[0].1["ticket"], "t-1");
    assert_eq!(events[1].0, "position");
    assert_eq!(events[1].1["ahead"], 3);

    tokio::time::sleep(Duration::from_millis(STREAM_QUIET_MS)).await;
    assert_eq!(echo.closes_total(), 0, "the session lives as long as the stream, quiet or not");
    drop(stream);
    eventually("the session closed with the stream", || echo.closes_total() == 1).await;

    let refused = http.get(format!("{base}/events/7/waiting-room/stream")).bearer_auth("bad").send().await.unwrap();
    assert_eq!(problem_of(refused).await.0, 401);
    eventually("the refused stream's session closed", || echo.closes_total() == 2).await;
}

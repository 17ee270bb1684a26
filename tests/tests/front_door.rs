//! The gateway's front door against hostile clients, on real nodes: a slow-loris flood is cut by
//! the header timeout and cannot take more descriptors than `connections_max`, one address's
//! flood of holds is rate limited without slowing another's, sign-ins are limited per account,
//! a flood of password hashing leaves holds fast, and a node serves HTTPS.
//!
//! Clients take loopback addresses of their own (127.0.0.2, 127.0.0.3, ...: on Linux all of
//! 127/8 is loopback), so that per-address limits tell them apart.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{answer, Cluster, Fan, Settings, StatusCode, TlsFiles};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A client whose connections come from `127.0.0.<last>`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// `fan` speaking from `127.0.0.<last>`.
fn fan_from(fan: &Fan, last: u8) -> Fan {
    Fan { http: client_from(last), ..fan.clone() }
}

/// The 99th percentile (nearest rank).
fn p99(latencies: &[Duration]) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    sorted[(sorted.len() * 99).div_ceil(100) - 1]
}

/// Up to three rounds of `per_round` holds by `fan`, one ticket each from `first_ticket` on, 20 ms
/// apart, each of which must succeed; stops after the first round whose p99 is under `bound`.
/// Returns each round's p99. A round can be spoiled by whatever else the machine runs (two
/// cores, three nodes); a starved runtime spoils every round.
async fn rounds_of_holds(
    fan: &Fan,
    base: &str,
    event: u64,
    first_ticket: u32,
    per_round: u32,
    bound: Duration,
) -> Vec<Duration> {
    let mut p99s = Vec::new();
    for round in 0..3 {
        let mut latencies = Vec::new();
        for n in 0..per_round {
            let ticket = first_ticket + round * per_round + n;
            let started = Instant::now();
            let hold = fan.hold(base, event, &[ticket]).await.unwrap();
            latencies.push(started.elapsed());
            assert_eq!(hold.status, StatusCode::CREATED, "the hold of {ticket}: {hold:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p99s.push(p99(&latencies));
        if p99(&latencies) < bound {
            break;
        }
    }
    p99s
}

fn settings_with(gateway: &str) -> Settings {
    // The node's own limits, with these lines over them (the harness turns them off otherwise).
    Settings { gateway_limits: String::new(), gateway_extra: gateway.into(), ..Settings::default() }
}

/// How a slow-loris connection ended, counted from when it was connected.
#[derive(Debug)]
enum Loris {
    /// The server closed it (or answered it with a refusal) after this long.
    Closed(Duration),
    /// Still open when its header ran out.
    Open,
}

/// A client that sends a request head a byte a second and never finishes it.
async fn loris(addr: SocketAddr) -> Loris {
    let Ok(mut stream) = TcpStream::connect(addr).await else { return Loris::Closed(Duration::ZERO) };
    let started = Instant::now();
    let head = b"GET /events HTTP/1.1\r\nHost: node\r\nX-Slow: 0123456789012345678901234567890123456789";
    let mut buf = [0u8; 1024];
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            return Loris::Closed(started.elapsed());
        }
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Err(_) => continue,
            // End of stream, a reset, or an answer (the refusal's 503): the server is done with it.
            Ok(_) => return Loris::Closed(started.elapsed()),
        }
    }
    Loris::Open
}

/// One keep-alive HTTP/1.1 connection, as a fan's browser keeps one: every request on it (a
/// pooling client may open another at any time, which a node at its cap refuses).
struct Connection(BufReader<TcpStream>);

impl Connection {
    async fn open(addr: SocketAddr) -> Connection {
        Connection(BufReader::new(TcpStream::connect(addr).await.unwrap()))
    }

    /// Sends a request and reads its answer: status and JSON body.
    async fn send(&mut self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.0.get_mut().write_all(format!("{head}{body}").as_bytes()).await.unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).await.unwrap();
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
        let mut length = 0;
        loop {
            line.clear();
            self.0.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header line");
            assert!(!name.eq_ignore_ascii_case("transfer-encoding"), "answers of a known length");
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.0.read_exact(&mut body).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_loris_is_cut_off_and_cannot_take_the_descriptors() {
    const CONNECTIONS_MAX: usize = 64;
    const LORIS: usize = 300;
    const HEADER_TIMEOUT_MS: u64 = 2_000;
    let extra = format!(
        "connections_max = {CONNECTIONS_MAX}\nheader_read_timeout_ms = {HEADER_TIMEOUT_MS}\ntickets_per_fan_max = 0\n"
    );
    let cluster = Cluster::start(Settings { gateway_extra: extra, ..Settings::default() }).await.unwrap();
    let event = cluster.seed_event(200).await.unwrap()["id"].as_u64().unwrap();
    let fan = cluster.fan(1, "patient").await.unwrap();
    let addr: SocketAddr = cluster.node(1).http_addr.parse().unwrap();
    // One keep-alive connection, opened before the flood and kept busy.
    let mut connection = Connection::open(addr).await;
    assert_eq!(connection.send("GET", "/events", &fan.token, None).await.0, 200);
    let fds_before = cluster.open_fds(1).unwrap();

    let flood = (0..LORIS).map(|_| tokio::spawn(loris(addr))).collect::<Vec<_>>();
    let mut latencies = Vec::new();
    let mut fds_max = fds_before;
    let until = Instant::now() + Duration::from_millis(HEADER_TIMEOUT_MS + 3_000);
    let mut ticket = 1;
    while Instant::now() < until {
        let started = Instant::now();
        let (status, _) = connection.send("GET", "/events", &fan.token, None).await;
        assert_eq!(status, 200, "the events page during the flood");
        latencies.push(started.elapsed());
        let started = Instant::now();
        let path = format!("/events/{event}/bookings");
        let (status, body) = connection.send("POST", &path, &fan.token, Some(json!({"ticketIds": [ticket]}))).await;
        assert_eq!(status, 201, "a hold during the flood: {body}");
        latencies.push(started.elapsed());
        ticket += 1;
        fds_max = fds_max.max(cluster.open_fds(1).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let slowest = latencies.iter().max().unwrap();
    eprintln!("slow loris: {LORIS} connections; slowest other request {slowest:?}; descriptors {fds_before} -> at most {fds_max}");
    assert!(*slowest < Duration::from_secs(1), "every request answered within a second: slowest {slowest:?}");
    assert!(
        fds_max <= fds_before + CONNECTIONS_MAX + 16,
        "open descriptors stay under the cap: {fds_max} with {fds_before} before the flood"
    );

    let mut ends = Vec::new();
    for loris in flood {
        ends.push(tokio::time::timeout(Duration::from_secs(10), loris).await.expect("every loris ends").unwrap());
    }
    let open = ends.iter().filter(|end| matches!(end, Loris::Open)).count();
    assert_eq!(open, 0, "no slow-loris connection outlives the header timeout: {ends:?}");
    let closed = |min_ms: u64, max_ms: u64| {
        ends.iter()
            .filter(|end| matches!(end, Loris::Closed(after) if (min_ms..max_ms).contains(&(after.as_millis() as u64))))
            .count()
    };
    let refused = closed(0, 1_000);
    let timed_out = closed(HEADER_TIMEOUT_MS - 500, HEADER_TIMEOUT_MS + 2_500);
    assert_eq!(refused + timed_out, LORIS, "each was refused at once or cut at the header timeout: {ends:?}");
    assert!(timed_out <= CONNECTIONS_MAX, "at most the cap were let in: {timed_out}");
    assert!(refused >= LORIS - CONNECTIONS_MAX, "the rest were refused at once: {refused}");
    let fds_after = cluster.open_fds(1).unwrap();
    assert!(fds_after <= fds_before + 4, "the descriptors came back: {fds_after}, {fds_before} before");
}

/// A hold request of `fan` for `ticket`, and its raw response (for its headers).
async fn hold_raw(fan: &Fan, base: &str, event: u64, ticket: u32) -> reqwest::Response {
    let url = format!("{base}/events/{event}/bookings");
    fan.http.post(url).bearer_auth(&fan.token).json(&json!({"ticketIds": [ticket]})).send().await.unwrap()
}

/// Checks that `response` is a 429 problem with a whole number of seconds in `Retry-After`;
/// returns its body.
async fn assert_rate_limited(what: &str, response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let seconds: u64 = retry.as_deref().unwrap_or_default().parse().unwrap_or_else(|_| panic!("{what}: {retry:?}"));
    assert!((1..=60).contains(&seconds), "{what}: Retry-After {seconds}");
    let answer = answer(response).await.unwrap();
    assert!(answer.is_problem(), "{what}: {answer:?}");
    assert_eq!(answer.body["type"], "https://boxoffice.dev/problems/rate-limited", "{what}");
    answer.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn floods_are_rate_limited_per_address_fan_and_account() {
    let settings = settings_with(
        "tickets_per_fan_max = 0\nholds_per_address_per_min = 30\nholds_per_fan_per_min = 40\n\
         signups_per_address_per_min = 5\nsignins_per_email_per_min = 5\npayments_per_fan_per_min = 2\n",
    );
    let cluster = Cluster::start(settings).await.unwrap();
    let event = cluster.seed_event(400).await.unwrap()["id"].as_u64().unwrap();
    let base = cluster.url(1);
    let (flooder, steady, greedy) = (
        fan_from(&cluster.fan(1, "flooder").await.unwrap(), 2),
        fan_from(&cluster.fan(1, "steady").await.unwrap(), 3),
        fan_from(&cluster.fan(1, "greedy").await.unwrap(), 4),
    );

    // 127.0.0.2 floods holds (20 at a time, until told to stop) while 127.0.0.3 holds at a fan's
    // pace.
    let stop = Arc::new(AtomicBool::new(false));
    let flood_started = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    let next_ticket = Arc::new(AtomicU64::new(0));
    for _ in 0..20 {
        let (flooder, base, stop, next_ticket) = (flooder.clone(), base.clone(), stop.clone(), next_ticket.clone());
        flood.spawn(async move {
            let (mut limited, mut held) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let ticket = 1 + (next_ticket.fetch_add(1, Ordering::Relaxed) % 200) as u32;
                let response = hold_raw(&flooder, &base, event, ticket).await;
                if response.status() == StatusCode::TOO_MANY_REQUESTS {
                    let body = assert_rate_limited("a flooded hold", response).await;
                    assert!(body["detail"].as_str().unwrap().contains("this address"), "{body}");
                    limited += 1;
                } else {
                    assert_eq!(response.status(), StatusCode::CREATED, "a flooded hold let through");
                    held += 1;
                }
            }
            (limited, held)
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Three rounds of ten stay within the steady address's own burst of 30.
    let p99s = rounds_of_holds(&steady, &base, event, 201, 10, Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut limited, mut held) = (0, 0);
    while let Some(counts) = flood.join_next().await {
        let counts = counts.unwrap();
        (limited, held) = (limited + counts.0, held + counts.1);
    }
    // 30 at once, then one every two seconds.
    let allowed = 30 + flood_started.elapsed().as_secs() / 2 + 1;
    assert!((30..=allowed).contains(&held), "the burst and no more let through: {held} held, {limited} refused");
    assert!(limited > 100, "the flood was refused: {limited}");
    let best = p99s.iter().min().unwrap();
    eprintln!("hold flood: {held} let through, {limited} refused; the other address's p99 of each round {p99s:?}");
    assert!(*best < Duration::from_millis(100), "the steady address's holds stay fast: p99 of each round {p99s:?}");

    // A fan over its own limit is refused whichever address it moves to.
    let elsewhere = fan_from(&greedy, 5);
    for ticket in 261..=300 {
        let from = if ticket % 2 == 0 { &greedy } else { &elsewhere };
        let hold = from.hold(&base, event, &[ticket]).await.unwrap();
        assert_eq!(hold.status, StatusCode::CREATED, "greedy's hold {ticket} is within its limits: {hold:?}");
    }
    let third_address = fan_from(&greedy, 9);
    let body = assert_rate_limited("a fan over its limit", hold_raw(&third_address, &base, event, 301).await).await;
    assert!(body["detail"].as_str().unwrap().contains("this fan"), "{body}");

    // Payments: two a minute for this fan.
    let booking = steady.hold(&base, event, &[320]).await.unwrap().body["bookingId"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let started = steady.start_payment(&base, &booking, None).await.unwrap();
        assert_ne!(started.status, StatusCode::TOO_MANY_REQUESTS, "{started:?}");
    }
    let url = format!("{base}/bookings/{booking}/payment");
    let third = steady.http.post(url).bearer_auth(&steady.token).json(&json!({})).send().await.unwrap();
    assert_rate_limited("a third payment in a minute", third).await;

    // Password guessing: five tries at an account a minute, from whichever addresses.
    let sign_in = |from: u8, password: &str| {
        let body = json!({"email": "steady@fans.test", "password": password});
        client_from(from).post(format!("{base}/sessions")).json(&body).send()
    };
    // The fan signed in once already (`Cluster::fan`): four guesses are left this minute.
    for guess in 0..4 {
        let answer = answer(sign_in(6, &format!("guess-{guess}")).await.unwrap()).await.unwrap();
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {guess}: {answer:?}");
    }
    assert_rate_limited("a fifth guess", sign_in(6, "guess-4").await.unwrap()).await;
    let right = sign_in(7, "steady-password").await.unwrap();
    assert_rate_limited("even the right password from elsewhere, until the minute refills", right).await;

    // Sign-ups: five a minute from one address.
    let sign_up = |n: u32| {
        let body =
            json!({"name": format!("new{n}"), "email": format!("new{n}@fans.test"), "password": "a-long-password"});
        client_from(8).post(format!("{base}/users")).json(&body).send()
    };
    for n in 0..5 {
        assert_eq!(sign_up(n).await.unwrap().status(), StatusCode::CREATED, "sign-up {n}");
    }
    assert_rate_limited("a sixth sign-up from one address", sign_up(5).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_password_hashing_leaves_holds_fast() {
    let settings = settings_with(
        "tickets_per_fan_max = 0\nsignups_per_address_per_min = 0\nsignins_per_address_per_min = 0\n\
         signins_per_email_per_min = 0\nholds_per_address_per_min = 0\nholds_per_fan_per_min = 0\n\
         password_hashes_in_flight_max = 1\npassword_hash_wait_ms = 300\n",
    );
    // One slot, as the default gives a node of two cores: here three nodes and the test share two.
    let cluster = Cluster::start(settings).await.unwrap();
    let event = cluster.seed_event(400).await.unwrap()["id"].as_u64().unwrap();
    let base = cluster.url(1);
    let holder = fan_from(&cluster.fan(1, "holder").await.unwrap(), 3);
    assert_eq!(holder.hold(&base, event, &[1]).await.unwrap().status, StatusCode::CREATED, "a warm-up hold");

    // Hundreds of sign-ins and some sign-ups at once from 127.0.0.2, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 3]> = Arc::new(Default::default()); // answered, refused 503, other
    let http = client_from(2);
    let mut flood = tokio::task::JoinSet::new();
    for worker in 0..300u32 {
        let (stop, counts, http, base) = (stop.clone(), counts.clone(), http.clone(), base.clone());
        flood.spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (path, body) = if n % 10 == 0 {
                    let name = format!("flood{worker}x{n}");
                    (
                        "users",
                        json!({"name": name, "email": format!("{name}@fans.test"), "password": "a-long-password"}),
                    )
                } else {
                    ("sessions", json!({"email": format!("nobody{worker}@fans.test"), "password": "wrong-password"}))
                };
                let Ok(response) = http.post(format!("{base}/{path}")).json(&body).send().await else { continue };
                let status = response.status();
                let slot = match status {
                    StatusCode::UNAUTHORIZED | StatusCode::CREATED => 0,
                    StatusCode::SERVICE_UNAVAILABLE => {
                        assert_eq!(response.headers()["retry-after"], "1");
                        1
                    }
                    _ => 2,
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answered_before = counts[0].load(Ordering::Relaxed);
    let p99s = rounds_of_holds(&holder, &base, event, 2, 100, Duration::from_millis(50)).await;
    let answered_during = counts[0].load(Ordering::Relaxed) - answered_before;
    stop.store(true, Ordering::Relaxed);
    while flood.join_next().await.transpose().unwrap().is_some() {}
    let [answered, refused, other] = [0, 1, 2].map(|i| counts[i].load(Ordering::Relaxed));
    assert!(answered_during > 10, "the flood went on while the holds were made: {answered_during} hashed");
    assert!(refused > 0, "the flood was more than the slots take: {answered} hashed, {refused} refused");
    assert_eq!(other, 0, "the flood got only its answers or a 503");
    let best = p99s.iter().min().unwrap();
    eprintln!("argon2 flood: {answered} hashed, {refused} refused; holds' p99 of each round {p99s:?}");
    assert!(*best < Duration::from_millis(50), "holds stay fast under the flood: p99 of each round {p99s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let tls = TlsFiles { cert_path: dir.path().join("cert.pem"), key_path: dir.path().join("key.pem") };
    std::fs::write(&tls.cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&tls.key_path, certified.signing_key.serialize_pem()).unwrap();
    let cluster = Cluster::start(Settings { tls: Some(tls), ..Settings::default() }).await.unwrap();
    let base = cluster.url(1);
    assert!(base.starts_with("https://"), "{base}");
    let event = cluster.seed_event(20).await.unwrap()["id"].as_u64().unwrap();
    let fan = cluster.fan(2, "secure").await.unwrap();
    let hold = fan.hold(&cluster.url(2), event, &[1]).await.unwrap();
    assert_eq!(hold.status, StatusCode::CREATED, "a hold over HTTPS: {hold:?}");
    let plain = reqwest::Client::new().get(format!("http://{}/events", cluster.node(1).http_addr)).send().await;
    assert!(plain.is_err(), "plain HTTP to an HTTPS port gets no answer: {plain:?}");
}

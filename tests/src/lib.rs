//! Harness for the integration tests: real clusters of real `boxoffice node` processes on
//! loopback, each with its own config file, data folder and log file in a temporary folder.
//!
//! - [`Cluster`] starts, kills (SIGKILL), pauses and restarts nodes and finds group leaders
//!   through the admin API;
//! - [`Fan`] signs up and talks to the API as one fan;
//! - [`Cluster::seed_event`] makes a venue, a performer and an event to sell.
//!
//! The binary is `target/release/boxoffice` next to the test executable, or `BOXOFFICE_BIN`.
//! When a test fails, the tail of every node's log is printed.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

pub use reqwest::StatusCode;

/// Admin token of every test cluster.
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The sandbox payment provider's API key and webhook secret in every test cluster.
pub const PAYMENT_API_KEY: &str = "sk_test_boxoffice";
pub const WEBHOOK_SECRET: &str = "whsec_test_boxoffice";
/// How long a cluster may take to elect every group's leader.
const READY_TIMEOUT_MS: u64 = 60_000;
/// Times a cluster is started on fresh ports when one of its ports was taken meanwhile.
const START_ATTEMPTS_MAX: u32 = 3;
/// Timeout of one HTTP request from a test.
const REQUEST_TIMEOUT_MS: u64 = 15_000;

/// Settings a test may change; the rest are the defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    pub nodes: u64,
    pub inventory_groups: u32,
    pub hold_ttl_ms: u64,
    /// Extra lines for the `[raft]` table.
    pub raft_extra: String,
    /// Extra lines for the `[gateway]` table.
    pub gateway_extra: String,
    /// Nodes in every node's config that `start` does not start (`restart` starts them later).
    pub not_started: Vec<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nodes: 3,
            inventory_groups: 4,
            hold_ttl_ms: 600_000,
            raft_extra: String::new(),
            gateway_extra: String::new(),
            not_started: Vec::new(),
        }
    }
}

pub struct NodeProc {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeProc>,
    pub http: reqwest::Client,
    /// The sandbox payment provider, a process of its own (`boxoffice sandbox`).
    pub sandbox_url: String,
    sandbox: Option<Child>,
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("BOXOFFICE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/release/deps/<test> -> target/release/boxoffice
    exe.parent().and_then(|deps| deps.parent()).expect("target folder").join("boxoffice")
}

/// Free loopback ports, each kept bound until the whole set is released: released one by one,
/// the kernel could hand the same port out twice, and two of a cluster's addresses would clash.
#[derive(Default)]
struct FreePorts(Vec<std::net::TcpListener>);

impl FreePorts {
    fn addr(&mut self) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let addr = listener.local_addr().expect("local addr").to_string();
        self.0.push(listener);
        addr
    }
}

impl Cluster {
    /// Starts a cluster and waits until every group has a leader.
    ///
    /// The cluster's ports are picked free and then released for its processes to bind, so
    /// another test's process or an outgoing connection can take one in between: a start whose
    /// process found its port taken is tried again on other ports, at most
    /// [`START_ATTEMPTS_MAX`] times. Any other failure to start fails at once.
    pub async fn start(settings: Settings) -> anyhow::Result<Cluster> {
        let bin = binary();
        if !bin.exists() {
            bail!("{} is missing: build it first with `cargo build --release --bin boxoffice`", bin.display());
        }
        let mut attempt = 1;
        loop {
            let mut cluster = Cluster::launch(&settings)?;
            match cluster.wait_started().await {
                Ok(()) => return Ok(cluster),
                Err(error) if attempt < START_ATTEMPTS_MAX && cluster.port_taken() => {
                    eprintln!("cluster start {attempt}: a port was taken meanwhile ({error}); trying other ports");
                    attempt += 1;
                }
                Err(error) => bail!("{error}\n{}", cluster.log_tails(100)),
            }
        }
    }

    /// Picks ports, writes the configs and spawns the sandbox provider and every node.
    fn launch(settings: &Settings) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let mut ports = FreePorts::default();
        let addrs: Vec<(u64, String, String)> =
            (1..=settings.nodes).map(|id| (id, ports.addr(), ports.addr())).collect();
        let sandbox_addr = ports.addr();
        // The processes bind them right after.
        drop(ports);
        let sandbox = spawn_sandbox(&dir, &sandbox_addr, addrs.iter().map(|(_, _, http)| http.as_str()))?;
        let mut peers = String::new();
        for (id, raft, http) in &addrs {
            writeln!(peers, "[[nodes]]\nid = {id}\nraft_addr = \"{raft}\"\nhttp_addr = \"{http}\"\n")?;
        }
        let mut nodes = Vec::new();
        for (id, raft_addr, http_addr) in addrs.clone() {
            let config = dir.path().join(format!("node{id}.toml"));
            std::fs::write(&config, node_config(settings, &dir, id, &raft_addr, &http_addr, &peers, &sandbox_addr))?;
            let log = dir.path().join(format!("node{id}.log"));
            nodes.push(NodeProc { id, raft_addr, http_addr, config, log, child: None });
        }
        let http = reqwest::Client::builder().timeout(Duration::from_millis(REQUEST_TIMEOUT_MS)).build()?;
        let sandbox_url = format!("http://{sandbox_addr}");
        let mut cluster = Cluster { dir, nodes, http, sandbox_url, sandbox: Some(sandbox) };
        for id in (1..=settings.nodes).filter(|id| !settings.not_started.contains(id)) {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    /// Waits until every group has a leader and the sandbox answers; fails as soon as one of
    /// the processes has exited.
    async fn wait_started(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        loop {
            if self.ready().await && self.http.get(&self.sandbox_url).send().await.is_ok() {
                return Ok(());
            }
            if let Some(exited) = self.exited() {
                bail!("{exited} exited while the cluster started");
            }
            if Instant::now() > deadline {
                bail!("the cluster had no leaders or no sandbox provider after {READY_TIMEOUT_MS} ms");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first of the cluster's processes found to have exited, if any.
    fn exited(&mut self) -> Option<String> {
        let sandbox = self.sandbox.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if let Some(status) = sandbox {
            return Some(format!("the sandbox provider ({status})"));
        }
        self.nodes.iter_mut().find_map(|node| {
            let status = node.child.as_mut()?.try_wait().ok().flatten()?;
            Some(format!("node {} ({status})", node.id))
        })
    }

    /// Whether a process of the cluster logged that its address was in use.
    fn port_taken(&self) -> bool {
        let logs = self.nodes.iter().map(|n| n.log.clone()).chain([self.dir.path().join("sandbox.log")]);
        logs.filter_map(|log| std::fs::read_to_string(log).ok()).any(|text| text.contains("Address already in use"))
    }

    fn node(&self, id: u64) -> &NodeProc {
        self.nodes.iter().find(|n| n.id == id).expect("known node")
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProc {
        self.nodes.iter_mut().find(|n| n.id == id).expect("known node")
    }

    fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        assert!(node.child.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log)?;
        let child = Command::new(binary())
            .arg("node")
            .arg("--config")
            .arg(&node.config)
            .env("RUST_LOG", "info,openraft=warn,tantivy=warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting boxoffice node")?;
        node.child = Some(child);
        Ok(())
    }

    /// What the sandbox provider knows of a payment (`GET /v1/payment_intents/{id}`).
    pub async fn payment(&self, id: &str) -> anyhow::Result<Value> {
        let url = format!("{}/v1/payment_intents/{id}", self.sandbox_url);
        Ok(self.http.get(url).bearer_auth(PAYMENT_API_KEY).send().await?.json().await?)
    }

    /// The refunds of a payment at the sandbox provider.
    pub async fn refunds(&self, payment: &str) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/v1/refunds?paymentIntent={payment}", self.sandbox_url);
        let body: Value = self.http.get(url).bearer_auth(PAYMENT_API_KEY).send().await?.json().await?;
        Ok(body["data"].as_array().cloned().unwrap_or_default())
    }

    /// The base URL of a node's gateway.
    pub fn url(&self, id: u64) -> String {
        format!("http://{}", self.node(id).http_addr)
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect()
    }

    /// SIGKILLs a node: no chance to flush or say goodbye.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.node_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again on the same data and addresses.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.spawn(id)?;
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        while Instant::now() < deadline {
            if self.http.get(format!("{}/healthz", self.url(id))).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("node {id} did not come back within {READY_TIMEOUT_MS} ms")
    }

    /// `GET /admin/cluster` from a node.
    pub async fn status(&self, id: u64) -> anyhow::Result<Value> {
        let response = self.http.get(format!("{}/admin/cluster", self.url(id))).bearer_auth(ADMIN_TOKEN).send().await?;
        if !response.status().is_success() {
            bail!("cluster status from node {id}: {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// This node's replicas as it reports them.
    pub async fn replicas(&self, id: u64) -> anyhow::Result<Vec<Value>> {
        let status = self.status(id).await?;
        let nodes = status["nodes"].as_array().ok_or_else(|| anyhow!("no nodes in status"))?;
        let me = nodes.iter().find(|n| n["id"] == id).ok_or_else(|| anyhow!("node {id} missing from its status"))?;
        Ok(me["replicas"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until node `id` has applied as far as node `with` in every group, for at most
    /// `within`.
    pub async fn wait_caught_up(&self, id: u64, with: u64, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let mine = self.replicas(id).await?;
            let theirs = self.replicas(with).await?;
            let caught_up = mine.len() == theirs.len()
                && mine
                    .iter()
                    .zip(&theirs)
                    .all(|(a, b)| a["group"] == b["group"] && a["appliedIndex"] == b["appliedIndex"]);
            if caught_up {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("node {id} did not catch up with node {with} within {within:?}: {mine:?} against {theirs:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One node's replica of one group.
    pub async fn replica(&self, id: u64, group: u64) -> anyhow::Result<Value> {
        self.replicas(id)
            .await?
            .into_iter()
            .find(|r| r["group"] == group)
            .ok_or_else(|| anyhow!("node {id} has no replica of group {group}"))
    }

    /// Waits until every running node sees a leader, among the running nodes, for every group.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        while !self.ready().await {
            if Instant::now() > deadline {
                bail!("the cluster did not elect leaders within {READY_TIMEOUT_MS} ms");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Whether every running node sees a leader, among the running nodes, for every group.
    async fn ready(&self) -> bool {
        let running = self.running();
        for &id in &running {
            let Ok(replicas) = self.replicas(id).await else { return false };
            let led = |r: &Value| r["leader"].as_u64().is_some_and(|leader| running.contains(&leader));
            if replicas.is_empty() || !replicas.iter().all(led) {
                return false;
            }
        }
        true
    }

    /// The node that leads `group`, as a running node sees it.
    ///
    /// Only a node whose own replica says it leads is taken at its word: a node just restarted
    /// still names the leader of its saved vote (itself, if it led before it went down) until it
    /// hears from the current one.
    pub async fn leader_of(&self, group: u64) -> anyhow::Result<u64> {
        for id in self.running() {
            let Ok(replica) = self.replica(id, group).await else { continue };
            let Some(leader) = replica["leader"].as_u64() else { continue };
            if !self.running().contains(&leader) {
                continue;
            }
            let Ok(theirs) = self.replica(leader, group).await else { continue };
            if theirs["role"] == "leader" {
                return Ok(leader);
            }
        }
        bail!("no running node leads group {group}")
    }

    /// Makes a venue of `seats` seats in rows of 20, a performer, and an event there; returns
    /// the event's JSON as the admin API answered (its `id` among the fields; its group is
    /// `model::group_for_new_event`).
    pub async fn seed_event(&self, seats: usize) -> anyhow::Result<Value> {
        let rows: Vec<Value> = (0..seats.div_ceil(20))
            .map(|r| {
                let count = (seats - r * 20).min(20);
                let seats: Vec<Value> =
                    (0..count).map(|s| json!({"number": (s + 1).to_string(), "x": s as f32, "y": r as f32})).collect();
                json!({"name": format!("R{}", r + 1), "seats": seats})
            })
            .collect();
        let base = self.url(self.running()[0]);
        let venue = self
            .admin_post(
                &base,
                "/admin/venues",
                json!({"name": "Test Hall", "address": "1 Main St", "city": "Testville",
                "seatMap": {"sections": [{"name": "Floor", "priceCents": 5000, "rows": rows}]}}),
            )
            .await?;
        let performer = self
            .admin_post(
                &base,
                "/admin/performers",
                json!({"name": "The Testers", "description": "a band", "genre": "rock"}),
            )
            .await?;
        self.admin_post(
            &base,
            "/admin/events",
            json!({"name": "Test Night", "description": "a show", "category": "concert",
                   "startsAt": "2030-01-01T20:00:00Z", "venueId": venue["id"], "performerIds": [performer["id"]]}),
        )
        .await
    }

    /// An admin POST through node `id`, expecting 201.
    pub async fn admin(&self, id: u64, path: &str, body: Value) -> anyhow::Result<Value> {
        self.admin_post(&self.url(id), path, body).await
    }

    async fn admin_post(&self, base: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self.http.post(format!("{base}{path}")).bearer_auth(ADMIN_TOKEN).json(&body).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status != StatusCode::CREATED {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }

    /// Signs up and signs in a fan through node `id`.
    pub async fn fan(&self, id: u64, name: impl AsRef<str>) -> anyhow::Result<Fan> {
        let name = name.as_ref();
        let base = self.url(id);
        let email = format!("{name}@fans.test");
        let password = format!("{name}-password");
        let response = self
            .http
            .post(format!("{base}/users"))
            .json(&json!({"name": name, "email": email, "password": password}))
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            bail!("sign up {name}: {} {}", response.status(), response.text().await?);
        }
        let response = self
            .http
            .post(format!("{base}/sessions"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            bail!("sign in {name}: {} {}", response.status(), response.text().await?);
        }
        let session: Value = response.json().await?;
        let token = session["token"].as_str().ok_or_else(|| anyhow!("no token in {session}"))?.to_string();
        Ok(Fan { token, http: self.http.clone() })
    }

    /// The last lines of every node's log, for a failing test's output.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        let sandbox = std::fs::read_to_string(self.dir.path().join("sandbox.log")).unwrap_or_default();
        let _ = writeln!(out, "----- sandbox -----");
        for line in sandbox.lines().rev().take(lines).collect::<Vec<_>>().into_iter().rev() {
            let _ = writeln!(out, "{line}");
        }
        for node in &self.nodes {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(lines).collect();
            let _ = writeln!(out, "----- node {} ({}) -----", node.id, node.log.display());
            for line in tail.into_iter().rev() {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(400));
        }
        if std::env::var_os("BOXOFFICE_KEEP_LOGS").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temporary folder"));
            eprintln!("cluster files kept in {}", dir.keep().display());
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(mut sandbox) = self.sandbox.take() {
            let _ = sandbox.kill();
            let _ = sandbox.wait();
        }
    }
}

/// The config file of node `id`.
fn node_config(
    settings: &Settings,
    dir: &tempfile::TempDir,
    id: u64,
    raft_addr: &str,
    http_addr: &str,
    peers: &str,
    sandbox_addr: &str,
) -> String {
    format!(
        "id = {id}\ndata_dir = \"{data}\"\nraft_addr = \"{raft_addr}\"\nhttp_addr = \"{http_addr}\"\n\n{peers}\n\
         [raft]\ninventory_groups = {groups}\nheartbeat_interval_ms = 100\nelection_timeout_min_ms = 500\n\
         election_timeout_max_ms = 1000\n{extra}\n\n\
         [gateway]\nadmin_token = \"{ADMIN_TOKEN}\"\ncluster_secret = \"test-cluster-secret-0123456789\"\n\
         hold_ttl_ms = {ttl}\npayment_api_url = \"http://{sandbox_addr}\"\npayment_api_key = \"{PAYMENT_API_KEY}\"\n\
         payment_webhook_secret = \"{WEBHOOK_SECRET}\"\nreconcile_interval_ms = 1000\nreconcile_after_ms = 2000\n\
         {gateway_extra}\n",
        data = dir.path().join(format!("node{id}")).display(),
        groups = settings.inventory_groups,
        extra = settings.raft_extra,
        gateway_extra = settings.gateway_extra,
        ttl = settings.hold_ttl_ms,
    )
}

/// Starts the sandbox payment provider, sending webhooks to every node's gateway.
fn spawn_sandbox<'a>(
    dir: &tempfile::TempDir,
    addr: &str,
    gateways: impl Iterator<Item = &'a str>,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.path().join("sandbox.log"))?;
    let mut command = Command::new(binary());
    command.args(["sandbox", "--http", addr, "--api-key", PAYMENT_API_KEY, "--webhook-secret", WEBHOOK_SECRET]);
    command.args(["--delay-max-ms", "300", "--duplicate-per-mille", "200"]);
    for gateway in gateways {
        command.args(["--webhook", &format!("http://{gateway}/webhooks/payments")]);
    }
    command.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
    command.spawn().context("starting boxoffice sandbox")
}

/// An answer: status, content type and JSON body (or null).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    pub fn is_problem(&self) -> bool {
        self.content_type.starts_with("application/problem+json")
            && self.body["status"].as_u64() == Some(self.status.as_u16() as u64)
            && self.body["title"].is_string()
    }
}

pub async fn answer(response: reqwest::Response) -> anyhow::Result<Answer> {
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer { status, content_type, body })
}

/// One signed-in fan.
#[derive(Clone)]
pub struct Fan {
    pub token: String,
    pub http: reqwest::Client,
}

impl Fan {
    pub async fn hold(&self, base: &str, event: u64, tickets: &[u32]) -> anyhow::Result<Answer> {
        let url = format!("{base}/events/{event}/bookings");
        answer(self.http.post(url).bearer_auth(&self.token).json(&json!({"ticketIds": tickets})).send().await?).await
    }

    pub async fn booking(&self, base: &str, booking: &str) -> anyhow::Result<Answer> {
        answer(self.http.get(format!("{base}/bookings/{booking}")).bearer_auth(&self.token).send().await?).await
    }

    pub async fn release(&self, base: &str, booking: &str) -> anyhow::Result<Answer> {
        answer(self.http.delete(format!("{base}/bookings/{booking}")).bearer_auth(&self.token).send().await?).await
    }

    pub async fn pay(&self, base: &str, booking: &str, card: &str) -> anyhow::Result<Answer> {
        let url = format!("{base}/bookings/{booking}/payment");
        answer(self.http.post(url).bearer_auth(&self.token).json(&json!({"cardNumber": card})).send().await?).await
    }
}

/// The statuses of an event's tickets, by ticket id, as one node sees them.
pub async fn ticket_statuses(http: &reqwest::Client, base: &str, event: u64) -> anyhow::Result<Vec<String>> {
    let body: Value = http.get(format!("{base}/events/{event}/tickets")).send().await?.json().await?;
    let tickets = body["tickets"].as_array().ok_or_else(|| anyhow!("no tickets in {body}"))?;
    let mut statuses = vec![String::new(); tickets.len()];
    for ticket in tickets {
        let id = ticket["id"].as_u64().ok_or_else(|| anyhow!("ticket without id"))? as usize;
        statuses[id] = ticket["status"].as_str().unwrap_or_default().to_string();
    }
    Ok(statuses)
}

/// Ticket statuses as `base` sees them once `ready` holds of them (reads may trail the leader by
/// a moment), or the last ones read after 5 s.
pub async fn ticket_statuses_when(
    http: &reqwest::Client,
    base: &str,
    event: u64,
    ready: impl Fn(&[String]) -> bool,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let statuses = ticket_statuses(http, base, event).await?;
        if ready(&statuses) || Instant::now() > deadline {
            return Ok(statuses);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Fan {
    /// Starts paying without a card: the answer names the checkout page.
    pub async fn start_payment(&self, base: &str, booking: &str, key: Option<&str>) -> anyhow::Result<Answer> {
        let mut request =
            self.http.post(format!("{base}/bookings/{booking}/payment")).bearer_auth(&self.token).json(&json!({}));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        answer(request.send().await?).await
    }

    /// Waits (up to 15 s) until the booking reads `status`; returns it as last read.
    pub async fn booking_when(&self, base: &str, booking: &str, status: &str) -> anyhow::Result<Answer> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let read = self.booking(base, booking).await?;
            if read.body["status"] == status || Instant::now() > deadline {
                return Ok(read);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Pays on the provider's hosted checkout page, as a fan's browser would: a form post.
pub async fn checkout(http: &reqwest::Client, checkout_url: &str, card: &str) -> anyhow::Result<String> {
    let page = http.get(checkout_url).send().await?;
    if !page.status().is_success() {
        bail!("checkout page: {}", page.status());
    }
    let response = http
        .post(checkout_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("cardNumber={card}"))
        .send()
        .await?;
    Ok(response.text().await?)
}

/// A webhook body signed as the provider signs it, at `timestamp` (Unix seconds).
pub fn signed_webhook(secret: &str, timestamp: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

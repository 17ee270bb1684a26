//! A real cluster of `boxoffice node` processes on this machine, and the levers to break it.
//!
//! Every node gets its own config file, data folder and log file under the run's folder. With
//! proxies on, the node that dials each link (the lower id) is given the address of a
//! [`Proxy`] in front of the other node, so that every link between nodes can be cut, slowed or
//! made to lose messages. Processes are killed with SIGKILL, paused with SIGSTOP and resumed with
//! SIGCONT; clocks and disks are faulted through the nodes' test-only admin endpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use crate::proxy::{LinkFaults, Proxy};

pub const ADMIN_TOKEN: &str = "chaos-admin-token";
/// The sandbox payment provider's API key and webhook secret.
pub const PAYMENT_API_KEY: &str = "sk_test_chaos";
pub const WEBHOOK_SECRET: &str = "whsec_test_chaos";
/// How long a cluster may take to elect every group's leader.
const READY_TIMEOUT_MS: u64 = 60_000;
/// Timeout of one admin request.
const ADMIN_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub nodes: u64,
    pub inventory_groups: u32,
    pub hold_ttl_ms: u64,
    /// Put a fault-injecting proxy on every link between nodes.
    pub proxies: bool,
    /// Extra lines for the `[raft]` table.
    pub raft_extra: String,
    /// Extra lines for the `[gateway]` table.
    pub gateway_extra: String,
}

pub struct Node {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

pub struct Cluster {
    pub spec: ClusterSpec,
    pub nodes: Vec<Node>,
    /// The proxy of each link, by (lower id, higher id).
    links: BTreeMap<(u64, u64), Proxy>,
    pub http: reqwest::Client,
    /// The sandbox payment provider (never faulted: it stands for the outside world).
    pub sandbox_url: String,
    sandbox: Option<Child>,
}

/// Free loopback ports, each kept bound until the whole set is released: released one by one,
/// the kernel could hand the same port out twice (or to a proxy), and two addresses would clash.
#[derive(Default)]
struct FreePorts(Vec<std::net::TcpListener>);

impl FreePorts {
    fn addr(&mut self) -> anyhow::Result<String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        self.0.push(listener);
        Ok(addr)
    }
}

impl Cluster {
    /// Starts every node and waits until every group has a leader.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        if !spec.bin.exists() {
            bail!("{} is missing: build it with `cargo build --release --bin boxoffice`", spec.bin.display());
        }
        std::fs::create_dir_all(&spec.dir).with_context(|| format!("cannot create {}", spec.dir.display()))?;
        let mut ports = FreePorts::default();
        let mut nodes = Vec::new();
        for id in 1..=spec.nodes {
            let (config, log) = (spec.dir.join(format!("node{id}.toml")), spec.dir.join(format!("node{id}.log")));
            nodes.push(Node {
                id,
                raft_addr: ports.addr()?,
                http_addr: ports.addr()?,
                config,
                log,
                child: None,
                paused: false,
            });
        }
        let sandbox_addr = ports.addr()?;
        let mut links = BTreeMap::new();
        if spec.proxies {
            for a in &nodes {
                for b in nodes.iter().filter(|b| b.id > a.id) {
                    links.insert((a.id, b.id), Proxy::start(b.raft_addr.clone()).await?);
                }
            }
        }
        let http = reqwest::Client::builder().timeout(Duration::from_millis(ADMIN_TIMEOUT_MS)).build()?;
        // The processes bind them right after.
        drop(ports);
        let sandbox = spawn_sandbox(&spec, &sandbox_addr, nodes.iter().map(|n| n.http_addr.as_str()))?;
        let sandbox_url = format!("http://{sandbox_addr}");
        let mut cluster = Cluster { spec, nodes, links, http, sandbox_url, sandbox: Some(sandbox) };
        for id in 1..=cluster.spec.nodes {
            cluster.write_config(id)?;
            cluster.spawn(id)?;
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    fn write_config(&self, id: u64) -> anyhow::Result<()> {
        let spec = &self.spec;
        let mut peers = String::new();
        for node in &self.nodes {
            // The dialer of a link (the lower id) reaches the other end through its proxy.
            let raft_addr = match self.links.get(&(id, node.id)) {
                Some(proxy) => proxy.addr.clone(),
                None => node.raft_addr.clone(),
            };
            writeln!(
                peers,
                "[[nodes]]\nid = {}\nraft_addr = \"{raft_addr}\"\nhttp_addr = \"{}\"\n",
                node.id, node.http_addr
            )?;
        }
        let me = self.node(id);
        let text = format!(
            "id = {id}\ndata_dir = \"{data}\"\nraft_addr = \"{raft}\"\nhttp_addr = \"{http}\"\n\n{peers}\n\
             [raft]\ninventory_groups = {groups}\nheartbeat_interval_ms = 100\nelection_timeout_min_ms = 500\n\
             election_timeout_max_ms = 1000\nwrite_timeout_ms = 5000\n{extra}\n\n\
             [gateway]\nadmin_token = \"{ADMIN_TOKEN}\"\ncluster_secret = \"chaos-cluster-secret-0123456789\"\n\
             hold_ttl_ms = {ttl}\nfault_injection_enabled = true\npayment_api_url = \"{sandbox}\"\n\
             payment_api_key = \"{PAYMENT_API_KEY}\"\npayment_webhook_secret = \"{WEBHOOK_SECRET}\"\n\
             reconcile_interval_ms = 1000\nreconcile_after_ms = 3000\n{gateway_extra}\n",
            data = spec.dir.join(format!("node{id}")).display(),
            raft = me.raft_addr,
            http = me.http_addr,
            groups = spec.inventory_groups,
            extra = spec.raft_extra,
            ttl = spec.hold_ttl_ms,
            sandbox = self.sandbox_url,
            gateway_extra = spec.gateway_extra,
        );
        std::fs::write(&me.config, text)?;
        Ok(())
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("known node")
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).expect("known node")
    }

    fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let bin = self.spec.bin.clone();
        let node = self.node_mut(id);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log)?;
        let child = Command::new(bin)
            .args(["--log-format", "json", "node", "--config"])
            .arg(&node.config)
            .env("RUST_LOG", "info,openraft=warn,tantivy=warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting boxoffice node")?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    pub fn url(&self, id: u64) -> String {
        format!("http://{}", self.node(id).http_addr)
    }

    /// Nodes whose process runs and is not paused.
    pub fn serving(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.child.is_some() && !n.paused).map(|n| n.id).collect()
    }

    pub fn is_down(&self, id: u64) -> bool {
        self.node(id).child.is_none()
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.node(id).paused
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    pub fn pause(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(child) = &node.child {
            signal(child, libc::SIGSTOP);
            node.paused = true;
        }
    }

    pub fn resume(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(child) = &node.child {
            signal(child, libc::SIGCONT);
        }
        node.paused = false;
    }

    /// Starts a stopped node again on its data and addresses.
    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        if self.node(id).child.is_none() {
            self.spawn(id)?;
        }
        Ok(())
    }

    /// Nodes whose process ended on its own (e.g. stopped on a failed disk), now marked down.
    pub fn reap_exited(&mut self) -> Vec<u64> {
        let mut exited = Vec::new();
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    node.child = None;
                    node.paused = false;
                    exited.push(node.id);
                }
            }
        }
        exited
    }

    /// The proxy faults of the link between two nodes.
    pub fn link(&self, a: u64, b: u64) -> Option<&LinkFaults> {
        self.links.get(&(a.min(b), a.max(b))).map(|p| p.faults.as_ref())
    }

    pub fn links(&self) -> impl Iterator<Item = ((u64, u64), &LinkFaults)> {
        self.links.iter().map(|(k, p)| (*k, p.faults.as_ref()))
    }

    pub async fn admin_get(&self, id: u64, path: &str) -> anyhow::Result<Value> {
        let response = self.http.get(format!("{}{path}", self.url(id))).bearer_auth(ADMIN_TOKEN).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {path} on node {id}: {status} {}", response.text().await.unwrap_or_default());
        }
        Ok(response.json().await?)
    }

    pub async fn admin_send(&self, id: u64, method: reqwest::Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url(id));
        let response = self.http.request(method.clone(), url).bearer_auth(ADMIN_TOKEN).json(&body).send().await?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {path} on node {id}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sets faults on one node through its admin endpoint.
    pub async fn faults(&self, id: u64, faults: Value) -> anyhow::Result<()> {
        self.admin_send(id, reqwest::Method::PUT, "/admin/faults", faults).await.map(|_| ())
    }

    /// This node's replicas as it reports them.
    pub async fn replicas(&self, id: u64) -> anyhow::Result<Vec<Value>> {
        let status = self.admin_get(id, "/admin/cluster").await?;
        let nodes = status["nodes"].as_array().ok_or_else(|| anyhow!("no nodes in status"))?;
        let me = nodes.iter().find(|n| n["id"] == id).ok_or_else(|| anyhow!("node {id} missing from its status"))?;
        Ok(me["replicas"].as_array().cloned().unwrap_or_default())
    }

    /// The leader of `group`: a serving node named as leader that says so itself (a node just
    /// restarted names the leader of its saved vote, maybe itself, until it hears otherwise).
    pub async fn leader_of(&self, group: u64) -> Option<u64> {
        let serving = self.serving();
        for &id in &serving {
            let Some(leader) = self.replica_of(id, group).await.and_then(|r| r["leader"].as_u64()) else { continue };
            if !serving.contains(&leader) {
                continue;
            }
            if self.replica_of(leader, group).await.is_some_and(|r| r["role"] == "leader") {
                return Some(leader);
            }
        }
        None
    }

    async fn replica_of(&self, id: u64, group: u64) -> Option<Value> {
        self.replicas(id).await.ok()?.into_iter().find(|r| r["group"] == group)
    }

    /// Waits until every serving node sees a serving leader for every group.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        loop {
            let serving = self.serving();
            let mut ready = !serving.is_empty();
            for &id in &serving {
                ready &= match self.replicas(id).await {
                    Ok(replicas) => {
                        !replicas.is_empty()
                            && replicas.iter().all(|r| r["leader"].as_u64().is_some_and(|l| serving.contains(&l)))
                    }
                    Err(_) => false,
                };
            }
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the cluster did not elect leaders within {READY_TIMEOUT_MS} ms");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every replica of every group is at the same applied index.
    pub async fn wait_caught_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut applied: BTreeMap<u64, Vec<Option<u64>>> = BTreeMap::new();
            let mut answered = true;
            for id in self.serving() {
                match self.replicas(id).await {
                    Ok(replicas) => replicas.iter().for_each(|r| {
                        applied.entry(r["group"].as_u64().unwrap_or(0)).or_default().push(r["appliedIndex"].as_u64())
                    }),
                    Err(_) => answered = false,
                }
            }
            let agreed = applied.values().all(|indexes| indexes.windows(2).all(|w| w[0] == w[1]));
            if answered && agreed && applied.values().all(|i| i.len() == self.nodes.len()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("replicas did not catch up within {timeout:?}: {applied:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Signs a fan up and in through node `id`; returns (user id, token).
    pub async fn sign_up(&self, id: u64, name: &str) -> anyhow::Result<(u64, String)> {
        let base = self.url(id);
        let (email, password) = (format!("{name}@chaos.test"), format!("{name}-password"));
        let body = json!({"name": name, "email": email, "password": password});
        let response = self.http.post(format!("{base}/users")).json(&body).send().await?;
        if !response.status().is_success() {
            bail!("sign up {name}: {}", response.status());
        }
        let session: Value = self
            .http
            .post(format!("{base}/sessions"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?
            .json()
            .await?;
        let user = session["userId"].as_u64().ok_or_else(|| anyhow!("sign in {name}: {session}"))?;
        Ok((user, session["token"].as_str().unwrap_or_default().to_string()))
    }

    /// Stops every process (resuming paused ones first so that they can die).
    pub fn stop_all(&mut self) {
        if let Some(mut sandbox) = self.sandbox.take() {
            let _ = sandbox.kill();
            let _ = sandbox.wait();
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                signal(&child, libc::SIGCONT);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Starts the sandbox payment provider, sending webhooks to every node's gateway.
fn spawn_sandbox<'a>(spec: &ClusterSpec, addr: &str, gateways: impl Iterator<Item = &'a str>) -> anyhow::Result<Child> {
    let log = std::fs::File::create(spec.dir.join("sandbox.log"))?;
    let mut command = Command::new(&spec.bin);
    command.args(["sandbox", "--http", addr, "--api-key", PAYMENT_API_KEY, "--webhook-secret", WEBHOOK_SECRET]);
    command.args(["--delay-max-ms", "500", "--duplicate-per-mille", "100"]);
    for gateway in gateways {
        command.args(["--webhook", &format!("http://{gateway}/webhooks/payments")]);
    }
    command.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
    command.spawn().context("starting boxoffice sandbox")
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child process this runner spawned and has not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

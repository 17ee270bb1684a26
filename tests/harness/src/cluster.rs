//! A cluster of real `boxoffice node` processes on loopback and the sandbox payment provider,
//! and the levers an operator has on it: kill (SIGKILL), pause (SIGSTOP), resume (SIGCONT),
//! start again, and the admin API's view of its groups.
//!
//! Every node gets its own config file (`node<id>.toml`), data folder (`node<id>/`) and log file
//! (`node<id>.log`) in the cluster's folder, beside the provider's `sandbox.log`, and the
//! cluster's certificates in `certs/`: a CA made for this cluster alone and a certificate per
//! node (the nodes link over mutual TLS; see [`Cluster::certs_dir`]). The node that
//! dials a link (the lower id) is given the address its [`Links`] route to, so that something,
//! such as the chaos runner's fault-injecting proxies, can stand between the nodes.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use crate::config::{node_config, NodeConfig, Peer};
use crate::ports::FreePorts;
use crate::process::{self, log_tail, spawn_node, spawn_sandbox};
use crate::settings::Settings;

/// How long a cluster may take to elect every group's leader, and a node to come back.
const READY_TIMEOUT_MS: u64 = 60_000;
/// The folder of the cluster's CA and node certificates, in the cluster's folder.
const CERTS_DIR: &str = "certs";
/// Times a cluster is started on fresh ports when one of its ports was taken meanwhile.
const START_ATTEMPTS_MAX: u32 = 3;

/// What stands between the nodes: where a node dials another one's raft listener.
pub trait Links: Default {
    /// The address node `dialer` dials to reach node `target`, whose raft listener is at
    /// `raft_addr`. Called once for each pair, the lower id dialing, on every start attempt,
    /// while the cluster's ports are still held (so what binds here cannot take one of them).
    fn route(
        &mut self,
        dialer: u64,
        target: u64,
        raft_addr: &str,
    ) -> impl Future<Output = anyhow::Result<String>> + Send;
}

/// Nothing between the nodes: each dials the other's own address.
#[derive(Debug, Default)]
pub struct Direct;

impl Links for Direct {
    fn route(&mut self, _: u64, _: u64, raft_addr: &str) -> impl Future<Output = anyhow::Result<String>> + Send {
        std::future::ready(Ok(raft_addr.to_string()))
    }
}

/// One node of the cluster and its process.
pub struct Node {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// The cluster's folder: one given by the settings, or a temporary one.
struct Folder {
    path: PathBuf,
    temp: Option<tempfile::TempDir>,
}

impl Folder {
    /// The settings' folder, emptied of what a previous cluster left there, or a new
    /// temporary one.
    fn new(settings: &Settings) -> anyhow::Result<Folder> {
        let Some(path) = &settings.dir else {
            let temp = tempfile::tempdir()?;
            return Ok(Folder { path: temp.path().to_path_buf(), temp: Some(temp) });
        };
        std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
        for id in 1..=settings.nodes {
            let data = path.join(format!("node{id}"));
            if data.exists() {
                std::fs::remove_dir_all(&data).with_context(|| format!("cannot remove {}", data.display()))?;
            }
            for file in [format!("node{id}.toml"), format!("node{id}.log")] {
                let _ = std::fs::remove_file(path.join(file));
            }
        }
        let _ = std::fs::remove_file(path.join("sandbox.log"));
        Ok(Folder { path: path.clone(), temp: None })
    }
}

/// A running cluster; dropping it kills every process it started.
pub struct Cluster<L = Direct> {
    pub settings: Settings,
    pub nodes: Vec<Node>,
    /// An HTTP client with the settings' request timeout.
    pub http: reqwest::Client,
    /// The sandbox payment provider, a process of its own (`boxoffice sandbox`).
    pub sandbox_url: String,
    /// What stands between the nodes.
    pub links: L,
    dir: Folder,
    sandbox: Option<Child>,
}

impl Cluster {
    /// Starts a cluster whose nodes dial each other directly, and waits until every group has a
    /// leader; see [`Cluster::start_with`].
    pub async fn start(settings: Settings) -> anyhow::Result<Cluster> {
        Cluster::start_with(settings, Direct).await
    }
}

impl<L: Links> Cluster<L> {
    /// Starts a cluster whose nodes dial each other through `links`, and waits until every
    /// group has a leader and the sandbox provider answers.
    ///
    /// The cluster's ports are picked free and then released for its processes to bind, so
    /// another process or an outgoing connection can take one in between: a start whose
    /// process found its port taken is tried again on other ports, at most
    /// [`START_ATTEMPTS_MAX`] times. Any other failure to start fails at once, with the tails of
    /// the logs.
    pub async fn start_with(settings: Settings, mut links: L) -> anyhow::Result<Cluster<L>> {
        if !settings.bin.exists() {
            bail!("{} is missing: build it first with `cargo build --release --bin boxoffice`", settings.bin.display());
        }
        let mut attempt = 1;
        loop {
            let mut cluster = Cluster::launch(&settings, links).await?;
            match cluster.wait_started().await {
                Ok(()) => return Ok(cluster),
                Err(error) if attempt < START_ATTEMPTS_MAX && cluster.port_taken() => {
                    eprintln!("cluster start {attempt}: a port was taken meanwhile ({error}); trying other ports");
                    attempt += 1;
                    links = std::mem::take(&mut cluster.links);
                }
                Err(error) => bail!("{error}\n{}", cluster.log_tails(100)),
            }
        }
    }

    /// Picks ports, routes the links, writes the configs and spawns the sandbox provider and
    /// every node to start.
    async fn launch(settings: &Settings, mut links: L) -> anyhow::Result<Cluster<L>> {
        let dir = Folder::new(settings)?;
        let mut ports = FreePorts::default();
        let mut nodes = Vec::new();
        for id in 1..=settings.nodes {
            let (config, log) = (dir.path.join(format!("node{id}.toml")), dir.path.join(format!("node{id}.log")));
            let (raft_addr, http_addr) = (ports.addr()?, ports.addr()?);
            nodes.push(Node { id, raft_addr, http_addr, config, log, child: None, paused: false });
        }
        let sandbox_addr = ports.addr()?;
        let certs = dir.path.join(CERTS_DIR);
        pki::make_cluster(&certs, 1..=settings.nodes).context("making the cluster's certificates")?;
        let mut routes = BTreeMap::new();
        for a in &nodes {
            for b in nodes.iter().filter(|b| b.id > a.id) {
                routes.insert((a.id, b.id), links.route(a.id, b.id, &b.raft_addr).await?);
            }
        }
        // The processes bind them right after.
        drop(ports);
        let gateways = nodes.iter().map(|n| n.http_addr.as_str());
        let sandbox = spawn_sandbox(settings, &sandbox_addr, gateways, &dir.path.join("sandbox.log"))?;
        let sandbox_url = format!("http://{sandbox_addr}");
        for node in &nodes {
            let peers: Vec<Peer> = nodes
                .iter()
                .map(|peer| Peer {
                    id: peer.id,
                    raft_addr: routes.get(&(node.id, peer.id)).unwrap_or(&peer.raft_addr),
                    http_addr: &peer.http_addr,
                })
                .collect();
            let data_dir = dir.path.join(format!("node{}", node.id));
            if let Some(backup) = &settings.restore_from {
                restore(&settings.bin, backup, &data_dir)?;
            }
            let config = NodeConfig {
                id: node.id,
                data_dir: &data_dir,
                raft_addr: &node.raft_addr,
                http_addr: &node.http_addr,
                peers: &peers,
                sandbox_url: &sandbox_url,
                certs: &certs,
            };
            std::fs::write(&node.config, node_config(settings, &config))
                .with_context(|| format!("cannot write {}", node.config.display()))?;
        }
        let http = client(settings)?;
        let settings = settings.clone();
        let mut cluster = Cluster { settings, nodes, http, sandbox_url, links, dir, sandbox: Some(sandbox) };
        let to_start: Vec<u64> =
            cluster.nodes.iter().map(|n| n.id).filter(|id| !cluster.settings.not_started.contains(id)).collect();
        for id in to_start {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }
}

/// The cluster's HTTP client: it drops a connection idle for 2 s, before a node's header-read
/// timeout (5 s by default) closes it under a request; it trusts the cluster's certificate.
fn client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.request_timeout_ms))
        .pool_idle_timeout(Duration::from_secs(2));
    if let Some(tls) = &settings.tls {
        let pem = std::fs::read(&tls.cert_path).with_context(|| format!("cannot read {}", tls.cert_path.display()))?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    Ok(builder.build()?)
}

impl<L> Cluster<L> {
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
        let logs = self.nodes.iter().map(|n| n.log.clone()).chain([self.dir.path.join("sandbox.log")]);
        logs.filter_map(|log| std::fs::read_to_string(log).ok()).any(|text| text.contains("Address already in use"))
    }

    /// The cluster's folder: configs, data folders and logs.
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// The cluster's CA (`ca.crt`, `ca.key`) and every node's certificate and key
    /// (`node-<id>.crt`, `node-<id>.key`), PEM; see [`pki`].
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path.join(CERTS_DIR)
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("known node")
    }

    /// The resident memory of a node's process, in bytes (`None` if it is not running).
    pub fn rss_bytes(&self, id: u64) -> Option<u64> {
        self.proc_status_bytes(id, "VmRSS:")
    }

    /// The virtual memory of a node's process, in bytes (`None` if it is not running): what it
    /// allocated, touched or not.
    pub fn virtual_bytes(&self, id: u64) -> Option<u64> {
        self.proc_status_bytes(id, "VmSize:")
    }

    /// The CPU time a node's process has used so far, user and system, in milliseconds (`None`
    /// if it is not running): sampled before and after a load, what the node spent on it.
    pub fn cpu_ms(&self, id: u64) -> Option<u64> {
        let pid = self.node(id).child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces: count fields after its closing paren.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let per_s = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|&t| t > 0)?;
        Some(ticks * 1_000 / per_s)
    }

    /// A size from the process's `/proc/<pid>/status`, given in KiB there.
    fn proc_status_bytes(&self, id: u64, field: &str) -> Option<u64> {
        let pid = self.node(id).child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|line| line.starts_with(field))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// The path of node `id`'s log file.
    pub fn log_path(&self, id: u64) -> &Path {
        &self.node(id).log
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).expect("known node")
    }

    fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let child = spawn_node(&self.settings, &self.node(id).config, &self.node(id).log)?;
        let node = self.node_mut(id);
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// The base URL of a node's gateway.
    pub fn url(&self, id: u64) -> String {
        let scheme = if self.settings.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.node(id).http_addr)
    }

    /// The file descriptors a node's process has open (`None` if it is not running).
    pub fn open_fds(&self, id: u64) -> Option<usize> {
        let pid = self.node(id).child.as_ref()?.id();
        Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
    }

    /// Nodes whose process runs (paused or not).
    pub fn running(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect()
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

    /// SIGKILLs a node: no chance to flush or say goodbye.
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(child) = node.child.take() {
            process::kill(child);
        }
        node.paused = false;
    }

    /// SIGSTOPs a node.
    pub fn pause(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(child) = &node.child {
            process::signal(child, libc::SIGSTOP);
            node.paused = true;
        }
    }

    /// SIGCONTs a node.
    pub fn resume(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(child) = &node.child {
            process::signal(child, libc::SIGCONT);
        }
        node.paused = false;
    }

    /// Starts a stopped node again on its data and addresses, without waiting for it to serve;
    /// a node that runs is left alone.
    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        if self.is_down(id) {
            self.spawn(id)?;
        }
        Ok(())
    }

    /// Starts a killed (or never started) node again on the same data and addresses, and waits
    /// until its gateway answers.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        assert!(self.is_down(id), "node {id} is already running");
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

    /// An admin GET through node `id`, expecting success.
    pub async fn admin_get(&self, id: u64, path: &str) -> anyhow::Result<Value> {
        Ok(self.admin_success(id, path).await?.json().await?)
    }

    /// Node `id`'s `/metrics` text (behind the admin token).
    pub async fn metrics_text(&self, id: u64) -> anyhow::Result<String> {
        Ok(self.admin_success(id, "/metrics").await?.text().await?)
    }

    /// A GET with the admin token through node `id`, failing unless it succeeded.
    async fn admin_success(&self, id: u64, path: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.url(id));
        let response = self.http.get(url).bearer_auth(self.settings.secrets.admin_token).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {path} on node {id}: {status} {}", response.text().await.unwrap_or_default());
        }
        Ok(response)
    }

    /// `GET /admin/cluster` from a node.
    pub async fn status(&self, id: u64) -> anyhow::Result<Value> {
        self.admin_get(id, "/admin/cluster").await
    }

    /// This node's replicas as it reports them.
    pub async fn replicas(&self, id: u64) -> anyhow::Result<Vec<Value>> {
        let status = self.status(id).await?;
        let nodes = status["nodes"].as_array().ok_or_else(|| anyhow!("no nodes in status"))?;
        let me = nodes.iter().find(|n| n["id"] == id).ok_or_else(|| anyhow!("node {id} missing from its status"))?;
        Ok(me["replicas"].as_array().cloned().unwrap_or_default())
    }

    /// One node's replica of one group.
    pub async fn replica(&self, id: u64, group: u64) -> anyhow::Result<Value> {
        self.replicas(id)
            .await?
            .into_iter()
            .find(|r| r["group"] == group)
            .ok_or_else(|| anyhow!("node {id} has no replica of group {group}"))
    }

    /// Waits until every serving node sees a leader, among the serving nodes, for every group.
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

    /// Whether some node serves and every serving node sees a leader, among the serving nodes,
    /// for every group.
    async fn ready(&self) -> bool {
        let serving = self.serving();
        for &id in &serving {
            let Ok(replicas) = self.replicas(id).await else { return false };
            let led = |r: &Value| r["leader"].as_u64().is_some_and(|leader| serving.contains(&leader));
            if replicas.is_empty() || !replicas.iter().all(led) {
                return false;
            }
        }
        !serving.is_empty()
    }

    /// The node that leads `group`, as a serving node sees it.
    ///
    /// Only a node whose own replica says it leads is taken at its word: a node just restarted
    /// still names the leader of its saved vote (itself, if it led before it went down) until it
    /// hears from the current one.
    pub async fn leader_of(&self, group: u64) -> anyhow::Result<u64> {
        let serving = self.serving();
        for &id in &serving {
            let Ok(replica) = self.replica(id, group).await else { continue };
            let Some(leader) = replica["leader"].as_u64() else { continue };
            if !serving.contains(&leader) {
                continue;
            }
            let Ok(theirs) = self.replica(leader, group).await else { continue };
            if theirs["role"] == "leader" {
                return Ok(leader);
            }
        }
        bail!("no serving node leads group {group}")
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

    /// Waits until every node serves and every replica of every group is at the same applied
    /// index, for at most `within`.
    pub async fn wait_all_caught_up(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
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
                bail!("replicas did not catch up within {within:?}: {applied:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines of the sandbox provider's and every node's log, for a failure's output.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        log_tail(&mut out, "sandbox", &self.dir.path.join("sandbox.log"), lines);
        for node in &self.nodes {
            log_tail(&mut out, &format!("node {} ({})", node.id, node.log.display()), &node.log, lines);
        }
        out
    }
}

impl<L> Drop for Cluster<L> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(400));
        }
        if std::env::var_os("BOXOFFICE_KEEP_LOGS").is_some() {
            if let Some(temp) = self.dir.temp.take() {
                eprintln!("cluster files kept in {}", temp.keep().display());
            }
        }
        for node in &mut self.nodes {
            if let Some(child) = node.child.take() {
                process::kill(child);
            }
        }
        if let Some(sandbox) = self.sandbox.take() {
            process::kill(sandbox);
        }
    }
}

/// Puts `backup` into a node's data folder with `boxoffice ctl restore`, as an operator does.
fn restore(bin: &Path, backup: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let done = std::process::Command::new(bin)
        .args(["ctl", "restore", "--from"])
        .arg(backup)
        .arg("--data")
        .arg(data_dir)
        .output()
        .context("running boxoffice ctl restore")?;
    if !done.status.success() {
        bail!("ctl restore into {} failed: {}", data_dir.display(), String::from_utf8_lossy(&done.stderr));
    }
    Ok(())
}

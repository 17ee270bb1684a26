//! `boxoffice dev`: three nodes on loopback in one process, replicating over real sockets, with
//! demo data, the web page and the API on one port.
//!
//! The nodes link over mutual TLS like any cluster's: at every start, a new CA and a certificate
//! per node are made in the data folder's `certs/` (keys 0600).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use gateway::GatewayConfig;
use raft::{PeerConfig, RaftConfig};
use sandbox::SandboxConfig;

use crate::config::{NodeConfig, TlsSection};
use crate::server::{self, RunningNode};

/// Nodes of the dev cluster.
const DEV_NODES: u64 = 3;
/// How long the dev cluster may take to elect every group's leader.
const LEADERS_TIMEOUT_MS: u64 = 60_000;

pub struct DevOptions {
    pub http: String,
    pub data: PathBuf,
    pub hold_ttl_ms: u64,
    pub demo: bool,
}

/// Reads a secret kept in the data folder, or makes one, so that a restart keeps fans signed in.
/// Only its owner may read it (0600, also when an older run left it readable by others).
fn secret(data: &Path, name: &str) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = data.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
        return Ok(existing.trim().to_string());
    }
    let fresh = hex::encode(rand::random::<[u8; 24]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(fresh.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(fresh)
}

pub async fn run(options: DevOptions, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.data)
        .with_context(|| format!("cannot create data folder {}", options.data.display()))?;
    let data = options.data.canonicalize()?;
    let mut listeners = Vec::new();
    for id in 1..=DEV_NODES {
        let http_addr = if id == 1 { options.http.clone() } else { "127.0.0.1:0".to_string() };
        listeners.push((server::bind("127.0.0.1:0").await?, server::bind(&http_addr).await?));
    }
    let certs = data.join("certs");
    pki::make_cluster(&certs, 1..=DEV_NODES)
        .with_context(|| format!("cannot make certificates in {}", certs.display()))?;
    let payments = server::bind("127.0.0.1:0").await?;
    let payments_url = format!("http://{}", payments.local_addr()?);
    let gateway = GatewayConfig {
        admin_token: secret(&data, "admin-token")?,
        cluster_secret: secret(&data, "cluster-secret")?,
        hold_ttl_ms: options.hold_ttl_ms,
        payment_api_url: payments_url.clone(),
        payment_api_key: secret(&data, "payment-api-key")?,
        payment_webhook_secret: secret(&data, "payment-webhook-secret")?,
        ..GatewayConfig::default()
    };
    // The sandbox payment provider: its own server, as a real provider would be, sending its
    // webhooks to every node's gateway.
    let sandbox = SandboxConfig {
        api_key: gateway.payment_api_key.clone(),
        webhook_secret: gateway.payment_webhook_secret.clone(),
        webhook_urls: listeners
            .iter()
            .map(|(_, http)| format!("http://{}/webhooks/payments", http.local_addr().expect("bound")))
            .collect(),
        public_url: payments_url.clone(),
        ..SandboxConfig::default()
    };
    let (stop_sandbox, mut sandbox_stopped) = tokio::sync::watch::channel(false);
    let sandbox_task = tokio::spawn(sandbox::serve(payments, sandbox, async move {
        let _ = sandbox_stopped.wait_for(|stop| *stop).await;
    }));
    let peers: Vec<PeerConfig> = listeners
        .iter()
        .zip(1..)
        .map(|((raft, http), id)| PeerConfig {
            id,
            raft_addr: raft.local_addr().expect("bound").to_string(),
            http_addr: http.local_addr().expect("bound").to_string(),
        })
        .collect();
    // The nodes start together: a fresh node waits for its links to the others before it
    // starts the first elections, which it would wait for in vain if they started after it.
    let mut starting = Vec::new();
    for ((raft, http), peer) in listeners.into_iter().zip(&peers) {
        let config = NodeConfig {
            id: peer.id,
            data_dir: data.join(format!("node{}", peer.id)),
            raft_addr: peer.raft_addr.clone(),
            http_addr: peer.http_addr.clone(),
            nodes: peers.clone(),
            raft: RaftConfig::default(),
            gateway: gateway.clone(),
            room: Default::default(),
            tls: Some(tls_section(&certs, peer.id)),
        };
        config.check()?;
        starting.push(tokio::spawn(async move { server::start(&config, raft, http).await }));
    }
    let mut nodes = Vec::new();
    for start in starting {
        nodes.push(start.await.context("a dev node's start panicked")??);
    }
    // A signal while leaders are elected or demo data loads stops the cluster just the same.
    let result = tokio::select! {
        result = serve(&options, &data, &gateway, &nodes) => result,
        _ = shutdown => {
            tracing::info!("stopping the dev cluster");
            Ok(())
        }
    };
    for node in nodes {
        node.stop().await;
    }
    let _ = stop_sandbox.send(true);
    let _ = sandbox_task.await;
    result
}

fn tls_section(certs: &Path, id: u64) -> TlsSection {
    let files = pki::node_files(certs, id);
    TlsSection { ca_cert_path: files.ca_cert, cert_path: files.cert, key_path: files.key }
}

async fn serve(
    options: &DevOptions,
    data: &Path,
    gateway: &GatewayConfig,
    nodes: &[RunningNode],
) -> anyhow::Result<()> {
    wait_for_leaders(nodes).await?;
    let base = format!("http://{}", nodes[0].http_addr);
    if options.demo {
        let summary =
            demo::load(&base, &gateway.admin_token, nodes[0].host.now_ms()).await.context("loading demo data")?;
        // The marker tells a later run whether an earlier load was cut short (the loader skips
        // a cluster that has any event, so it would not finish it).
        let marker = data.join("demo-loaded");
        if !summary.skipped {
            std::fs::write(&marker, format!("{summary:?}\n"))
                .with_context(|| format!("cannot write {}", marker.display()))?;
        } else if !marker.exists() {
            tracing::warn!(
                data = %data.display(),
                "the demo catalog was only partly loaded by an interrupted run; remove the data folder to load it whole"
            );
        }
        tracing::info!(?summary, "demo data ready");
        demo::open_room(&base, &gateway.admin_token).await.context("opening the demo's waiting room")?;
    }
    println!();
    println!("  boxoffice dev is up: 3 nodes replicating over loopback");
    println!("  open        {base}/");
    println!("  api         {base}/events");
    println!("  admin token {}   (Authorization: Bearer …, e.g. {base}/admin/cluster)", gateway.admin_token);
    println!("  data        {}   (run again with the same --data to keep it)", data.display());
    println!("  payments    {}   (the sandbox provider: test card 4242 4242 4242 4242)", gateway.payment_api_url);
    if options.demo {
        println!(
            "  room        {base}/waiting-room/{}   (event {} sells through the waiting room)",
            demo::ROOM_EVENT,
            demo::ROOM_EVENT
        );
    }
    for node in nodes {
        println!("  room quic   {}   certificate sha-256 {}", node.room_addr, node.room_cert_sha256);
    }
    println!("  stop        Ctrl-C");
    println!();
    std::future::pending().await
}

async fn wait_for_leaders(nodes: &[RunningNode]) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    while !nodes.iter().all(|n| n.every_group_has_a_leader()) {
        if started.elapsed() > Duration::from_millis(LEADERS_TIMEOUT_MS) {
            anyhow::bail!("the groups did not elect leaders within {LEADERS_TIMEOUT_MS} ms");
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            let led = nodes[0].host.local_status().iter().filter(|r| r.leader.is_some()).count();
            tracing::info!(groups_with_leader = led, "waiting for leaders");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "every group has a leader");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::secret;

    #[test]
    fn secrets_are_kept_readable_by_their_owner_only() {
        let data = std::env::temp_dir().join(format!("boxoffice-dev-secret-{}", std::process::id()));
        std::fs::create_dir_all(&data).unwrap();
        let made = secret(&data, "admin-token").unwrap();
        let mode = |name: &str| std::fs::metadata(data.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("admin-token"), 0o600);
        assert_eq!(secret(&data, "admin-token").unwrap(), made, "a restart keeps the secret");
        std::fs::write(data.join("old"), "kept-from-an-older-run").unwrap();
        std::fs::set_permissions(data.join("old"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(secret(&data, "old").unwrap(), "kept-from-an-older-run");
        assert_eq!(mode("old"), 0o600, "an older, readable file is made private");
        std::fs::remove_dir_all(&data).unwrap();
    }
}

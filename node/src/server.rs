//! One node: its storage, raft host and gateway, started together and stopped in order.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use raft::Host;
use search::{Indexer, SearchShard};
use storage::Storage;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::HostCluster;
use crate::config::NodeConfig;
use crate::search_feed::{HostReplicas, ShardSearcher, StorageStream};

pub struct RunningNode {
    pub id: u64,
    pub host: Arc<Host>,
    pub http_addr: SocketAddr,
    /// The waiting room's QUIC endpoint (UDP) and its certificate's SHA-256.
    pub room_addr: SocketAddr,
    pub room_cert_sha256: String,
    /// Stops the room's endpoint and clockwork.
    stop_room: watch::Sender<bool>,
    room: Option<room::Room<HostCluster>>,
    /// Tells the gateway to stop taking requests and finish the ones in flight.
    stop_gateway: watch::Sender<bool>,
    gateway: JoinHandle<std::io::Result<()>>,
    /// Raft's own runtime: consensus work never waits behind HTTP work on a worker's queue.
    raft_runtime: Option<tokio::runtime::Runtime>,
    /// Stops the search indexer, which runs on a thread of its own (tantivy's work is blocking).
    stop_indexer: watch::Sender<bool>,
    indexer: Option<std::thread::JoinHandle<()>>,
}

/// Starts a node on listeners the caller has bound (so that tests and `dev` can use port 0).
pub async fn start(config: &NodeConfig, raft: TcpListener, http: TcpListener) -> anyhow::Result<RunningNode> {
    // Before anything is opened or started: a node with unusable TLS files says so and stops.
    let host_config = config.host()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data folder {}", config.data_dir.display()))?;
    let db_path = config.data_dir.join("db");
    let storage =
        Storage::open(&db_path).with_context(|| format!("cannot open the database in {}", db_path.display()))?;
    let raft_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("raft")
        .enable_all()
        .build()
        .context("cannot start raft's runtime")?;
    let (listener, disk, checkpoints) = (raft.into_std()?, storage.faults(), storage.checkpointer());
    let (changes, change_stream) =
        (storage.changes(), storage.take_changes().expect("the change stream is taken once"));
    let search_dir = config.data_dir.join("search");
    let shard =
        Arc::new(SearchShard::open(&search_dir).with_context(|| format!("cannot open {}", search_dir.display()))?);
    let host = raft_runtime
        .spawn(async move {
            let listener = TcpListener::from_std(listener)?;
            Host::start(host_config, listener, &storage).await.context("cannot start raft")
        })
        .await??;
    host.set_searcher(Arc::new(ShardSearcher(shard.clone())));
    let (stop_indexer, stopped) = watch::channel(false);
    let seat_changes = changes.clone();
    let indexer = Indexer { shard: shard.clone(), replicas: HostReplicas { host: host.clone(), changes } };
    let indexer = std::thread::Builder::new().name("search-indexer".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(indexer.run(StorageStream(change_stream), stopped)),
            Err(error) => tracing::error!(%error, "the search indexer could not start"),
        }
    })?;
    let http_addr = http.local_addr()?;
    let cluster = Arc::new(HostCluster { host: host.clone(), disk, shard, changes: seat_changes, checkpoints });
    let (stop_room, room_stopped) = watch::channel(false);
    let room = start_room(config, cluster.clone(), room_stopped).await?;
    let fallback = room::http::routes(room.node.clone()).merge(room::page::routes());
    let door = gateway::FrontDoor::new(&config.gateway).context("[gateway] tls settings")?;
    let mut gateway_config = config.gateway.clone();
    if gateway_config.public_origins.is_empty() {
        gateway_config.public_origins = own_origins(http_addr, door.is_tls());
    }
    let mut fallback_api = room::http::api();
    fallback_api.merge(room::page::api());
    let router = gateway::router_with(cluster, gateway_config, None, fallback, Some(fallback_api));
    let (stop_gateway, mut stopped) = watch::channel(false);
    let gateway = tokio::spawn(gateway::serve(http, router, door, async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    let room_addr = room.endpoint.local_addr;
    tracing::info!(node = config.id, %http_addr, raft_addr = %config.raft_addr, %room_addr, "node started");
    Ok(RunningNode {
        id: config.id,
        host,
        http_addr,
        room_addr,
        room_cert_sha256: room.endpoint.cert_sha256.clone(),
        stop_room,
        room: Some(room),
        stop_gateway,
        gateway,
        raft_runtime: Some(raft_runtime),
        stop_indexer,
        indexer: Some(indexer),
    })
}

impl RunningNode {
    /// Stops the gateway (letting requests in flight finish), then raft.
    pub async fn stop(mut self) {
        let _ = self.stop_gateway.send(true);
        match self.gateway.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(node = self.id, %error, "gateway stopped with an error"),
            Err(error) => tracing::warn!(node = self.id, %error, "gateway task failed"),
        }
        let _ = self.stop_room.send(true);
        if let Some(room) = self.room.take() {
            room.stopped().await;
        }
        let _ = self.stop_indexer.send(true);
        if let Some(indexer) = self.indexer.take() {
            let _ = tokio::task::spawn_blocking(move || indexer.join()).await;
        }
        self.host.shutdown().await;
        if let Some(runtime) = self.raft_runtime.take() {
            runtime.shutdown_background();
        }
        tracing::info!(node = self.id, "node stopped");
    }

    /// Resolves when one of the node's groups stopped on a fatal error.
    pub async fn fatal(&self) -> String {
        self.host.fatal().await
    }

    /// Whether every group this node hosts knows its leader.
    pub fn every_group_has_a_leader(&self) -> bool {
        self.host.local_status().iter().all(|r| r.leader.is_some())
    }
}

/// Starts the waiting room's endpoint (a self-signed certificate unless the config names one).
async fn start_room(
    config: &NodeConfig,
    cluster: Arc<HostCluster>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<room::Room<HostCluster>> {
    let section = &config.room;
    let cert = match (&section.cert_path, &section.key_path) {
        (Some(cert), Some(key)) => room::RoomCert::from_pem_files(cert, key)?,
        _ => {
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            names.extend(section.advertise_host.clone());
            room::RoomCert::self_signed(&names, section.cert_days)?
        }
    };
    let addr = config.room_addr();
    let addr = addr.parse().with_context(|| format!("[room] addr `{addr}` is not an address like 10.0.0.1:4433"))?;
    let endpoint = room::EndpointConfig {
        addr,
        connections_max: section.connections_max,
        socket_buffer_bytes: section.socket_buffer_bytes,
        ..Default::default()
    };
    let mut room_config = room::RoomConfig::new(config.id, config.gateway.cluster_secret.clone());
    room_config.joins_per_address_per_min = section.joins_per_address_per_min;
    room_config.joins_per_fan_per_min = section.joins_per_fan_per_min;
    room_config.park_wait_ms = section.park_wait_ms;
    let room = room::start(cluster, room_config, endpoint, cert, section.advertise_host.clone(), stopped).await?;
    Ok(room)
}

/// Binds a listener, saying which address could not be bound.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (in use? pick another address)"))
}

/// The origins a gateway bound at `addr` is reached at when its configuration names none: its
/// address, and `localhost` for a loopback one (as a developer types it).
fn own_origins(addr: std::net::SocketAddr, tls: bool) -> Vec<String> {
    let scheme = if tls { "https" } else { "http" };
    let mut origins = vec![format!("{scheme}://{addr}")];
    if addr.ip().is_loopback() {
        origins.push(format!("{scheme}://localhost:{}", addr.port()));
    }
    origins
}

#[cfg(test)]
mod origin_tests {
    use super::own_origins;

    #[test]
    fn a_loopback_gateway_is_also_reached_at_localhost() {
        let own = |addr: &str, tls| own_origins(addr.parse().unwrap(), tls);
        assert_eq!(own("127.0.0.1:8080", false), ["http://127.0.0.1:8080", "http://localhost:8080"]);
        assert_eq!(own("10.0.0.1:443", true), ["https://10.0.0.1:443"]);
    }
}

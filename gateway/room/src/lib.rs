//! The waiting room: the front door of a hot on-sale. Fans join over QUIC (native or
//! WebTransport) or HTTP, get a signed ticket that fixes their place, are told their position
//! and wait as the line moves, and finally an admission token that lets them hold seats.
//!
//! The event's raft group keeps only the room's settings, its watermark and counters and one
//! report per node (see `model::room`); the places of waiting fans live on the nodes that hold
//! them, and on the fans' tickets. The room reaches the group through [`gateway::Cluster`], like
//! the gateway.
//!
//! Layout:
//! - [`wire`]: the protocol's messages and framing;
//! - [`session`]: the seam between transports and logic;
//! - [`mailbox`]: a session's small bounded queue towards its fan;
//! - [`keys`]: tickets, challenges and proof of work, admission tokens;
//! - [`line`]: one event's line on this node, its reports and positions;
//! - [`clock`]: how far this node's clock is from the others';
//! - [`limits`]: the per-address join limit;
//! - [`node`]: the room on one node, answering what fans send;
//! - [`driver`]: reports, ticks, admissions, pushes, parking, once a second or faster;
//! - [`page`]: the waiting room's web page.
//! - [`certs`]: the endpoint's certificate (self-signed ECDSA P-256, or PEM files) and its pin;
//! - [`endpoint`]: the QUIC endpoint, one UDP port for both ALPNs, its limits and stats;
//! - [`native`]: the native protocol, one session per stream (WebTransport reuses its stream loop);
//! - [`webtransport`]: WebTransport sessions on `/room`, one session per stream;
//! - [`http`]: the HTTP fallback, hello and join as JSON and the wait as server-sent events.

pub mod clock;
pub mod driver;
pub mod keys;
pub mod limits;
pub mod line;
pub mod mailbox;
pub mod node;
pub mod page;
pub mod session;
pub mod wire;

pub mod certs;
pub mod endpoint;
pub mod http;
pub mod native;
pub mod webtransport;

use std::sync::Arc;

use gateway::Cluster;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use certs::RoomCert;
pub use endpoint::{EndpointConfig, RoomEndpoint};
pub use node::{RoomConfig, RoomNode};

/// A node's room, running: its logic, its QUIC endpoint and its clockwork.
pub struct Room<C> {
    pub node: Arc<RoomNode<C>>,
    pub endpoint: RoomEndpoint,
    driver: JoinHandle<()>,
}

/// Starts the room of a node: binds the QUIC endpoint, advertises `advertise_host` (or the bound
/// address's host) with the bound port, and starts the clockwork. The HTTP fallback's routes
/// come from [`http::routes`] over [`Room::node`]; the node merges them into its gateway.
pub async fn start<C: Cluster>(
    cluster: Arc<C>,
    config: RoomConfig,
    endpoint: EndpointConfig,
    cert: RoomCert,
    advertise_host: Option<String>,
    shutdown: watch::Receiver<bool>,
) -> Result<Room<C>, endpoint::EndpointError> {
    let node = Arc::new(RoomNode::new(cluster, config));
    let endpoint = endpoint::start(endpoint, cert, node.clone(), shutdown.clone()).await?;
    let host = advertise_host.unwrap_or_else(|| endpoint.local_addr.ip().to_string());
    node.set_advertised(format!("{host}:{}", endpoint.local_addr.port()), endpoint.cert_sha256.clone());
    let driver = tokio::spawn(driver::run(node.clone(), shutdown));
    Ok(Room { node, endpoint, driver })
}

impl<C: Cluster> Room<C> {
    /// Waits for the clockwork and the endpoint to stop (after the shutdown signal).
    pub async fn stopped(self) {
        let _ = self.driver.await;
        self.endpoint.stopped().await;
    }
}

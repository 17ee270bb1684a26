//! The room's QUIC endpoint: one UDP port, one `quinn::Endpoint`, serving both the native protocol
//! (ALPN `boxoffice-room/1`, [`native`]) and WebTransport (ALPN `h3`, [`webtransport`]); each
//! accepted connection goes to the module of the ALPN it negotiated.
//!
//! A waiting fan sends a few hundred bytes a minute, so the endpoint is tuned for many idle
//! connections rather than throughput: small flow-control windows (what quinn may buffer per
//! stream and per connection), one datagram per send and no path MTU probes (a connection keeps
//! its largest send buffer for good), keep-alives every 10 s (NAT bindings and the idle
//! timeout), and a hard cap on connections beyond which new ones are refused during the handshake.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::certs::{self, RoomCert};
use crate::native::{self, Gauge, GaugeHold};
use crate::session::Sessions;
use crate::webtransport;
use crate::wire;

/// What a stream may have in flight towards the node: a fan's frames are tiny.
pub const STREAM_RECEIVE_WINDOW_BYTES: u32 = 16 * 1024;
/// What a connection may have in flight towards the node, all streams together.
pub const RECEIVE_WINDOW_BYTES: u32 = 64 * 1024;
/// What the node may have unacknowledged towards a connection.
pub const SEND_WINDOW_BYTES: u64 = 64 * 1024;
/// Unidirectional streams a client may open: HTTP/3 needs three (control, QPACK encoder and
/// decoder), and a few spare keep browsers that open more (e.g. for GREASE) working. Chromium
/// refuses a server that allows fewer at the handshake, so native fans get them too (some 200
/// bytes each).
pub const UNI_STREAMS_MAX: u32 = 8;
/// Datagrams are not used by the room, but browsers require WebTransport servers to accept them.
pub const DATAGRAM_BUFFER_BYTES: usize = 4 * 1024;
/// Keep-alive period: NAT bindings outlive it, and the idle timeout never fires on a live fan.
pub const KEEP_ALIVE_INTERVAL_MS: u64 = 10_000;
/// The application close code of a shutdown (HTTP/3's `H3_NO_ERROR`, also used natively).
pub const CLOSE_SHUTDOWN: u32 = 0x100;
/// The application close code for a connection that negotiated no ALPN the room speaks.
pub const CLOSE_UNKNOWN_ALPN: u32 = 0x101;
/// How long a shutdown waits for connections to acknowledge the close.
pub const SHUTDOWN_IDLE_WAIT_MS: u64 = 2_000;

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The UDP address to bind (port 0 picks one; see [`RoomEndpoint::local_addr`]).
    pub addr: SocketAddr,
    /// Connections open (including handshakes) beyond which new ones are refused.
    pub connections_max: usize,
    /// Bidirectional streams a connection may have open at once: fans multiplexed on it. A
    /// connection starts with [`native::STREAMS_INITIAL`] and gets more as it uses them.
    pub streams_per_connection_max: u32,
    /// A connection silent this long is dropped (keep-alives every 10 s keep live ones).
    pub idle_timeout_ms: u64,
    /// The UDP socket's receive buffer. Every fan's heartbeats, acknowledgements and handshakes
    /// arrive at this one socket, in bursts after each push; a datagram that finds the buffer
    /// full is dropped and resent a timeout later. The kernel caps it at `net.core.rmem_max` (a
    /// warning says so). The send buffer stays the kernel's: when it fills, quinn waits, which
    /// paces a push to many fans to what the path takes instead of dropping at the far end.
    pub socket_buffer_bytes: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            addr: SocketAddr::from(([0, 0, 0, 0], 4433)),
            connections_max: 200_000,
            streams_per_connection_max: 1_024,
            idle_timeout_ms: 30_000,
            socket_buffer_bytes: 8 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("bad tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the tls configuration cannot serve quic: {0}")]
    Quic(String),
    #[error("bad idle timeout of {idle_timeout_ms} ms")]
    IdleTimeout { idle_timeout_ms: u64 },
    #[error("cannot bind udp {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the room endpoint must start inside a tokio runtime")]
    NoRuntime,
}

/// What is open on the endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointStats {
    pub connections_open: usize,
    /// Fans' sessions over native streams and WebTransport streams together.
    pub sessions_open: usize,
}

/// A running endpoint; it stops when the shutdown signal given to [`start`] flips.
#[derive(Debug)]
pub struct RoomEndpoint {
    /// Where it listens (the real port when the configuration asked for port 0).
    pub local_addr: SocketAddr,
    /// SHA-256 of its certificate, hex: what clients pin.
    pub cert_sha256: String,
    connections_open: Gauge,
    sessions_open: Gauge,
    accepting: JoinHandle<()>,
}

impl RoomEndpoint {
    pub fn stats(&self) -> EndpointStats {
        EndpointStats { connections_open: self.connections_open.get(), sessions_open: self.sessions_open.get() }
    }

    /// Waits until the endpoint has stopped (after the shutdown signal: connections closed and
    /// acknowledged, or [`SHUTDOWN_IDLE_WAIT_MS`] passed).
    pub async fn stopped(self) {
        if let Err(error) = self.accepting.await {
            tracing::error!(%error, "the room endpoint's accept loop failed");
        }
    }
}

/// Binds the endpoint and starts accepting fans for `sessions`, until `shutdown` becomes true (or
/// its sender is dropped).
pub async fn start<S: Sessions>(
    config: EndpointConfig,
    cert: RoomCert,
    sessions: Arc<S>,
    shutdown: watch::Receiver<bool>,
) -> Result<RoomEndpoint, EndpointError> {
    let server_config = server_config(&config, cert.clone())?;
    let socket = bind_udp(config.addr, config.socket_buffer_bytes)
        .map_err(|source| EndpointError::Bind { addr: config.addr, source })?;
    let runtime = quinn::default_runtime().ok_or(EndpointError::NoRuntime)?;
    let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server_config), socket, runtime)
        .map_err(|source| EndpointError::Bind { addr: config.addr, source })?;
    let local_addr = endpoint.local_addr().map_err(|source| EndpointError::Bind { addr: config.addr, source })?;
    let (connections_open, sessions_open) = (Gauge::default(), Gauge::default());
    let accept = Accept {
        endpoint,
        sessions,
        connections_max: config.connections_max,
        streams_max: config.streams_per_connection_max,
        connections_open: connections_open.clone(),
        sessions_open: sessions_open.clone(),
    };
    let accepting = tokio::spawn(accept.run(shutdown));
    tracing::info!(%local_addr, cert_sha256 = %cert.sha256_hex, "room endpoint listening");
    Ok(RoomEndpoint { local_addr, cert_sha256: cert.sha256_hex, connections_open, sessions_open, accepting })
}

/// The endpoint's UDP socket, bound, with a receive buffer of `buffer_bytes` or as much as the
/// kernel allows.
fn bind_udp(addr: SocketAddr, buffer_bytes: usize) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Asking more than the kernel's maximum is not an error: it gives its maximum.
    socket.set_recv_buffer_size(buffer_bytes)?;
    socket.bind(&addr.into())?;
    // Linux reports twice what it grants (the other half is its bookkeeping).
    let receive = socket.recv_buffer_size()? / 2;
    if receive < buffer_bytes {
        tracing::warn!(
            asked_bytes = buffer_bytes,
            receive_bytes = receive,
            "the kernel capped the room's udp receive buffer: raise net.core.rmem_max, or fans' datagrams are \
             dropped in bursts"
        );
    }
    Ok(socket.into())
}

/// The TLS and transport configuration: both ALPNs, TLS 1.3 with ring, small windows.
fn server_config(config: &EndpointConfig, cert: RoomCert) -> Result<quinn::ServerConfig, EndpointError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(certs::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(cert.chain, cert.key)?;
    tls.alpn_protocols = vec![wire::ALPN_NATIVE.to_vec(), wire::ALPN_H3.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| EndpointError::Quic(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    server.transport_config(Arc::new(transport_config(config)?));
    Ok(server)
}

fn transport_config(config: &EndpointConfig) -> Result<TransportConfig, EndpointError> {
    let idle_timeout = IdleTimeout::try_from(Duration::from_millis(config.idle_timeout_ms))
        .map_err(|_| EndpointError::IdleTimeout { idle_timeout_ms: config.idle_timeout_ms })?;
    let mut transport = TransportConfig::default();
    transport
        .stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW_BYTES))
        .receive_window(VarInt::from_u32(RECEIVE_WINDOW_BYTES))
        .send_window(SEND_WINDOW_BYTES)
        .max_concurrent_bidi_streams(VarInt::from_u32(native::STREAMS_INITIAL.min(config.streams_per_connection_max)))
        .max_concurrent_uni_streams(VarInt::from_u32(UNI_STREAMS_MAX))
        .datagram_receive_buffer_size(Some(DATAGRAM_BUFFER_BYTES))
        .datagram_send_buffer_size(DATAGRAM_BUFFER_BYTES)
        .keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_INTERVAL_MS)))
        .max_idle_timeout(Some(idle_timeout))
        // One datagram per send: a connection keeps the buffer of its largest send for good (1.2 KB
        // here, several datagrams' worth with segmentation offload) for every waiting fan.
        .enable_segmentation_offload(false)
        // No path MTU probes: a probe larger than the initial 1,200 bytes would double that
        // buffer; a fan's frames are a few hundred bytes.
        .mtu_discovery_config(None);
    Ok(transport)
}

/// The accept loop's state.
struct Accept<S> {
    endpoint: quinn::Endpoint,
    sessions: Arc<S>,
    connections_max: usize,
    streams_max: u32,
    connections_open: Gauge,
    sessions_open: Gauge,
}

impl<S: Sessions> Accept<S> {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let incoming = tokio::select! {
                incoming = self.endpoint.accept() => incoming,
                _ = shutdown.wait_for(|down| *down) => None,
            };
            let Some(incoming) = incoming else { break };
            if self.connections_open.get() >= self.connections_max {
                tracing::debug!(peer = %incoming.remote_address(), "room endpoint full: connection refused");
                incoming.refuse();
                continue;
            }
            let hold = self.connections_open.hold();
            let sessions = self.sessions.clone();
            tokio::spawn(serve_connection(incoming, sessions, self.sessions_open.clone(), self.streams_max, hold));
        }
        tracing::info!(connections_open = self.connections_open.get(), "room endpoint shutting down");
        self.endpoint.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutting down");
        let idle = tokio::time::timeout(Duration::from_millis(SHUTDOWN_IDLE_WAIT_MS), self.endpoint.wait_idle());
        if idle.await.is_err() {
            tracing::info!("room endpoint closed without every peer's acknowledgement");
        }
    }
}

/// Completes the handshake and hands the connection to its protocol; `_hold` counts it open.
async fn serve_connection<S: Sessions>(
    incoming: quinn::Incoming,
    sessions: Arc<S>,
    sessions_open: Gauge,
    streams_max: u32,
    _hold: GaugeHold,
) {
    let conn = match Box::pin(incoming.into_future()).await {
        Ok(conn) => conn,
        Err(error) => return tracing::debug!(%error, "room handshake failed"),
    };
    // Each protocol's future boxed: this task lives as long as the connection, and holding the
    // larger of the two inline would cost every native fan the WebTransport handshake's state.
    match alpn(&conn).as_deref() {
        Some(wire::ALPN_NATIVE) => Box::pin(native::serve_connection(conn, sessions, sessions_open, streams_max)).await,
        Some(wire::ALPN_H3) => {
            Box::pin(webtransport::serve_connection(conn, sessions, sessions_open, streams_max)).await
        }
        other => {
            tracing::debug!(alpn = ?other.map(String::from_utf8_lossy), "connection without a room alpn");
            conn.close(VarInt::from_u32(CLOSE_UNKNOWN_ALPN), b"unknown alpn");
        }
    }
}

/// The ALPN the handshake negotiated.
fn alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?.downcast::<HandshakeData>().ok()?.protocol
}

//! One connection per pair of nodes, carrying every group's traffic both ways.
//!
//! The node with the lower id dials, the higher one accepts; either side then sends requests on
//! the connection and answers the other's. A dropped connection is dialed again with backoff.
//! Requests wait for their response with a deadline; a request whose connection is gone or whose
//! deadline passed fails with [`LinkError`], and the caller (raft, or the write router) retries.
//!
//! Every connection is mutual TLS ([`crate::tls`]): the dialer accepts only a server whose
//! certificate from the cluster's CA names the node it dialed, and the acceptor serves a
//! connection only once the client's certificate from that CA names the node its hello claims
//! to be, a node of this cluster with a lower id. Nothing else replaces a peer's live link.
//! Until then a connection is a stranger's and gets little: a deadline for the handshake and
//! hello, a first frame of at most `hello_bytes_max`, one of a few handshake slots, and no
//! answer at all when refused. Established links are closed when idle (keepalive frames keep a
//! quiet one alive) and queue a bounded number of frames and bytes. A refused connection is
//! logged once per address per [`REFUSAL_LOG_PERIOD_MS`], with how many were not logged.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use model::NodeId;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsStream;

use crate::config::RaftConfig;
use crate::tls::{self, LinkTls};
use crate::wire::{self, FrameError, Kind, Request, Response};

/// What serves the requests peers send to this node.
pub type Handler = Arc<dyn Fn(NodeId, Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// A link's connection, either way.
type Stream = TlsStream<TcpStream>;

/// Buffer of a connection's reader: frames that arrive together are read with one call.
const READ_BUFFER_BYTES: usize = 64 << 10;
/// Backoff between failed dials: doubles from the first to the last value.
const DIAL_BACKOFF_MIN_MS: u64 = 50;
const DIAL_BACKOFF_MAX_MS: u64 = 1_000;
/// A refused connection is logged once per address per period; the others are counted.
pub const REFUSAL_LOG_PERIOD_MS: u64 = 10_000;
/// Addresses whose refusals are counted at once; past it, old ones are forgotten first and then
/// every further address shares one count.
const REFUSAL_LOG_ADDRESSES_MAX: usize = 1_024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    #[error("no connection to node {0}")]
    NotConnected(NodeId),
    #[error("connection to node {0} was lost before the answer came")]
    Lost(NodeId),
    #[error("node {0} did not answer within {1:?}")]
    Timeout(NodeId, Duration),
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    #[error("message could not be encoded: {0}")]
    Encode(String),
}

/// The limits a link works under (see [`RaftConfig`] for each).
#[derive(Debug, Clone)]
pub struct LinkLimits {
    pub frame_bytes_max: u32,
    pub queue_frames_max: usize,
    pub queue_bytes_max: usize,
    pub hello_bytes_max: u32,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive_interval: Duration,
    pub handshakes_max: usize,
    pub connections_max: usize,
}

impl From<&RaftConfig> for LinkLimits {
    fn from(config: &RaftConfig) -> LinkLimits {
        LinkLimits {
            frame_bytes_max: config.frame_bytes_max,
            queue_frames_max: config.link_queue_frames_max,
            queue_bytes_max: config.link_queue_bytes_max,
            hello_bytes_max: config.hello_bytes_max,
            handshake_timeout: Duration::from_millis(config.link_handshake_timeout_ms),
            idle_timeout: Duration::from_millis(config.link_idle_timeout_ms),
            keepalive_interval: Duration::from_millis(config.link_keepalive_interval_ms),
            handshakes_max: config.link_handshakes_max,
            connections_max: config.link_connections_max,
        }
    }
}

/// A frame in a connection's outbox, holding its share of the outbox's byte budget.
type Queued = (Vec<u8>, OwnedSemaphorePermit);

/// One live connection to a peer.
struct Conn {
    peer: NodeId,
    /// Frames to write, in order. Bounded in frames and in bytes: a slow peer makes senders
    /// wait instead of growing memory without limit.
    outbox: mpsc::Sender<Queued>,
    /// Bytes the outbox may still take.
    queue_bytes: Arc<Semaphore>,
    queue_bytes_max: u32,
    /// Requests sent on this connection, waiting for their response.
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    next_id: AtomicU64,
    /// Told when a newer connection with the same peer took this one's place: this one closes,
    /// so that the peer, if it still used it, notices and dials again.
    replaced: tokio::sync::Notify,
}

impl Conn {
    /// Queues a frame, waiting for room. A frame over the whole budget waits for all of it.
    async fn send(&self, frame: Vec<u8>) -> Result<(), LinkError> {
        let bytes = u32::try_from(frame.len()).unwrap_or(u32::MAX).min(self.queue_bytes_max);
        let permit =
            self.queue_bytes.clone().acquire_many_owned(bytes).await.map_err(|_| LinkError::Lost(self.peer))?;
        self.outbox.send((frame, permit)).await.map_err(|_| LinkError::Lost(self.peer))
    }
}

/// Refused connections, logged once per address per period.
struct RefusalLog {
    period: Duration,
    /// When each address was last logged, and its refusals since that were not.
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl RefusalLog {
    fn new(period: Duration) -> RefusalLog {
        RefusalLog { period, seen: Mutex::new(HashMap::new()) }
    }

    /// Whether a refusal from `from` is logged now, and if so how many since the last one were
    /// not.
    fn should_log(&self, from: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().expect("refusal log lock");
        if seen.len() >= REFUSAL_LOG_ADDRESSES_MAX && !seen.contains_key(from) {
            seen.retain(|_, (at, _)| now.duration_since(*at) < self.period);
        }
        let key = if seen.len() >= REFUSAL_LOG_ADDRESSES_MAX && !seen.contains_key(from) { "other" } else { from };
        match seen.get_mut(key) {
            Some((at, suppressed)) if now.duration_since(*at) < self.period => {
                *suppressed += 1;
                None
            }
            Some(entry) => Some(std::mem::replace(entry, (now, 0)).1),
            None => {
                seen.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }

    fn note(&self, from: &str, reason: &dyn Display) {
        if let Some(suppressed) = self.should_log(from, Instant::now()) {
            let period_ms = self.period.as_millis() as u64;
            tracing::warn!(%from, %reason, suppressed, period_ms, "raft link refused");
        }
    }
}

/// The links of one node to all its peers.
pub struct Peers {
    me: NodeId,
    cluster: String,
    addrs: BTreeMap<NodeId, String>,
    /// The current connection to each peer, if any.
    conns: RwLock<HashMap<NodeId, Arc<Conn>>>,
    handler: OnceLock<Handler>,
    limits: LinkLimits,
    tls: LinkTls,
    /// Accepted connections not yet authenticated, and accepted connections open.
    handshakes: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    refusals: RefusalLog,
    /// Flips to true once, when the node shuts down; every link task watches it.
    shutdown: watch::Receiver<bool>,
}

impl Peers {
    /// `addrs` holds every other node's raft address.
    pub fn new(
        me: NodeId,
        cluster: String,
        addrs: BTreeMap<NodeId, String>,
        limits: LinkLimits,
        tls: LinkTls,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Peers> {
        assert!(!addrs.contains_key(&me), "a node is not its own peer");
        Arc::new(Peers {
            me,
            cluster,
            addrs,
            conns: RwLock::new(HashMap::new()),
            handler: OnceLock::new(),
            handshakes: Arc::new(Semaphore::new(limits.handshakes_max)),
            connections: Arc::new(Semaphore::new(limits.connections_max)),
            limits,
            tls,
            refusals: RefusalLog::new(Duration::from_millis(REFUSAL_LOG_PERIOD_MS)),
            shutdown,
        })
    }

    pub fn peer_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.addrs.keys().copied()
    }

    /// Starts accepting on `listener` and dialing every peer with a higher id.
    pub fn start(self: &Arc<Self>, listener: TcpListener, handler: Handler) {
        assert!(self.handler.set(handler).is_ok(), "peers start once");
        tokio::spawn(self.clone().accept_loop(listener));
        for (&peer, addr) in &self.addrs {
            if peer > self.me {
                tokio::spawn(self.clone().dial_loop(peer, addr.clone()));
            }
        }
    }

    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.conns.read().expect("conns lock").contains_key(&peer)
    }

    /// Sends `request` to `peer` and waits up to `timeout` for its response.
    pub async fn call(&self, peer: NodeId, request: Request, timeout: Duration) -> Result<Response, LinkError> {
        if !self.addrs.contains_key(&peer) {
            return Err(LinkError::UnknownNode(peer));
        }
        let conn = self.conns.read().expect("conns lock").get(&peer).cloned();
        let conn = conn.ok_or(LinkError::NotConnected(peer))?;
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode(id, Kind::Request, &request).map_err(|e| LinkError::Encode(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().expect("pending lock").insert(id, tx);
        let exchange = async {
            conn.send(frame).await?;
            rx.await.map_err(|_| LinkError::Lost(peer))
        };
        let result = tokio::time::timeout(timeout, exchange).await;
        conn.pending.lock().expect("pending lock").remove(&id);
        result.map_err(|_| LinkError::Timeout(peer, timeout))?
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let mut shutdown = self.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match accepted {
                Ok((stream, from)) => {
                    let from = from.ip().to_string();
                    // Over either cap the connection is closed at once, before any TLS work.
                    let Ok(connection) = self.connections.clone().try_acquire_owned() else {
                        self.refusals.note(&from, &"too many connections");
                        continue;
                    };
                    let Ok(handshake) = self.handshakes.clone().try_acquire_owned() else {
                        self.refusals.note(&from, &"too many handshakes");
                        continue;
                    };
                    tokio::spawn(self.clone().accept_one(stream, from, connection, handshake));
                }
                Err(error) => {
                    tracing::warn!(%error, "raft accept failed");
                    tokio::time::sleep(Duration::from_millis(DIAL_BACKOFF_MIN_MS)).await;
                }
            }
        }
    }

    /// Authenticates the dialer and serves the connection, holding a connection slot
    /// throughout and a handshake slot until it is authenticated.
    async fn accept_one(
        self: Arc<Self>,
        stream: TcpStream,
        from: String,
        _connection: OwnedSemaphorePermit,
        handshake: OwnedSemaphorePermit,
    ) {
        let _ = stream.set_nodelay(true);
        let authenticated = tokio::time::timeout(self.limits.handshake_timeout, self.authenticate(stream)).await;
        drop(handshake);
        match authenticated {
            Ok(Ok((peer, stream))) => self.serve(peer, stream).await,
            // A client gone before it was judged (a cut link, a port scan) was refused nothing.
            Ok(Err(FrameError::Io(error))) if is_gone(&error) => {
                tracing::debug!(%from, %error, "raft connection closed before its handshake ended")
            }
            Ok(Err(error)) => self.refusals.note(&from, &error),
            Err(_) => self.refusals.note(&from, &"handshake and hello timed out"),
        }
    }

    /// The TLS handshake, then the hello: the peer it names must be one this node accepts from,
    /// and the one its certificate names. Only then is the hello answered.
    async fn authenticate(&self, stream: TcpStream) -> Result<(NodeId, Stream), FrameError> {
        opens_tls(&stream).await?;
        let mut stream = self.tls.acceptor().accept(stream).await?;
        let frame = wire::read_frame(&mut stream, self.limits.hello_bytes_max, self.limits.handshake_timeout)
            .await?
            .ok_or_else(|| FrameError::Malformed("closed before hello".into()))?;
        let Request::Hello { from, cluster } = frame.decode::<Request>()? else {
            return Err(FrameError::Malformed("first frame is not a hello".into()));
        };
        if cluster != self.cluster || !self.addrs.contains_key(&from) || from >= self.me {
            return Err(FrameError::Refused(format!("hello from unexpected node {from} of cluster {cluster}")));
        }
        let leaf = stream.get_ref().1.peer_certificates().and_then(|certs| certs.first());
        if !leaf.is_some_and(|cert| tls::names_node(cert, from)) {
            return Err(FrameError::Refused(format!(
                "hello from node {from} with a certificate that does not name it"
            )));
        }
        let reply = wire::encode(frame.id, Kind::Response, &Response::Hello { from: self.me })?;
        stream.write_all(&reply).await?;
        stream.flush().await?;
        Ok((from, TlsStream::Server(stream)))
    }

    async fn dial_loop(self: Arc<Self>, peer: NodeId, addr: String) {
        let mut backoff_ms = DIAL_BACKOFF_MIN_MS;
        let mut shutdown = self.shutdown.clone();
        while !*shutdown.borrow() {
            let dial = tokio::time::timeout(self.limits.handshake_timeout, self.dial(peer, &addr));
            match dial.await {
                Ok(Ok(stream)) => {
                    backoff_ms = DIAL_BACKOFF_MIN_MS;
                    self.clone().serve(peer, stream).await;
                }
                // A peer whose certificate does not check out is refused as loudly as a
                // stranger; a peer that is down or slow is only retried.
                Ok(Err(error)) if is_refusal(&error) => self.refusals.note(&addr, &error),
                Ok(Err(error)) => tracing::debug!(peer, %addr, %error, "raft dial failed"),
                Err(_) => tracing::debug!(peer, %addr, "raft dial timed out"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            backoff_ms = (backoff_ms * 2).min(DIAL_BACKOFF_MAX_MS);
        }
    }

    /// Connects, checks that the server's certificate names `peer`, and says hello.
    async fn dial(&self, peer: NodeId, addr: &str) -> Result<Stream, FrameError> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut stream = self.tls.connector().connect(tls::server_name(peer), tcp).await?;
        let hello = Request::Hello { from: self.me, cluster: self.cluster.clone() };
        stream.write_all(&wire::encode(0, Kind::Request, &hello)?).await?;
        stream.flush().await?;
        let frame = wire::read_frame(&mut stream, self.limits.hello_bytes_max, self.limits.handshake_timeout)
            .await?
            .ok_or_else(|| FrameError::Refused("closed during hello".into()))?;
        match frame.decode::<Response>()? {
            Response::Hello { from } if from == peer => Ok(TlsStream::Client(stream)),
            other => Err(FrameError::Malformed(format!("unexpected hello answer {other:?}"))),
        }
    }

    /// Serves a connection until it closes: one task writes queued frames, this one reads.
    async fn serve(self: Arc<Self>, peer: NodeId, stream: Stream) {
        let (reader, writer) = tokio::io::split(stream);
        let (outbox, inbox) = mpsc::channel(self.limits.queue_frames_max);
        let queue_bytes_max = u32::try_from(self.limits.queue_bytes_max).unwrap_or(u32::MAX);
        let conn = Arc::new(Conn {
            peer,
            outbox,
            queue_bytes: Arc::new(Semaphore::new(queue_bytes_max as usize)),
            queue_bytes_max,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            replaced: tokio::sync::Notify::new(),
        });
        let replaced = self.conns.write().expect("conns lock").insert(peer, conn.clone());
        if let Some(old) = replaced {
            old.replaced.notify_one();
            tracing::info!(peer, "raft connection replaced");
        } else {
            tracing::info!(peer, "raft connection up");
        }
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            result = write_frames(writer, inbox, self.limits.keepalive_interval) => if let Err(error) = result {
                tracing::info!(peer, %error, "raft connection write failed");
            },
            result = self.read_frames(reader, &conn) => if let Err(error) = result {
                tracing::info!(peer, %error, "raft connection read failed");
            },
            _ = conn.replaced.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
        let mut conns = self.conns.write().expect("conns lock");
        if conns.get(&peer).is_some_and(|current| Arc::ptr_eq(current, &conn)) {
            conns.remove(&peer);
            tracing::info!(peer = conn.peer, "raft connection down");
        }
        // Dropping the waiting senders fails their calls at once instead of at their deadline.
        conn.pending.lock().expect("pending lock").clear();
    }

    async fn read_frames(&self, reader: ReadHalf<Stream>, conn: &Arc<Conn>) -> Result<(), FrameError> {
        let handler = self.handler.get().expect("handler is set before connections exist").clone();
        // Frames that arrive together are read with one call, not two per frame.
        let mut reader = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, reader);
        let (bytes_max, idle) = (self.limits.frame_bytes_max, self.limits.idle_timeout);
        while let Some(frame) = wire::read_frame(&mut reader, bytes_max, idle).await? {
            match frame.kind {
                Kind::Keepalive => {}
                Kind::Response => {
                    let waiter = conn.pending.lock().expect("pending lock").remove(&frame.id);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(frame.decode()?);
                    }
                }
                Kind::Request => {
                    let request: Request = frame.decode()?;
                    let (handler, conn, id) = (handler.clone(), conn.clone(), frame.id);
                    tokio::spawn(async move {
                        let response = handler(conn.peer, request).await;
                        match wire::encode(id, Kind::Response, &response) {
                            Ok(bytes) => {
                                let _ = conn.send(bytes).await;
                            }
                            Err(error) => tracing::error!(peer = conn.peer, %error, "response could not be encoded"),
                        }
                    });
                }
            }
        }
        Ok(())
    }
}

/// Waits for the first bytes of a TLS handshake record and fails on anything else, so that a
/// client that does not speak TLS is closed without a byte (rustls would answer an alert).
async fn opens_tls(stream: &TcpStream) -> Result<(), FrameError> {
    /// A record header: content type 22 (handshake), version 3.x, a length.
    const RECORD_HEADER_BYTES: usize = 5;
    /// How often a connection whose first bytes came in pieces is looked at again.
    const PEEK_AGAIN_MS: u64 = 5;
    let mut head = [0u8; RECORD_HEADER_BYTES];
    loop {
        let n = stream.peek(&mut head).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a word").into());
        }
        if head[0] != 22 || (n > 1 && head[1] != 3) {
            return Err(FrameError::Refused("not a TLS handshake".into()));
        }
        if n == RECORD_HEADER_BYTES {
            return Ok(());
        }
        // Peek returns at once while bytes wait, so a client that sends its first record in
        // pieces is looked at on a clock; the handshake deadline bounds the wait.
        tokio::time::sleep(Duration::from_millis(PEEK_AGAIN_MS)).await;
    }
}

/// Whether the other end went away (rather than said something refused).
fn is_gone(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(error.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// Whether a failed dial was the peer's or this node's refusal (a certificate or hello that did
/// not check out) rather than a peer down or slow.
fn is_refusal(error: &FrameError) -> bool {
    match error {
        FrameError::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        FrameError::Refused(_) | FrameError::Malformed(_) | FrameError::TooLarge { .. } => true,
        FrameError::Idle(_) => false,
    }
}

/// Writes queued frames, flushing whenever the queue runs dry so that frames that arrive
/// together leave together, and a keepalive frame after `keepalive` of silence.
///
/// Before a flush the writer yields once, so that the tasks already runnable queue their frames
/// first. Why: apply answers a whole entry's forwarded commands at once, waking one task per
/// answer; the first answer's frame wakes this writer, which tokio runs next (the woken task
/// takes the worker's LIFO slot), so without the yield every answer left in a send of its own
/// (measured: about one `sendto` per forwarded hold on the leader).
async fn write_frames<W: AsyncWrite + Unpin>(
    writer: W,
    mut inbox: mpsc::Receiver<Queued>,
    keepalive: Duration,
) -> std::io::Result<()> {
    let mut writer = BufWriter::with_capacity(64 << 10, writer);
    loop {
        let (frame, permit) = match tokio::time::timeout(keepalive, inbox.recv()).await {
            Ok(Some(queued)) => queued,
            Ok(None) => return Ok(()),
            Err(_) => {
                writer.write_all(&wire::keepalive()).await?;
                writer.flush().await?;
                continue;
            }
        };
        writer.write_all(&frame).await?;
        drop(permit);
        tokio::task::yield_now().await;
        while let Ok((frame, permit)) = inbox.try_recv() {
            writer.write_all(&frame).await?;
            drop(permit);
        }
        writer.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::consensus::testing;

    fn limits() -> LinkLimits {
        LinkLimits { frame_bytes_max: 1 << 20, queue_frames_max: 64, ..LinkLimits::from(&RaftConfig::default()) }
    }

    /// A CA and the DER of the certificates it issues.
    struct Ca(pki::Authority);

    impl Ca {
        fn new() -> Ca {
            Ca(pki::Authority::generate().unwrap())
        }

        fn root(&self) -> CertificateDer<'static> {
            CertificateDer::from_pem_slice(self.0.cert_pem().as_bytes()).unwrap()
        }

        /// Node `id`'s certificate and key.
        fn node(&self, id: NodeId) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
            let pem = self.0.issue(id).unwrap();
            let cert = CertificateDer::from_pem_slice(pem.cert.as_bytes()).unwrap();
            (vec![cert], PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap())
        }

        fn tls(&self, id: NodeId) -> LinkTls {
            let (chain, key) = self.node(id);
            LinkTls::new(id, vec![self.root()], chain, key).unwrap()
        }

        /// A TLS client that presents node `id`'s certificate and trusts `server_ca`.
        fn client(&self, id: NodeId, server_ca: &Ca) -> tokio_rustls::TlsConnector {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(server_ca.root()).unwrap();
            let (chain, key) = self.node(id);
            let config = rustls::ClientConfig::builder_with_provider(tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        }
    }

    /// Answers a status request with no replicas, after `delay`.
    fn answering(delay: Duration) -> Handler {
        Arc::new(move |_, request| {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                match request {
                    Request::Status => Response::Status(vec![]),
                    _ => Response::Refused(crate::wire::Refusal::NoSuchGroup),
                }
            })
        })
    }

    /// Two nodes, 1 and 2, linked over loopback; node 2 answers after `delay`.
    async fn pair(ca: &Ca, delay: Duration) -> (Arc<Peers>, Arc<Peers>, String, watch::Sender<bool>) {
        let (one_listener, two_listener) =
            (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
        let (one_addr, two_addr) =
            (one_listener.local_addr().unwrap().to_string(), two_listener.local_addr().unwrap().to_string());
        let (stop, stopped) = watch::channel(false);
        let peers = |addr| BTreeMap::from([addr]);
        let one = Peers::new(1, "test".into(), peers((2, two_addr.clone())), limits(), ca.tls(1), stopped.clone());
        let two = Peers::new(2, "test".into(), peers((1, one_addr)), limits(), ca.tls(2), stopped);
        one.start(one_listener, answering(Duration::ZERO));
        two.start(two_listener, answering(delay));
        (one, two, two_addr, stop)
    }

    async fn until(what: impl Fn() -> bool) {
        testing::until(Duration::from_secs(3), what).await
    }

    /// Reads until the end: what a refused connection gets (nothing; an error counts as nothing).
    async fn rest<R: tokio::io::AsyncRead + Unpin>(mut stream: R) -> Vec<u8> {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the connection is closed, not left open");
        answer
    }

    fn hello(from: NodeId, cluster: &str) -> Vec<u8> {
        wire::encode(0, Kind::Request, &Request::Hello { from, cluster: cluster.into() }).unwrap()
    }

    #[tokio::test]
    async fn the_lower_id_dials_and_either_side_calls_the_other() {
        let ca = Ca::new();
        let (one, two, _, _stop) = pair(&ca, Duration::ZERO).await;
        until(|| one.is_connected(2) && two.is_connected(1)).await;
        let timeout = Duration::from_secs(1);
        assert!(matches!(one.call(2, Request::Status, timeout).await, Ok(Response::Status(r)) if r.is_empty()));
        assert!(matches!(two.call(1, Request::Status, timeout).await, Ok(Response::Status(_))));
        assert!(matches!(one.call(7, Request::Status, timeout).await, Err(LinkError::UnknownNode(7))));
    }

    #[tokio::test]
    async fn a_call_the_peer_does_not_answer_in_time_fails_with_a_timeout() {
        let ca = Ca::new();
        let (one, _two, _, _stop) = pair(&ca, Duration::from_secs(5)).await;
        until(|| one.is_connected(2)).await;
        let answer = one.call(2, Request::Status, Duration::from_millis(50)).await;
        assert!(matches!(answer, Err(LinkError::Timeout(2, _))), "{answer:?}");
    }

    /// A plain TCP hello, from the very node the link is with, gets nothing: no TLS, no link.
    #[tokio::test]
    async fn a_hello_without_tls_gets_nothing() {
        let ca = Ca::new();
        let (_one, two, two_addr, _stop) = pair(&ca, Duration::ZERO).await;
        until(|| two.is_connected(1)).await;
        let mut stranger = TcpStream::connect(&two_addr).await.unwrap();
        stranger.write_all(&hello(1, "test")).await.unwrap();
        assert!(rest(stranger).await.is_empty());
        assert!(two.is_connected(1), "the real peer's link stays");
    }

    /// A client whose certificate another CA issued fails the handshake.
    #[tokio::test]
    async fn a_certificate_from_another_ca_fails_the_handshake() {
        let (ca, other) = (Ca::new(), Ca::new());
        let (_one, two, two_addr, _stop) = pair(&ca, Duration::ZERO).await;
        until(|| two.is_connected(1)).await;
        let tcp = TcpStream::connect(&two_addr).await.unwrap();
        let connected = other.client(1, &ca).connect(tls::server_name(2), tcp).await;
        if let Ok(mut stream) = connected {
            // TLS 1.3: the server judges the client's certificate after the client is done.
            let _ = stream.write_all(&hello(1, "test")).await;
            let _ = stream.flush().await;
            assert!(rest(stream).await.is_empty(), "no hello answer");
        }
        assert!(two.is_connected(1), "the real peer's link stays");
    }

    /// Certificates from the cluster's CA, but the hello does not match: node 3's certificate
    /// (not a node of this pair) claiming to be node 1, node 1's claiming to be node 3, or the
    /// right certificate of another cluster's hello. None is answered or replaces the link.
    #[tokio::test]
    async fn a_hello_its_certificate_does_not_name_gets_nothing() {
        let ca = Ca::new();
        let (_one, two, two_addr, _stop) = pair(&ca, Duration::ZERO).await;
        until(|| two.is_connected(1)).await;
        for (cert_of, from, cluster) in [(3, 1, "test"), (1, 3, "test"), (1, 1, "another"), (3, 3, "test")] {
            let tcp = TcpStream::connect(&two_addr).await.unwrap();
            let mut stream = ca.client(cert_of, &ca).connect(tls::server_name(2), tcp).await.unwrap();
            stream.write_all(&hello(from, cluster)).await.unwrap();
            stream.flush().await.unwrap();
            let answer = rest(stream).await;
            assert!(answer.is_empty(), "{cert_of}'s certificate saying {from} of {cluster}: {answer:?}");
        }
        assert!(two.is_connected(1), "the real peer's link stays");
        let answer = _one.call(2, Request::Status, Duration::from_secs(1)).await;
        assert!(matches!(answer, Ok(Response::Status(_))), "and carries calls: {answer:?}");
    }

    /// A dialer checks that the server it reached is the node it dialed: node 1 told that node
    /// 3's listener is node 2's never links.
    #[tokio::test]
    async fn a_server_that_is_not_the_dialed_node_is_refused() {
        let ca = Ca::new();
        let (three_listener, one_listener) =
            (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
        let three_addr = three_listener.local_addr().unwrap().to_string();
        let one_addr = one_listener.local_addr().unwrap().to_string();
        let (_stop, stopped) = watch::channel(false);
        let one = Peers::new(1, "test".into(), BTreeMap::from([(2, three_addr)]), limits(), ca.tls(1), stopped.clone());
        let three = Peers::new(3, "test".into(), BTreeMap::from([(1, one_addr)]), limits(), ca.tls(3), stopped);
        one.start(one_listener, answering(Duration::ZERO));
        three.start(three_listener, answering(Duration::ZERO));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!one.is_connected(2) && !three.is_connected(1));
    }

    /// A frame over `hello_bytes_max` before the hello, or over `frame_bytes_max` after it, ends
    /// the connection before anything of that size is read; the dialer connects again.
    #[tokio::test]
    async fn a_frame_over_the_limit_ends_the_connection() {
        let ca = Ca::new();
        let (listener, two_listener) =
            (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
        let (one_addr, two_addr) =
            (listener.local_addr().unwrap().to_string(), two_listener.local_addr().unwrap().to_string());
        let (_stop, stopped) = watch::channel(false);
        let two = Peers::new(2, "test".into(), BTreeMap::from([(1, one_addr)]), limits(), ca.tls(2), stopped);
        two.start(two_listener, answering(Duration::ZERO));
        let connect = || async {
            let tcp = TcpStream::connect(&two_addr).await.unwrap();
            ca.client(1, &ca).connect(tls::server_name(2), tcp).await.unwrap()
        };
        // Before the hello: a first frame that says it is 8 KiB long.
        let mut early = connect().await;
        early.write_all(&(8u32 << 10).to_be_bytes()).await.unwrap();
        early.flush().await.unwrap();
        assert!(rest(early).await.is_empty());
        // Node 1 by hand: a hello, then a frame that says it is 512 MiB long.
        let mut one = connect().await;
        one.write_all(&hello(1, "test")).await.unwrap();
        one.flush().await.unwrap();
        let reply = wire::read_frame(&mut one, 4096, Duration::from_secs(2)).await.unwrap().unwrap();
        assert!(matches!(reply.decode::<Response>().unwrap(), Response::Hello { from: 2 }));
        until(|| two.is_connected(1)).await;
        one.write_all(&(512u32 << 20).to_be_bytes()).await.unwrap();
        one.flush().await.unwrap();
        until(|| !two.is_connected(1)).await;
        rest(one).await;
        drop(listener);
    }

    /// Node 2 accepting links under `limits`, its only peer (node 1) at an address nobody
    /// serves, so that node 1 is whoever the test dials in as: node 2, its address, its stop.
    async fn accepting_two(ca: &Ca, limits: LinkLimits) -> (Arc<Peers>, String, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = watch::channel(false);
        let two = Peers::new(2, "test".into(), BTreeMap::from([(1, "127.0.0.1:9".into())]), limits, ca.tls(2), stopped);
        two.start(listener, answering(Duration::ZERO));
        (two, addr, stop)
    }

    /// Dials `addr` as node 1 with its real certificate and says hello: the stream and the
    /// answer (none if the connection closed).
    async fn hello_as_one(ca: &Ca, addr: &str) -> (tokio_rustls::client::TlsStream<TcpStream>, Option<wire::Frame>) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut one = ca.client(1, ca).connect(tls::server_name(2), tcp).await.unwrap();
        one.write_all(&hello(1, "test")).await.unwrap();
        one.flush().await.unwrap();
        let reply = wire::read_frame(&mut one, 4096, Duration::from_secs(2)).await.unwrap();
        (one, reply)
    }

    /// Past `link_handshakes_max` connections in their handshake, more are closed at once;
    /// silent ones are dropped at the handshake deadline, which frees the slots.
    #[tokio::test]
    async fn handshake_slots_are_capped_and_freed_at_the_deadline() {
        let ca = Ca::new();
        let limits = LinkLimits { handshakes_max: 2, handshake_timeout: Duration::from_millis(300), ..limits() };
        let (_two, addr, _stop) = accepting_two(&ca, limits).await;
        let silent = [TcpStream::connect(&addr).await.unwrap(), TcpStream::connect(&addr).await.unwrap()];
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let over = TcpStream::connect(&addr).await.unwrap();
        assert!(rest(over).await.is_empty());
        assert!(started.elapsed() < Duration::from_millis(250), "the third is closed at once");
        for stream in silent {
            assert!(rest(stream).await.is_empty(), "silent ones are closed at the deadline");
        }
        let (_again, reply) = hello_as_one(&ca, &addr).await;
        assert!(reply.is_some(), "the slots were freed");
    }

    /// A link on which nothing arrives (not even keepalives) is closed after the idle timeout;
    /// one whose peer sends keepalives stays.
    #[tokio::test]
    async fn an_idle_link_is_closed_and_keepalives_keep_one_open() {
        let ca = Ca::new();
        let limits = LinkLimits {
            idle_timeout: Duration::from_millis(400),
            keepalive_interval: Duration::from_millis(100),
            ..limits()
        };
        let (two, addr, _stop) = accepting_two(&ca, limits).await;
        let (mut one, reply) = hello_as_one(&ca, &addr).await;
        reply.expect("the hello is answered");
        until(|| two.is_connected(1)).await;
        // Keepalives for a while: the link stays.
        for _ in 0..8 {
            one.write_all(&wire::keepalive()).await.unwrap();
            one.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(two.is_connected(1), "keepalives keep the link");
        // Node 2 sends its own keepalives meanwhile.
        let frame = wire::read_frame(&mut one, 4096, Duration::from_secs(1)).await.unwrap().unwrap();
        assert_eq!(frame.kind, Kind::Keepalive);
        until(|| !two.is_connected(1)).await;
    }

    #[test]
    fn refusals_are_logged_once_per_address_per_period_with_a_count() {
        let log = RefusalLog::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(log.should_log("10.0.0.1", start), Some(0));
        assert_eq!(log.should_log("10.0.0.1", start + Duration::from_secs(1)), None);
        assert_eq!(log.should_log("10.0.0.1", start + Duration::from_secs(2)), None);
        assert_eq!(log.should_log("10.0.0.2", start + Duration::from_secs(2)), Some(0), "per address");
        assert_eq!(log.should_log("10.0.0.1", start + Duration::from_secs(11)), Some(2), "with the count");
        for n in 0..2 * REFUSAL_LOG_ADDRESSES_MAX {
            log.should_log(&format!("10.1.{n}"), start + Duration::from_secs(12));
        }
        assert!(log.seen.lock().unwrap().len() <= REFUSAL_LOG_ADDRESSES_MAX + 1, "the log stays bounded");
    }
}

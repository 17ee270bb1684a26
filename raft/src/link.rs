//! One connection per pair of nodes, carrying every group's traffic both ways.
//!
//! The node with the lower id dials, the higher one accepts; either side then sends requests on
//! the connection and answers the other's. A dropped connection is dialed again with backoff.
//! Requests wait for their response with a deadline; a request whose connection is gone or whose
//! deadline passed fails with [`LinkError`], and the caller (raft, or the write router) retries.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use model::NodeId;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::wire::{self, FrameError, Kind, Request, Response};

/// What serves the requests peers send to this node.
pub type Handler = Arc<dyn Fn(NodeId, Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// How long a dial or a handshake may take.
const DIAL_TIMEOUT_MS: u64 = 1_000;
/// Buffer of a connection's reader: frames that arrive together are read with one call.
const READ_BUFFER_BYTES: usize = 64 << 10;
/// Backoff between failed dials: doubles from the first to the last value.
const DIAL_BACKOFF_MIN_MS: u64 = 50;
const DIAL_BACKOFF_MAX_MS: u64 = 1_000;

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

/// The limits a link works under.
#[derive(Debug, Clone)]
pub struct LinkLimits {
    pub frame_bytes_max: u32,
    pub queue_frames_max: usize,
}

/// One live connection to a peer.
struct Conn {
    peer: NodeId,
    /// Frames to write, in order. Bounded: a slow peer makes senders wait instead of growing
    /// memory without limit.
    outbox: mpsc::Sender<Vec<u8>>,
    /// Requests sent on this connection, waiting for their response.
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    next_id: AtomicU64,
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
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Peers> {
        assert!(!addrs.contains_key(&me), "a node is not its own peer");
        Arc::new(Peers {
            me,
            cluster,
            addrs,
            conns: RwLock::new(HashMap::new()),
            handler: OnceLock::new(),
            limits,
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
            conn.outbox.send(frame).await.map_err(|_| LinkError::Lost(peer))?;
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
                    tracing::debug!(%from, "raft connection accepted");
                    tokio::spawn(self.clone().accept_one(stream));
                }
                Err(error) => {
                    tracing::warn!(%error, "raft accept failed");
                    tokio::time::sleep(Duration::from_millis(DIAL_BACKOFF_MIN_MS)).await;
                }
            }
        }
    }

    /// Reads the dialer's hello, answers it, and serves the connection.
    async fn accept_one(self: Arc<Self>, mut stream: TcpStream) {
        let handshake = async {
            let frame = wire::read_frame(&mut stream, self.limits.frame_bytes_max)
                .await?
                .ok_or_else(|| FrameError::Malformed("closed before hello".into()))?;
            let Request::Hello { from, cluster } = frame.decode::<Request>()? else {
                return Err(FrameError::Malformed("first frame is not a hello".into()));
            };
            if cluster != self.cluster || !self.addrs.contains_key(&from) || from >= self.me {
                return Err(FrameError::Malformed(format!("hello from unexpected node {from} of cluster {cluster}")));
            }
            let reply = wire::encode(frame.id, Kind::Response, &Response::Hello { from: self.me })?;
            stream.write_all(&reply).await?;
            Ok(from)
        };
        match tokio::time::timeout(Duration::from_millis(DIAL_TIMEOUT_MS), handshake).await {
            Ok(Ok(peer)) => self.serve(peer, stream).await,
            Ok(Err(error)) => tracing::warn!(%error, "raft handshake refused"),
            Err(_) => tracing::warn!("raft handshake timed out"),
        }
    }

    async fn dial_loop(self: Arc<Self>, peer: NodeId, addr: String) {
        let mut backoff_ms = DIAL_BACKOFF_MIN_MS;
        let mut shutdown = self.shutdown.clone();
        while !*shutdown.borrow() {
            let dial = tokio::time::timeout(Duration::from_millis(DIAL_TIMEOUT_MS), self.dial(peer, &addr));
            match dial.await {
                Ok(Ok(stream)) => {
                    backoff_ms = DIAL_BACKOFF_MIN_MS;
                    self.clone().serve(peer, stream).await;
                }
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

    async fn dial(&self, peer: NodeId, addr: &str) -> Result<TcpStream, FrameError> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let hello = Request::Hello { from: self.me, cluster: self.cluster.clone() };
        stream.write_all(&wire::encode(0, Kind::Request, &hello)?).await?;
        let frame = wire::read_frame(&mut stream, self.limits.frame_bytes_max)
            .await?
            .ok_or_else(|| FrameError::Malformed("closed during hello".into()))?;
        match frame.decode::<Response>()? {
            Response::Hello { from } if from == peer => Ok(stream),
            other => Err(FrameError::Malformed(format!("unexpected hello answer {other:?}"))),
        }
    }

    /// Serves a connection until it closes: one task writes queued frames, this one reads.
    async fn serve(self: Arc<Self>, peer: NodeId, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let (outbox, inbox) = mpsc::channel(self.limits.queue_frames_max);
        let conn = Arc::new(Conn { peer, outbox, pending: Mutex::new(HashMap::new()), next_id: AtomicU64::new(1) });
        let replaced = self.conns.write().expect("conns lock").insert(peer, conn.clone());
        if replaced.is_some() {
            tracing::info!(peer, "raft connection replaced");
        } else {
            tracing::info!(peer, "raft connection up");
        }
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            result = write_frames(writer, inbox) => if let Err(error) = result {
                tracing::info!(peer, %error, "raft connection write failed");
            },
            result = self.read_frames(reader, &conn) => if let Err(error) = result {
                tracing::info!(peer, %error, "raft connection read failed");
            },
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

    async fn read_frames(&self, reader: tokio::net::tcp::OwnedReadHalf, conn: &Arc<Conn>) -> Result<(), FrameError> {
        let handler = self.handler.get().expect("handler is set before connections exist").clone();
        // Frames that arrive together are read with one call, not two per frame.
        let mut reader = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, reader);
        while let Some(frame) = wire::read_frame(&mut reader, self.limits.frame_bytes_max).await? {
            match frame.kind {
                Kind::Response => {
                    let waiter = conn.pending.lock().expect("pending lock").remove(&frame.id);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(frame.decode()?);
                    }
                }
                Kind::Request => {
                    let request: Request = frame.decode()?;
                    let (handler, outbox, peer, id) = (handler.clone(), conn.outbox.clone(), conn.peer, frame.id);
                    tokio::spawn(async move {
                        let response = handler(peer, request).await;
                        match wire::encode(id, Kind::Response, &response) {
                            Ok(bytes) => {
                                let _ = outbox.send(bytes).await;
                            }
                            Err(error) => tracing::error!(peer, %error, "response could not be encoded"),
                        }
                    });
                }
            }
        }
        Ok(())
    }
}

/// Writes queued frames, flushing whenever the queue runs dry so that frames that arrive
/// together leave together.
///
/// Before a flush the writer yields once, so that the tasks already runnable queue their frames
/// first. Why: apply answers a whole entry's forwarded commands at once, waking one task per
/// answer; the first answer's frame wakes this writer, which tokio runs next (the woken task
/// takes the worker's LIFO slot), so without the yield every answer left in a send of its own
/// (measured: about one `sendto` per forwarded hold on the leader).
async fn write_frames(
    writer: tokio::net::tcp::OwnedWriteHalf,
    mut inbox: mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    let mut writer = BufWriter::with_capacity(64 << 10, writer);
    while let Some(frame) = inbox.recv().await {
        writer.write_all(&frame).await?;
        tokio::task::yield_now().await;
        while let Ok(frame) = inbox.try_recv() {
            writer.write_all(&frame).await?;
        }
        writer.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::consensus::testing;

    const LIMITS: LinkLimits = LinkLimits { frame_bytes_max: 1 << 20, queue_frames_max: 64 };

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
    async fn pair(delay: Duration) -> (Arc<Peers>, Arc<Peers>, String, watch::Sender<bool>) {
        let (one_listener, two_listener) =
            (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
        let (one_addr, two_addr) =
            (one_listener.local_addr().unwrap().to_string(), two_listener.local_addr().unwrap().to_string());
        let (stop, stopped) = watch::channel(false);
        let one = Peers::new(1, "test".into(), BTreeMap::from([(2, two_addr.clone())]), LIMITS, stopped.clone());
        let two = Peers::new(2, "test".into(), BTreeMap::from([(1, one_addr)]), LIMITS, stopped);
        one.start(one_listener, answering(Duration::ZERO));
        two.start(two_listener, answering(delay));
        (one, two, two_addr, stop)
    }

    async fn until(what: impl Fn() -> bool) {
        testing::until(Duration::from_secs(2), what).await
    }

    #[tokio::test]
    async fn the_lower_id_dials_and_either_side_calls_the_other() {
        let (one, two, _, _stop) = pair(Duration::ZERO).await;
        until(|| one.is_connected(2) && two.is_connected(1)).await;
        let timeout = Duration::from_secs(1);
        assert!(matches!(one.call(2, Request::Status, timeout).await, Ok(Response::Status(r)) if r.is_empty()));
        assert!(matches!(two.call(1, Request::Status, timeout).await, Ok(Response::Status(_))));
        assert!(matches!(one.call(7, Request::Status, timeout).await, Err(LinkError::UnknownNode(7))));
    }

    #[tokio::test]
    async fn a_call_the_peer_does_not_answer_in_time_fails_with_a_timeout() {
        let (one, _two, _, _stop) = pair(Duration::from_secs(5)).await;
        until(|| one.is_connected(2)).await;
        let answer = one.call(2, Request::Status, Duration::from_millis(50)).await;
        assert!(matches!(answer, Err(LinkError::Timeout(2, _))), "{answer:?}");
    }

    /// A stranger's hello (an id outside the cluster, another cluster's name, or an id that
    /// should be dialed rather than dial) gets no answer and replaces no link.
    #[tokio::test]
    async fn a_hello_that_is_not_from_a_peer_gets_nothing() {
        let (_one, two, two_addr, _stop) = pair(Duration::ZERO).await;
        until(|| two.is_connected(1)).await;
        for (from, cluster) in [(9, "test"), (1, "another"), (3, "test")] {
            let mut stranger = TcpStream::connect(&two_addr).await.unwrap();
            let hello = Request::Hello { from, cluster: cluster.into() };
            stranger.write_all(&wire::encode(0, Kind::Request, &hello).unwrap()).await.unwrap();
            let mut answer = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(2), stranger.read_to_end(&mut answer)).await;
            assert!(matches!(read, Ok(Ok(0))), "hello from {from} of {cluster} is closed unanswered: {read:?}");
        }
        assert!(two.is_connected(1), "the real peer's link stays");
    }

    /// A frame over `frame_bytes_max` ends the connection before anything of that size is
    /// read; the dialer connects again.
    #[tokio::test]
    async fn a_frame_over_the_limit_ends_the_connection() {
        let (listener, two_listener) =
            (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
        let (one_addr, two_addr) =
            (listener.local_addr().unwrap().to_string(), two_listener.local_addr().unwrap().to_string());
        let (_stop, stopped) = watch::channel(false);
        let two = Peers::new(2, "test".into(), BTreeMap::from([(1, one_addr)]), LIMITS, stopped);
        two.start(two_listener, answering(Duration::ZERO));
        // Node 1 by hand: a hello, then a frame that says it is 512 MiB long.
        let mut one = TcpStream::connect(&two_addr).await.unwrap();
        let hello = Request::Hello { from: 1, cluster: "test".into() };
        one.write_all(&wire::encode(0, Kind::Request, &hello).unwrap()).await.unwrap();
        let reply = wire::read_frame(&mut one, LIMITS.frame_bytes_max).await.unwrap().unwrap();
        assert!(matches!(reply.decode::<Response>().unwrap(), Response::Hello { from: 2 }));
        until(|| two.is_connected(1)).await;
        one.write_all(&(512u32 << 20).to_be_bytes()).await.unwrap();
        until(|| !two.is_connected(1)).await;
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), one.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "the connection was closed");
        drop(listener);
    }
}

//! The native protocol (ALPN `boxoffice-room/1`): every bidirectional stream of a QUIC connection
//! is one fan's session, carrying length-prefixed JSON frames (see [`crate::wire`]).
//!
//! A connection may carry many streams (a load generator multiplexes fans on one). The stream
//! loop here is shared with WebTransport, whose session streams carry exactly the same frames:
//! [`serve_stream`] takes any pair of byte streams. [`OpenSession`] is the one place a session is
//! opened and closed, so that every transport closes each session exactly once.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::session::{OutboxReceiver, SessionId, Sessions, Via};
use crate::wire::{self, code, ClientMsg, FrameError, ServerMsg};

/// How long a stream whose fan stopped sending may take to flush what is queued to it.
pub const DRAIN_TIMEOUT_MS: u64 = 2_000;

/// A session opened with the logic, closed exactly once when this is dropped (whichever side of
/// the connection ended it, or a task abort).
pub struct OpenSession<S: Sessions> {
    sessions: Arc<S>,
    id: SessionId,
}

impl<S: Sessions> OpenSession<S> {
    /// Opens a session for a fan at `peer`: the guard, and what the logic sends the fan.
    pub fn open(sessions: Arc<S>, peer: IpAddr, via: Via) -> (Self, OutboxReceiver) {
        let (id, rx) = sessions.open(peer, via);
        (OpenSession { sessions, id }, rx)
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Hands a message the fan sent to the logic.
    pub async fn message(&self, msg: ClientMsg) {
        self.sessions.message(self.id, msg).await
    }
}

impl<S: Sessions> Drop for OpenSession<S> {
    fn drop(&mut self) {
        self.sessions.close(self.id);
    }
}

/// A count of things open (connections, sessions), read by the endpoint's stats.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicUsize>);

impl Gauge {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one more until the returned hold is dropped.
    pub fn hold(&self) -> GaugeHold {
        self.0.fetch_add(1, Ordering::Relaxed);
        GaugeHold(self.0.clone())
    }
}

/// One unit of a [`Gauge`], given back on drop.
#[derive(Debug)]
pub struct GaugeHold(Arc<AtomicUsize>);

impl Drop for GaugeHold {
    fn drop(&mut self) {
        let before = self.0.fetch_sub(1, Ordering::Relaxed);
        assert!(before > 0, "a gauge went below zero");
    }
}

/// Bidirectional streams a new connection may open: a fan needs one. quinn keeps a table entry per
/// stream the peer may open (about 35 bytes each, in two hash maps), so allowing the configured
/// maximum at once would cost ~70 KiB per connection at 1,024; [`StreamLimit`] raises it instead.
pub const STREAMS_INITIAL: u32 = 4;

/// A connection's limit of concurrent bidirectional streams: doubled, up to `streams_max`, once
/// half of it is in use, so that a client multiplexing many fans gets room before it runs out
/// (a client that opens more than half of the limit before writing on them waits for the raise).
pub struct StreamLimit {
    conn: quinn::Connection,
    limit: u32,
    streams_max: u32,
    open: Gauge,
}

impl StreamLimit {
    pub fn new(conn: quinn::Connection, streams_max: u32) -> Self {
        StreamLimit { conn, limit: STREAMS_INITIAL.min(streams_max), streams_max, open: Gauge::default() }
    }

    /// Counts an accepted stream until the hold is dropped, raising the limit if it is half used.
    pub fn accepted(&mut self) -> GaugeHold {
        let hold = self.open.hold();
        if self.open.get() * 2 >= self.limit as usize && self.limit < self.streams_max {
            self.limit = self.limit.saturating_mul(2).min(self.streams_max);
            self.conn.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(self.limit));
        }
        hold
    }
}

/// Serves a native connection: one session per bidirectional stream, until the connection ends
/// (its streams are dropped then, which closes their sessions).
///
/// A fan's connection carries one stream, served here in the connection's own task; further
/// streams (a client multiplexing fans) get a task each. A task per fan would cost every waiting
/// fan a task header and a join set's entry for nothing.
pub async fn serve_connection<S: Sessions>(
    conn: quinn::Connection,
    sessions: Arc<S>,
    sessions_open: Gauge,
    streams_max: u32,
) {
    let peer = conn.remote_address().ip().to_canonical();
    let mut limit = StreamLimit::new(conn.clone(), streams_max);
    let Some((send, recv)) = accept(&conn, peer).await else { return };
    let first_holds = (sessions_open.hold(), limit.accepted());
    let first = async {
        serve_stream(sessions.clone(), peer, Via::Quic, recv, send).await;
        drop(first_holds);
        // The first stream is done; the connection lives until it ends.
        std::future::pending::<()>().await
    };
    let more = async {
        // Made with the second stream: most connections never have one.
        let mut streams: Option<JoinSet<()>> = None;
        while let Some((send, recv)) = accept(&conn, peer).await {
            let streams = streams.get_or_insert_with(JoinSet::new);
            let holds = (sessions_open.hold(), limit.accepted());
            let sessions = sessions.clone();
            streams.spawn(async move {
                serve_stream(sessions, peer, Via::Quic, recv, send).await;
                drop(holds);
            });
            while streams.try_join_next().is_some() {}
        }
    };
    tokio::select! {
        () = first => {}
        () = more => {}
    }
}

/// The connection's next stream, or `None` once it ended.
async fn accept(conn: &quinn::Connection, peer: IpAddr) -> Option<(quinn::SendStream, quinn::RecvStream)> {
    match conn.accept_bi().await {
        Ok(pair) => Some(pair),
        Err(error) => {
            tracing::debug!(%peer, %error, "native connection ended");
            None
        }
    }
}

/// Serves one fan's stream: frames in become messages to the session, the session's messages
/// become frames out. Ends when the fan finishes or breaks its side, when a frame is malformed
/// (too large or truncated: the stream is then closed, after an error frame if it can be said),
/// when writing fails, or when the logic drops the session's sender.
pub async fn serve_stream<S, R, W>(sessions: Arc<S>, peer: IpAddr, via: Via, mut recv: R, mut send: W)
where
    S: Sessions,
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let (session, outbox) = OpenSession::open(sessions, peer, via);
    let refusals = Refusals::default();
    {
        let reader = read_loop(&session, &mut recv, &refusals);
        let writer = write_loop(&mut send, outbox, &refusals);
        tokio::pin!(reader, writer);
        tokio::select! {
            () = &mut reader => {
                // The writer stops once it has said the reader's last refusal, if any.
                refusals.close();
                let drained = tokio::time::timeout(Duration::from_millis(DRAIN_TIMEOUT_MS), &mut writer).await;
                if drained.is_err() {
                    tracing::debug!(session = session.id(), "the fan did not read its last frames");
                }
            }
            () = &mut writer => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(DRAIN_TIMEOUT_MS), send.shutdown()).await;
}

/// Refusals of what a stream's reader read, handed to its writer one at a time: the reader waits
/// until the writer took the last one, which slows a fan that floods bad frames. A slot and two
/// signals rather than a queue, which would cost every waiting fan its first block.
#[derive(Default)]
struct Refusals {
    /// The refusal not yet taken by the writer.
    slot: Mutex<Option<ServerMsg>>,
    /// The reader ended: the writer stops once the slot is empty.
    closed: AtomicBool,
    /// Signals the writer: a refusal was put, or the reader ended.
    put: Notify,
    /// Signals the reader: the slot was emptied.
    taken: Notify,
}

impl Refusals {
    async fn put(&self, msg: ServerMsg) {
        let mut msg = Some(msg);
        loop {
            {
                let mut slot = self.slot.lock().expect("refusals lock");
                if slot.is_none() {
                    *slot = msg.take();
                }
            }
            if msg.is_none() {
                return self.put.notify_one();
            }
            self.taken.notified().await;
        }
    }

    /// The next refusal, or `None` once the reader ended and every refusal was taken.
    async fn take(&self) -> Option<ServerMsg> {
        loop {
            if let Some(msg) = self.slot.lock().expect("refusals lock").take() {
                self.taken.notify_one();
                return Some(msg);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            self.put.notified().await;
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.put.notify_one();
    }
}

/// Reads frames until the fan's side ends; a bad JSON body is refused and the loop goes on, a bad
/// frame is refused and ends it.
async fn read_loop<S: Sessions, R: AsyncRead + Unpin>(session: &OpenSession<S>, recv: &mut R, refusals: &Refusals) {
    loop {
        let body = match wire::read_frame(recv).await {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(error @ FrameError::TooLarge(_)) => {
                refusals.put(refusal(error.to_string())).await;
                return;
            }
            Err(error) => {
                tracing::debug!(session = session.id(), %error, "stream ended inside a frame");
                return;
            }
        };
        match serde_json::from_slice::<ClientMsg>(&body) {
            // Boxed: the logic's answer may await the cluster, and a future of that size kept in
            // every idle fan's task would cost each waiting fan kilobytes.
            Ok(msg) => Box::pin(session.message(msg)).await,
            Err(error) => refusals.put(refusal(format!("not a client message: {error}"))).await,
        }
    }
}

/// Writes what the logic sends and what the reader refuses, until either source ends or a write
/// fails (the fan is gone).
async fn write_loop<W: AsyncWrite + Unpin>(send: &mut W, mut outbox: OutboxReceiver, refusals: &Refusals) {
    loop {
        let msg = tokio::select! {
            biased;
            refused = refusals.take() => refused,
            msg = outbox.recv() => msg.map(|msg| *msg),
        };
        let Some(msg) = msg else { return };
        if let Err(error) = send.write_all(&wire::encode(&msg)).await {
            tracing::debug!(%error, "writing to a fan failed");
            return;
        }
    }
}

fn refusal(detail: String) -> ServerMsg {
    ServerMsg::Error { code: code::BAD_MESSAGE.to_string(), detail }
}

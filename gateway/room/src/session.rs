//! The seam between the transports (native QUIC, WebTransport, HTTP) and the room's logic.
//!
//! A transport opens a session per fan connection, hands it every message the fan sends, and
//! forwards what the session's receiver yields; it closes the session when the connection ends.
//! The logic never sees a socket, and a transport never sees a place.

use std::future::Future;
use std::net::IpAddr;

use crate::mailbox;
use crate::wire::{ClientMsg, ServerMsg};

/// A session's number on its node.
pub type SessionId = u64;

/// Which transport a session came over (for counts and limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    Quic,
    WebTransport,
    Http,
}

/// Most messages queued for one session: a slow fan gets the newest position later, never an
/// unbounded queue (a position is replaced by the next one anyway).
pub const SESSION_QUEUE_MAX: usize = 4;

/// What a session queues for its fan. Boxed because the queue keeps the largest buffer it ever
/// had: four boxes are 32 bytes for each waiting fan, four messages would be several hundred.
pub type Outgoing = Box<ServerMsg>;

/// The logic's end of a session's queue.
pub type OutboxSender = mailbox::Sender<Outgoing>;
/// The transport's end of a session's queue.
pub type OutboxReceiver = mailbox::Receiver<Outgoing>;

/// A session's queue towards its fan, bounded by [`SESSION_QUEUE_MAX`].
pub fn outbox() -> (OutboxSender, OutboxReceiver) {
    mailbox::channel(SESSION_QUEUE_MAX)
}

pub trait Sessions: Send + Sync + 'static {
    /// A new fan connection from `peer`: its id, and what to send it.
    fn open(&self, peer: IpAddr, via: Via) -> (SessionId, OutboxReceiver);
    /// A message the fan sent.
    fn message(&self, session: SessionId, msg: ClientMsg) -> impl Future<Output = ()> + Send;
    /// The connection ended (the fan's place stays until it is abandoned).
    fn close(&self, session: SessionId);
}

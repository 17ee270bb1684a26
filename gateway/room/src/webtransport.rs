//! WebTransport (ALPN `h3`) for browsers: a fan's page opens `https://<host>:<port>/room`, then
//! one bidirectional stream per session carrying exactly the frames of the native protocol
//! ([`native::serve_stream`] serves both).
//!
//! The endpoint accepts every QUIC connection itself and dispatches by ALPN, so this module starts
//! from an already-accepted `quinn::Connection`: it uses `web_transport_quinn::Request::accept`,
//! which runs the HTTP/3 SETTINGS exchange and reads the extended CONNECT on exactly such a
//! connection, then answers with `Request::ok` (path `/room`) or `Request::reject` (404). The
//! crate's `Server`/`ServerBuilder` would own the `quinn::Endpoint` and accept only `h3`, which
//! would need a second UDP port for the native protocol.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use web_transport_quinn::http::StatusCode;
use web_transport_quinn::Request;

use crate::native::{self, Gauge, StreamLimit};
use crate::session::{Sessions, Via};

/// The path of the room's WebTransport sessions.
pub const ROOM_PATH: &str = "/room";

/// Longest wait for the SETTINGS exchange and the CONNECT request of a new connection.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// How long a refused connection stays open so that the client reads its 404 before the close.
pub const REFUSAL_LINGER_MS: u64 = 1_000;

/// Serves a WebTransport connection: one session per bidirectional stream of its WebTransport
/// session, until the connection ends (the streams' tasks are aborted then).
pub async fn serve_connection<S: Sessions>(
    conn: quinn::Connection,
    sessions: Arc<S>,
    sessions_open: Gauge,
    streams_max: u32,
) {
    let peer = conn.remote_address().ip().to_canonical();
    let handshake = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), Request::accept(conn.clone()));
    let request = match handshake.await {
        Ok(Ok(request)) => request,
        Ok(Err(error)) => return tracing::debug!(%peer, %error, "webtransport handshake failed"),
        Err(_) => return tracing::debug!(%peer, "webtransport handshake timed out"),
    };
    if request.url.path() != ROOM_PATH {
        tracing::debug!(%peer, path = request.url.path(), "webtransport session refused");
        if request.reject(StatusCode::NOT_FOUND).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_millis(REFUSAL_LINGER_MS), conn.closed()).await;
        }
        return;
    }
    let session = match request.ok().await {
        Ok(session) => session,
        Err(error) => return tracing::debug!(%peer, %error, "webtransport session failed to start"),
    };
    let mut limit = StreamLimit::new(conn.clone(), streams_max);
    let mut streams = JoinSet::new();
    loop {
        let (send, recv) = match session.accept_bi().await {
            Ok(pair) => pair,
            Err(error) => return tracing::debug!(%peer, %error, "webtransport session ended"),
        };
        let holds = (sessions_open.hold(), limit.accepted());
        let sessions = sessions.clone();
        streams.spawn(async move {
            native::serve_stream(sessions, peer, Via::WebTransport, recv, send).await;
            drop(holds);
        });
        while streams.try_join_next().is_some() {}
    }
}

//! The gateway's HTTP front door: its own accept loop over hyper's HTTP/1 connections, so that
//! every connection and request has a limit a hostile client cannot stretch.
//!
//! - A request's head (and a TLS handshake) must arrive within `header_read_timeout_ms` of the
//!   connection being ready for it; hyper's timer closes a slow-loris connection, and an idle
//!   keep-alive one, after it.
//! - The response's head must be ready within `request_timeout_ms` (a 503 otherwise). Streams
//!   of server-sent events are under it only until their head leaves, and then stay open.
//! - At most `connections_max` connections are open: past it a new connection is sent a short
//!   503 and closed at once, so file descriptors stay under the cap.
//! - At most `requests_in_flight_max` requests wait for their response head: past it a request
//!   gets a 503 with `Retry-After` at once, never a place in an unbounded queue.
//! - With `tls_cert_path` and `tls_key_path`, connections are HTTPS (rustls with ring).
//!
//! Every request carries `ConnectInfo<SocketAddr>`, the client's address, which the rate limits
//! and the waiting room's HTTP fallback key on.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::GatewayConfig;
use crate::problem::{Problem, TYPE_BASE};

/// How long connections may take to finish their requests once the gateway is told to stop;
/// past it they are dropped (an open event stream never finishes by itself).
const SHUTDOWN_GRACE_MS: u64 = 5_000;
/// File descriptors a node needs besides its HTTP connections (RocksDB's files, raft links, the
/// room's socket), as a margin for [`warn_if_over_descriptor_limit`].
const DESCRIPTORS_OTHER_USES: usize = 1_024;
/// The pause after an accept that failed for want of file descriptors, so that the loop does not
/// spin while connections close.
const ACCEPT_BACKOFF_MS: u64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum FrontDoorError {
    #[error("set both tls_cert_path and tls_key_path to serve HTTPS, or neither for plain HTTP")]
    HalfTls,
    #[error("cannot read the TLS certificate chain {path}: {detail}")]
    Certificate { path: String, detail: String },
    #[error("cannot read the TLS private key {path}: {detail}")]
    Key { path: String, detail: String },
    #[error("the TLS certificate and key do not make a server configuration: {0}")]
    Config(String),
}

/// The front door's settings, read from the gateway's configuration, and its TLS if any.
#[derive(Clone)]
pub struct FrontDoor {
    header_read_timeout: Duration,
    request_timeout: Duration,
    connections_max: usize,
    requests_in_flight_max: usize,
    tls: Option<TlsAcceptor>,
}

impl FrontDoor {
    /// The front door `config` describes; reads the TLS files if it names them.
    pub fn new(config: &GatewayConfig) -> Result<FrontDoor, FrontDoorError> {
        let tls = match (config.tls_cert_path.as_str(), config.tls_key_path.as_str()) {
            ("", "") => None,
            ("", _) | (_, "") => return Err(FrontDoorError::HalfTls),
            (cert, key) => Some(tls_acceptor(Path::new(cert), Path::new(key))?),
        };
        warn_if_over_descriptor_limit(config.connections_max);
        Ok(FrontDoor {
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms.max(1)),
            request_timeout: Duration::from_millis(config.request_timeout_ms.max(1)),
            connections_max: config.connections_max.max(1),
            requests_in_flight_max: config.requests_in_flight_max.max(1),
            tls,
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Warns when `connections_max` does not fit under this process's limit of open files (Linux's
/// `/proc/self/limits`; elsewhere nothing is checked): the cap would then never bind, and accepts
/// would fail for want of descriptors instead (storage and raft need theirs too).
fn warn_if_over_descriptor_limit(connections_max: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else { return };
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<usize>().ok());
    if let Some(soft) = soft {
        if connections_max.saturating_add(DESCRIPTORS_OTHER_USES) > soft {
            tracing::warn!(
                connections_max,
                open_files_max = soft,
                "connections_max leaves too few file descriptors for storage and raft: raise `ulimit -n` or lower it"
            );
        }
    }
}

/// A TLS acceptor for HTTP/1.1 over the certificate chain and key in PEM files.
fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, FrontDoorError> {
    let shown = |path: &Path| path.display().to_string();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| FrontDoorError::Certificate { path: shown(cert), detail: e.to_string() })?;
    if chain.is_empty() {
        let detail = "it holds no CERTIFICATE block".to_string();
        return Err(FrontDoorError::Certificate { path: shown(cert), detail });
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| FrontDoorError::Key { path: shown(key), detail: e.to_string() })?;
    // Ring, as everywhere in the workspace (no aws-lc C build); rustls 0.23.48 deprecates it for
    // its want of a post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FrontDoorError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| FrontDoorError::Config(e.to_string()))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// What every connection's requests share.
struct Shared {
    router: axum::Router,
    requests: Arc<Semaphore>,
    request_timeout: Duration,
    header_read_timeout: Duration,
    tls: Option<TlsAcceptor>,
}

/// Serves `router` on `listener` through `door` until `shutdown` completes; then stops
/// accepting, lets the requests in flight finish (for up to [`SHUTDOWN_GRACE_MS`]) and returns.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    door: FrontDoor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(door.connections_max));
    let shared = Arc::new(Shared {
        router,
        requests: Arc::new(Semaphore::new(door.requests_in_flight_max)),
        request_timeout: door.request_timeout,
        header_read_timeout: door.header_read_timeout,
        tls: door.tls,
    });
    let (closing, closed) = watch::channel(false);
    let mut open = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = open.join_next(), if !open.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        accept_failed(error).await;
                        continue;
                    }
                };
                match connections.clone().try_acquire_owned() {
                    Ok(permit) => {
                        open.spawn(connection(stream, peer, permit, shared.clone(), closed.clone()));
                    }
                    Err(_) => refuse(stream, shared.tls.is_some()),
                }
            }
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = async { while open.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), drained).await.is_err() {
        tracing::info!(connections = open.len(), "gateway closes the connections still open");
        open.abort_all();
    }
    Ok(())
}

/// An accept that failed: for want of file descriptors the loop pauses (connections will
/// close), anything else (a connection reset before it was accepted) is the client's.
async fn accept_failed(error: std::io::Error) {
    // EMFILE (24) and ENFILE (23): this process's or the system's descriptors are all taken.
    if matches!(error.raw_os_error(), Some(23 | 24)) {
        tracing::warn!(%error, "gateway cannot accept: out of file descriptors");
        tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await;
    } else {
        tracing::debug!(%error, "accept failed");
    }
}

/// A connection past `connections_max`: a short 503 if the socket takes it at once (plain HTTP
/// only; a TLS client could not read it), then closed.
fn refuse(stream: TcpStream, tls: bool) {
    tracing::debug!("connection refused: connections_max reached");
    if !tls {
        let _ = stream.try_write(connections_full().as_bytes());
    }
}

/// The whole HTTP/1.1 response of a connection refused for the connection cap.
fn connections_full() -> &'static str {
    static RESPONSE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RESPONSE.get_or_init(|| {
        let body = serde_json::json!({
            "type": format!("{TYPE_BASE}unavailable"),
            "title": "Service unavailable",
            "status": 503,
            "detail": "this node has as many connections open as it serves: try again in a second",
        })
        .to_string();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\nconnection: close\r\n\
             content-length: {}\r\n\r\n{body}",
            crate::problem::CONTENT_TYPE,
            body.len()
        )
    })
}

/// One connection, holding its place under `connections_max` until it closes.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _place: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    closing: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match shared.tls.clone() {
        None => http(TokioIo::new(stream), peer, shared, closing).await,
        Some(acceptor) => match tokio::time::timeout(shared.header_read_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => http(TokioIo::new(stream), peer, shared, closing).await,
            Ok(Err(error)) => tracing::debug!(%peer, %error, "tls handshake failed"),
            Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
        },
    }
}

/// HTTP/1.1 over `io` until the client or the header timeout closes it, or the gateway stops.
async fn http<I>(io: TokioIo<I>, peer: SocketAddr, shared: Arc<Shared>, mut closing: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = shared.header_read_timeout;
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(answer(&shared, request, peer).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(timeout).keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let stop = async move {
        let _ = closing.wait_for(|closing| *closing).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        // A header timeout, a client that went away, a malformed head: all the client's doing.
        tracing::debug!(%peer, %error, "connection ended");
    }
}

/// The router's answer to `request`, within the in-flight cap and the request timeout.
async fn answer(shared: &Shared, mut request: hyper::Request<Incoming>, peer: SocketAddr) -> Response {
    let Ok(_in_flight) = shared.requests.clone().try_acquire_owned() else {
        return Problem::unavailable("this node is answering as many requests as it can: try again in a second")
            .into_response();
    };
    request.extensions_mut().insert(ConnectInfo(peer));
    let mut router = shared.router.clone();
    let call = tower_service::Service::call(&mut router, request);
    match tokio::time::timeout(shared.request_timeout, call).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::warn!(%peer, "request timed out");
            Problem::unavailable("the answer took too long: try again").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::time::Instant;

    /// A front door on a free loopback port serving `/slow` (answers after 1 s) and `/stream`
    /// (its head at once, then a chunk every 50 ms for good); stops when the sender drops.
    async fn door(config: GatewayConfig) -> (String, tokio::sync::oneshot::Sender<()>) {
        let router = axum::Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    "done"
                }),
            )
            .route(
                "/stream",
                get(|| async {
                    let ticks = futures::stream::unfold((), |()| async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Some((Ok::<_, Infallible>(bytes::Bytes::from_static(b"tick\n")), ()))
                    });
                    axum::body::Body::from_stream(ticks)
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let door = FrontDoor::new(&config).unwrap();
        tokio::spawn(serve(listener, router, door, async move {
            let _ = stopped.await;
        }));
        (base, stop)
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_but_a_stream_stays_open() {
        let (base, _stop) = door(GatewayConfig { request_timeout_ms: 200, ..GatewayConfig::default() }).await;
        let http = reqwest::Client::new();
        let started = Instant::now();
        let slow = http.get(format!("{base}/slow")).send().await.unwrap();
        assert_eq!(slow.status(), 503);
        assert_eq!(slow.headers()["content-type"], crate::problem::CONTENT_TYPE);
        assert!(started.elapsed() < Duration::from_millis(900), "cut at the timeout: {:?}", started.elapsed());
        let mut stream = http.get(format!("{base}/stream")).send().await.unwrap();
        assert_eq!(stream.status(), 200);
        let started = Instant::now();
        let mut chunks = 0;
        while started.elapsed() < Duration::from_millis(700) {
            assert!(stream.chunk().await.unwrap().is_some(), "the stream is still open");
            chunks += 1;
        }
        assert!(chunks >= 10, "a chunk every 50 ms long past the request timeout: {chunks}");
    }

    #[tokio::test]
    async fn requests_past_the_in_flight_cap_get_a_503_at_once() {
        let (base, _stop) = door(GatewayConfig { requests_in_flight_max: 1, ..GatewayConfig::default() }).await;
        let http = reqwest::Client::new();
        let first = tokio::spawn({
            let (http, base) = (http.clone(), base.clone());
            async move { http.get(format!("{base}/slow")).send().await.unwrap().status() }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let second = http.get(format!("{base}/slow")).send().await.unwrap();
        assert_eq!(second.status(), 503);
        assert_eq!(second.headers()["retry-after"], "1");
        assert!(started.elapsed() < Duration::from_millis(500), "not queued: {:?}", started.elapsed());
        assert_eq!(first.await.unwrap(), 200, "the request in flight is answered");
        assert_eq!(http.get(format!("{base}/slow")).send().await.unwrap().status(), 200, "and the slot is free again");
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_at_the_header_timeout() {
        let (base, _stop) = door(GatewayConfig { header_read_timeout_ms: 300, ..GatewayConfig::default() }).await;
        let mut silent = TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut silent, b"GET /slow HTTP/1.1\r\nHost:").await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(3), tokio::io::AsyncReadExt::read(&mut silent, &mut buf));
        let _ = read.await.expect("closed before 3 s");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250) && waited < Duration::from_millis(1_500), "{waited:?}");
    }

    #[test]
    fn the_refusal_is_a_complete_problem_response() {
        let response = connections_full();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("content-type: application/problem+json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], 503);
    }

    #[test]
    fn tls_needs_both_files() {
        let half = GatewayConfig { tls_cert_path: "cert.pem".into(), ..GatewayConfig::default() };
        assert!(matches!(FrontDoor::new(&half), Err(FrontDoorError::HalfTls)));
        let missing = GatewayConfig {
            tls_cert_path: "/nonexistent/cert.pem".into(),
            tls_key_path: "/nonexistent/key.pem".into(),
            ..GatewayConfig::default()
        };
        let error = FrontDoor::new(&missing).err().unwrap().to_string();
        assert!(error.contains("/nonexistent/cert.pem"), "{error}");
        assert!(!FrontDoor::new(&GatewayConfig::default()).unwrap().is_tls());
    }
}

//! A fan's client of the waiting room, written from its protocol as any outside client would be
//! (native QUIC, ALPN `boxoffice-room/1`), and the operator's and fan's HTTP calls around it.
//!
//! - A node's room listens on UDP; `GET /events/{id}/waiting-room` ([`RoomInfo`]) names each
//!   node's `host:port` and the SHA-256 of its certificate, which the client pins
//!   ([`RoomClient::connect`]): no chain of trust, exactly that certificate.
//! - One connection carries many fans: each bidirectional stream is one fan's session
//!   ([`FanStream`]), carrying frames of a 4-byte big-endian length and that many bytes of JSON
//!   ([`ClientMsg`] out, [`ServerMsg`] in).
//! - A join is hello, a proof-of-work challenge, its answer, and a signed ticket that fixes the
//!   fan's [`Place`] ([`join`]); a ticket resumes that place on any node ([`resume`]); the wait
//!   ends with an admission token ([`wait_admitted`]) that a hold presents in `Admission-Token`
//!   ([`hold_admitted`]).
//! - A node may send a fan to another (its home node after the on-sale, or one whose clock is in
//!   step): [`RoomPool`] holds a connection per node and follows such redirects.
//! - Fans of the room need only a token signed with the cluster secret ([`fan_token`]): a load
//!   of thousands of fans needs no sign-ups (a hold, though, needs a real fan).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cluster::Cluster;
use crate::fan::{answer, Answer, Fan};

/// A time as the admin API takes it (e.g. a room's `onSaleAt`): RFC 3339, whole seconds.
pub use demo::bodies::rfc3339;

/// The ALPN of the room's native protocol.
pub const ALPN: &[u8] = b"boxoffice-room/1";
/// Largest frame either side sends or accepts.
pub const FRAME_BYTES_MAX: usize = 8 * 1024;
/// The name the client asks for in the handshake (the pin, not the name, is what is checked).
pub const SERVER_NAME: &str = "localhost";
/// The header a hold carries its admission token in.
pub const ADMISSION_TOKEN_HEADER: &str = "Admission-Token";
/// How often the harness's waiting fans say they are still there. The room needs no heartbeat
/// from a connected fan (its connection keeps its place) and takes one as a sign of life.
pub const HEARTBEAT_INTERVAL_MS: u64 = 10_000;
/// How long [`join`] and [`resume`] wait for each answer of the node.
pub const ANSWER_TIMEOUT_MS: u64 = 15_000;
/// How long [`join`] and [`resume`] wait for the message that follows a ticket (a position,
/// an admission, a lapse); a passed place that waits for a late admission gets none at once.
pub const FOLLOW_UP_TIMEOUT_MS: u64 = 2_000;
/// Keep-alive period of a client connection, under the node's idle timeout.
pub const KEEP_ALIVE_INTERVAL_MS: u64 = 5_000;
/// Redirects a [`RoomPool`] follows for one join.
pub const REDIRECTS_MAX: usize = 3;
/// A client socket's receive buffer: a test's process runs many fans on few cores, and a datagram
/// that finds the buffer full costs its fan a retransmission timeout (seconds, after a few).
pub const CLIENT_RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// What a client sends (the protocol's client messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ClientMsg {
    /// First message: the fan's token, the event, and a ticket from an earlier join if any.
    Hello { event: u64, token: String, ticket: Option<String> },
    /// The proof-of-work answer to the node's challenge: the join itself.
    Join { challenge: String, answer: u64 },
    /// Keeps the fan's place live.
    Heartbeat,
}

/// What a node sends (the protocol's server messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ServerMsg {
    /// Find `answer` such that SHA-256(challenge ‖ answer as 8 bytes big endian) starts with
    /// `bits` zero bits.
    Challenge { challenge: String, bits: u8 },
    /// The fan's place, signed: the ticket is the place, on any node.
    Ticket { ticket: String, place: Place, presale: bool },
    /// Where the fan stands.
    Position { ahead: u64, wait_seconds: Option<u64>, note: Option<String>, on_sale_at: u64, paused: bool },
    /// The fan's turn: hold with this token until `expires_at` (ms since the epoch).
    Admitted { admission_token: String, expires_at: u64 },
    /// Far back: come back at `come_back_at` with the ticket.
    Parked { come_back_at: u64 },
    /// The place was passed while the fan was away, and its admission window closed.
    Lapsed { detail: String },
    /// This node cannot serve the fan now: ask one of these.
    Redirect { nodes: Vec<RoomNode>, detail: String },
    /// The last message was refused; nothing changed.
    Error { code: String, detail: String },
}

/// A place in line, compared field by field in this order: pre-sale places (`class` 0, `primary`
/// the draw) before on-sale ones (`class` 1, `primary` the issuing node's clock in ms), then the
/// node and its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Place {
    pub class: u8,
    pub primary: u64,
    pub node: u16,
    pub seq: u64,
}

/// A node where fans join the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomNode {
    pub node: u64,
    /// `host:port`, UDP.
    pub endpoint: String,
    /// SHA-256 of the node's certificate (DER), hex: the client pins it.
    pub cert_sha256: String,
}

impl RoomNode {
    pub fn addr(&self) -> anyhow::Result<SocketAddr> {
        self.endpoint.parse().map_err(|_| anyhow!("room endpoint `{}` is not an ip:port", self.endpoint))
    }
}

/// What `GET /events/{id}/waiting-room` tells a fan (the fields a client of the native protocol
/// uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    pub event: u64,
    pub enabled: bool,
    pub on_sale_at: String,
    pub paused: bool,
    pub pow_bits: u8,
    /// The nodes that reported lately.
    pub nodes: Vec<RoomNode>,
}

impl RoomInfo {
    pub fn node(&self, id: u64) -> Option<&RoomNode> {
        self.nodes.iter().find(|n| n.node == id)
    }
}

/// What an admission token says (read without checking its signature: the node checks it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AdmissionClaims {
    #[serde(rename = "ev")]
    pub event: u64,
    #[serde(rename = "uid")]
    pub user: u64,
    #[serde(rename = "pl")]
    pub place: Place,
    #[serde(rename = "exp")]
    pub expires_at: u64,
}

impl AdmissionClaims {
    /// The claims of an admission token `a1.<claims>.<mac>`.
    pub fn read(token: &str) -> Option<AdmissionClaims> {
        let mut parts = token.split('.');
        let (_prefix, middle) = (parts.next()?, parts.next()?);
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(middle).ok()?).ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("cannot set up the room client: {0}")]
    Setup(String),
    #[error("cannot connect to the room at {addr}: {detail}")]
    Connect { addr: SocketAddr, detail: String },
    #[error("the fan's stream failed: {0}")]
    Stream(String),
    #[error("the node ended the fan's stream")]
    Closed,
    #[error("no message from the node within {0} ms")]
    Timeout(u64),
    #[error("a frame of {0} bytes is over the limit of {FRAME_BYTES_MAX}")]
    TooLarge(usize),
    #[error("not a message of the room: {0}")]
    BadMessage(String),
    #[error("the node refused: {code} ({detail})")]
    Refused { code: String, detail: String },
    #[error("the node sends the fan to {nodes:?}: {detail}")]
    Redirected { nodes: Vec<RoomNode>, detail: String },
    #[error("the node sent {0:?} where the protocol has something else")]
    Unexpected(Box<ServerMsg>),
}

impl RoomError {
    /// The code of a refusal, if this is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            RoomError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A fan token for `uid`, valid until `exp_ms`, signed with the cluster secret as the gateway
/// signs the ones it gives at sign-in.
pub fn fan_token(secret: &str, uid: u64, exp_ms: u64) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"uid":{uid},"exp":{exp_ms}}}"#));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes keys of any length");
    mac.update(payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Whether SHA-256(challenge ‖ answer, 8 bytes big endian) starts with `bits` zero bits.
pub fn solves(challenge: &str, answer: u64, bits: u8) -> bool {
    let digest = Sha256::new().chain_update(challenge.as_bytes()).chain_update(answer.to_be_bytes()).finalize();
    leading_zero_bits(&digest) >= u32::from(bits)
}

fn leading_zero_bits(bytes: &[u8]) -> u32 {
    let mut zeros = 0;
    for byte in bytes {
        if *byte != 0 {
            return zeros + byte.leading_zeros();
        }
        zeros += 8;
    }
    zeros
}

/// The first answer from 0 up that solves a challenge (about 2^bits tries).
pub fn solve(challenge: &str, bits: u8) -> u64 {
    assert!(bits <= 64, "a challenge asks at most 64 zero bits");
    (0..).find(|x| solves(challenge, *x, bits)).expect("some answer solves any challenge of at most 64 bits")
}

/// Accepts exactly the certificate whose DER hashes to the pinned SHA-256, and checks the
/// handshake's TLS 1.3 signature with it.
#[derive(Debug)]
struct Pinned {
    sha256_hex: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if hex::encode(Sha256::digest(end_entity.as_ref())) == self.sha256_hex {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("the room speaks tls 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// ring's provider, as the nodes use it. rustls deprecates it for lacking post-quantum key
/// exchange, which only its aws-lc provider has; the workspace avoids that C build, and the room
/// pins certificates rather than protecting long-lived secrets.
#[allow(deprecated)]
fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A QUIC client configuration that pins `cert_sha256` and speaks the native protocol.
fn client_config(cert_sha256: &str) -> Result<quinn::ClientConfig, RoomError> {
    let provider = ring_provider();
    let pin = Arc::new(Pinned { sha256_hex: cert_sha256.to_ascii_lowercase(), provider: provider.clone() });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| RoomError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(pin)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| RoomError::Setup(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_INTERVAL_MS)));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// A client endpoint on 127.0.0.1 with a receive buffer of [`CLIENT_RECEIVE_BUFFER_BYTES`] (or
/// the kernel's most).
fn client_endpoint() -> std::io::Result<quinn::Endpoint> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(CLIENT_RECEIVE_BUFFER_BYTES)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let runtime = quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket.into(), runtime)
}

/// One QUIC connection to a node's room; each [`RoomClient::open_fan`] is one more fan on it.
#[derive(Clone)]
pub struct RoomClient {
    /// Kept so that the connection's socket lives as long as the client.
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
}

impl RoomClient {
    /// Connects from 127.0.0.1 to the room at `endpoint`, accepting only the certificate whose
    /// SHA-256 is `cert_sha256`.
    pub async fn connect(endpoint: SocketAddr, cert_sha256: &str) -> Result<RoomClient, RoomError> {
        let connect_error = |detail: String| RoomError::Connect { addr: endpoint, detail };
        let mut client = client_endpoint().map_err(|e| connect_error(e.to_string()))?;
        client.set_default_client_config(client_config(cert_sha256)?);
        let connecting = client.connect(endpoint, SERVER_NAME).map_err(|e| connect_error(e.to_string()))?;
        let timeout = Duration::from_millis(ANSWER_TIMEOUT_MS);
        let conn = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| connect_error(format!("no handshake within {ANSWER_TIMEOUT_MS} ms")))?
            .map_err(|e| connect_error(e.to_string()))?;
        Ok(RoomClient { endpoint: client, conn })
    }

    /// Connects to a node as the public view of the room lists it.
    pub async fn connect_to(node: &RoomNode) -> anyhow::Result<RoomClient> {
        Ok(RoomClient::connect(node.addr()?, &node.cert_sha256).await?)
    }

    /// A new fan on this connection: a bidirectional stream (the node sees it at the first
    /// message sent).
    pub async fn open_fan(&self) -> Result<FanStream, RoomError> {
        let (send, recv) = self.conn.open_bi().await.map_err(|e| RoomError::Stream(e.to_string()))?;
        Ok(FanStream { send, recv, inbox: Vec::new(), pending: VecDeque::new() })
    }

    /// Closes the connection (every fan on it) at once.
    pub fn close(&self) {
        self.conn.close(0u32.into(), b"done");
        self.endpoint.close(0u32.into(), b"done");
    }
}

/// One fan's session: a bidirectional stream of frames.
pub struct FanStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    /// Bytes read and not yet cut into frames: reads are cancelled by timeouts, so nothing read
    /// may be lost between them.
    inbox: Vec<u8>,
    /// Messages a helper read ahead and left for the next [`FanStream::recv`].
    pending: VecDeque<ServerMsg>,
}

impl FanStream {
    /// Sends one message as a frame.
    pub async fn send(&mut self, msg: &ClientMsg) -> Result<(), RoomError> {
        self.send_raw(&serde_json::to_vec(msg).expect("client messages serialize")).await
    }

    /// Sends `body` as one frame, whatever it is (for malformed messages).
    pub async fn send_raw(&mut self, body: &[u8]) -> Result<(), RoomError> {
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(body);
        self.send.write_all(&frame).await.map_err(|e| RoomError::Stream(e.to_string()))
    }

    /// The next message from the node, waiting at most `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<ServerMsg, RoomError> {
        if let Some(msg) = self.pending.pop_front() {
            return Ok(msg);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(body) = self.take_frame()? {
                return serde_json::from_slice(&body)
                    .map_err(|e| RoomError::BadMessage(format!("{e}: {}", String::from_utf8_lossy(&body))));
            }
            let chunk = tokio::time::timeout_at(deadline, self.recv.read_chunk(FRAME_BYTES_MAX, true))
                .await
                .map_err(|_| RoomError::Timeout(timeout.as_millis() as u64))?
                .map_err(|e| RoomError::Stream(e.to_string()))?;
            match chunk {
                Some(chunk) => self.inbox.extend_from_slice(&chunk.bytes),
                None if self.inbox.is_empty() => return Err(RoomError::Closed),
                None => return Err(RoomError::Stream("the stream ended inside a frame".into())),
            }
        }
    }

    /// Cuts the first whole frame off the inbox, if there is one.
    fn take_frame(&mut self) -> Result<Option<Vec<u8>>, RoomError> {
        let Some(head) = self.inbox.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes(head.try_into().expect("four bytes")) as usize;
        if len > FRAME_BYTES_MAX {
            return Err(RoomError::TooLarge(len));
        }
        if self.inbox.len() < 4 + len {
            return Ok(None);
        }
        let body = self.inbox[4..4 + len].to_vec();
        self.inbox.drain(..4 + len);
        Ok(Some(body))
    }

    /// Leaves a message for the next [`FanStream::recv`].
    fn unread(&mut self, msg: ServerMsg) {
        self.pending.push_front(msg);
    }

    /// Ends the fan's side of the stream (the node then closes the session; the place stays
    /// until it is abandoned).
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }
}

/// One connection to each node of a room, and more as redirects name them: what a fan's client
/// needs to follow the room's redirects (after the on-sale, a fan's place is kept by one home
/// node, which the others name; a node whose clock is not in step names others).
pub struct RoomPool {
    clients: std::sync::Mutex<BTreeMap<u64, RoomClient>>,
}

/// A fan placed through a [`RoomPool`]: the node that gave the place, the fan's stream there,
/// and the place.
pub struct Placed {
    pub node: u64,
    pub fan: FanStream,
    pub joined: Joined,
}

impl RoomPool {
    /// Connects to every node the room lists.
    pub async fn connect(info: &RoomInfo) -> anyhow::Result<RoomPool> {
        let mut clients = BTreeMap::new();
        for node in &info.nodes {
            clients.insert(node.node, RoomClient::connect_to(node).await?);
        }
        Ok(RoomPool { clients: std::sync::Mutex::new(clients) })
    }

    /// The connection to node `id`, if the pool has one.
    pub fn client(&self, id: u64) -> Option<RoomClient> {
        self.clients.lock().expect("room pool lock").get(&id).cloned()
    }

    async fn client_for(&self, node: &RoomNode) -> Result<RoomClient, RoomError> {
        if let Some(client) = self.client(node.node) {
            return Ok(client);
        }
        let addr = node.endpoint.parse().map_err(|_| RoomError::Setup(format!("bad endpoint {}", node.endpoint)))?;
        let client = RoomClient::connect(addr, &node.cert_sha256).await?;
        self.clients.lock().expect("room pool lock").insert(node.node, client.clone());
        Ok(client)
    }

    /// Joins at node `id`, following at most [`REDIRECTS_MAX`] redirects (to the first node each
    /// names).
    pub async fn join_at(&self, id: u64, event: u64, token: &str) -> Result<Placed, RoomError> {
        let mut node = id;
        let mut client = self.client(id).ok_or_else(|| RoomError::Setup(format!("no connection to node {id}")))?;
        for _ in 0..=REDIRECTS_MAX {
            let mut fan = client.open_fan().await?;
            match join(&mut fan, event, token).await {
                Ok(joined) => return Ok(Placed { node, fan, joined }),
                Err(RoomError::Redirected { nodes, detail }) => {
                    let next = nodes.first().ok_or_else(|| RoomError::Refused { code: "redirect".into(), detail })?;
                    node = next.node;
                    client = self.client_for(next).await?;
                }
                Err(error) => return Err(error),
            }
        }
        Err(RoomError::Setup(format!("more than {REDIRECTS_MAX} redirects from node {id}")))
    }

    /// Closes every connection.
    pub fn close(&self) {
        self.clients.lock().expect("room pool lock").values().for_each(RoomClient::close);
    }
}

/// A fan in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub ticket: String,
    pub place: Place,
    pub presale: bool,
    /// `ahead` of the position that followed the ticket, if one did (an admission or a lapse
    /// that followed it is left on the stream).
    pub first_position: Option<u64>,
}

/// An admission as a waiting fan receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// For the `Admission-Token` header.
    pub token: String,
    /// When it ends, ms since the epoch.
    pub expires_at: u64,
    /// `ahead` of every position received while waiting, in order.
    pub positions: Vec<u64>,
}

/// Joins `event` as the fan `token` names: hello, the challenge solved, join, the ticket (or
/// the ticket at once, for a fan this node already holds).
pub async fn join(fan: &mut FanStream, event: u64, token: &str) -> Result<Joined, RoomError> {
    fan.send(&ClientMsg::Hello { event, token: token.into(), ticket: None }).await?;
    let answer_timeout = Duration::from_millis(ANSWER_TIMEOUT_MS);
    let ticket = match fan.recv(answer_timeout).await? {
        ServerMsg::Challenge { challenge, bits } => {
            let answer = solve(&challenge, bits);
            fan.send(&ClientMsg::Join { challenge, answer }).await?;
            fan.recv(answer_timeout).await?
        }
        other => other,
    };
    ticketed(fan, ticket).await
}

/// Takes a fan back to its place with its ticket (on any node).
pub async fn resume(fan: &mut FanStream, event: u64, token: &str, ticket: &str) -> Result<Joined, RoomError> {
    fan.send(&ClientMsg::Hello { event, token: token.into(), ticket: Some(ticket.into()) }).await?;
    let answer = fan.recv(Duration::from_millis(ANSWER_TIMEOUT_MS)).await?;
    ticketed(fan, answer).await
}

/// The fan's place from the node's answer, and the position that follows it if any.
async fn ticketed(fan: &mut FanStream, answer: ServerMsg) -> Result<Joined, RoomError> {
    let (ticket, place, presale) = match answer {
        ServerMsg::Ticket { ticket, place, presale } => (ticket, place, presale),
        ServerMsg::Error { code, detail } => return Err(RoomError::Refused { code, detail }),
        ServerMsg::Redirect { nodes, detail } => return Err(RoomError::Redirected { nodes, detail }),
        other => return Err(RoomError::Unexpected(Box::new(other))),
    };
    let first_position = match fan.recv(Duration::from_millis(FOLLOW_UP_TIMEOUT_MS)).await {
        Ok(ServerMsg::Position { ahead, .. }) => Some(ahead),
        Ok(other) => {
            fan.unread(other);
            None
        }
        Err(RoomError::Timeout(_)) => None,
        Err(error) => return Err(error),
    };
    Ok(Joined { ticket, place, presale, first_position })
}

/// Waits (at most `timeout`) for the fan's admission, saying it is still there every
/// [`HEARTBEAT_INTERVAL_MS`]; positions are noted, anything else ends the wait.
pub async fn wait_admitted(fan: &mut FanStream, timeout: Duration) -> Result<Admission, RoomError> {
    let deadline = Instant::now() + timeout;
    let mut positions = Vec::new();
    let mut heartbeat_at = Instant::now() + Duration::from_millis(HEARTBEAT_INTERVAL_MS);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(RoomError::Timeout(timeout.as_millis() as u64));
        }
        if now >= heartbeat_at {
            fan.send(&ClientMsg::Heartbeat).await?;
            heartbeat_at = now + Duration::from_millis(HEARTBEAT_INTERVAL_MS);
        }
        let wait = deadline.min(heartbeat_at) - now;
        match fan.recv(wait).await {
            Ok(ServerMsg::Admitted { admission_token, expires_at }) => {
                return Ok(Admission { token: admission_token, expires_at, positions })
            }
            Ok(ServerMsg::Position { ahead, .. }) => positions.push(ahead),
            Ok(ServerMsg::Error { code, detail }) => return Err(RoomError::Refused { code, detail }),
            Ok(other) => return Err(RoomError::Unexpected(Box::new(other))),
            Err(RoomError::Timeout(_)) => {}
            Err(error) => return Err(error),
        }
    }
}

/// Clock uncertainty under which a node issues on-sale places (it redirects fans above it).
pub const ISSUE_UNCERTAINTY_MS_MAX: u64 = 49;

/// Waits (at most `within`) until every node of `cluster` reports the room of `event` with a clock
/// in step with the others' closely enough to issue on-sale places (before, a node may send fans
/// elsewhere).
pub async fn wait_clocks_in_step<L>(cluster: &Cluster<L>, event: u64, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let room = get_room(cluster, event).await?;
        let nodes = room["nodes"].as_array().cloned().unwrap_or_default();
        let in_step = nodes.len() == cluster.nodes.len()
            && nodes.iter().all(|n| n["uncertaintyMs"].as_u64().is_some_and(|u| u <= ISSUE_UNCERTAINTY_MS_MAX));
        if in_step {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("the nodes' room clocks never got in step: {room}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `PUT /admin/events/{event}/waiting-room` through the first running node: the room as the
/// admin API answers.
pub async fn put_room<L>(cluster: &Cluster<L>, event: u64, settings: Value) -> anyhow::Result<Value> {
    let path = format!("/admin/events/{event}/waiting-room");
    cluster.admin_send(first_running(cluster)?, reqwest::Method::PUT, &path, settings).await
}

/// `GET /admin/events/{event}/waiting-room` through the first running node.
pub async fn get_room<L>(cluster: &Cluster<L>, event: u64) -> anyhow::Result<Value> {
    cluster.admin_get(first_running(cluster)?, &format!("/admin/events/{event}/waiting-room")).await
}

fn first_running<L>(cluster: &Cluster<L>) -> anyhow::Result<u64> {
    cluster.running().first().copied().ok_or_else(|| anyhow!("no node of the cluster runs"))
}

/// `GET /events/{event}/waiting-room` through node `id`: where fans join.
pub async fn room_info<L>(cluster: &Cluster<L>, id: u64, event: u64) -> anyhow::Result<RoomInfo> {
    let url = format!("{}/events/{event}/waiting-room", cluster.url(id));
    let response = cluster.http.get(url).send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("GET /events/{event}/waiting-room on node {id}: {status} {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// The public view of the room once it lists `nodes_min` nodes (they report once a second after
/// they find the room), waiting at most `within`.
pub async fn room_info_when<L>(
    cluster: &Cluster<L>,
    event: u64,
    nodes_min: usize,
    within: Duration,
) -> anyhow::Result<RoomInfo> {
    let deadline = Instant::now() + within;
    loop {
        let read = room_info(cluster, first_running(cluster)?, event).await;
        match read {
            Ok(info) if info.nodes.len() >= nodes_min => return Ok(info),
            _ if Instant::now() > deadline => bail!("the room of event {event} listed no {nodes_min} nodes: {read:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Holds `tickets` as `fan` on `event` through `base`, with an admission token if given.
pub async fn hold_admitted(
    fan: &Fan,
    base: &str,
    event: u64,
    tickets: &[u32],
    admission_token: Option<&str>,
) -> anyhow::Result<Answer> {
    let url = format!("{base}/events/{event}/bookings");
    let mut request = fan.http.post(url).bearer_auth(&fan.token).json(&json!({"ticketIds": tickets}));
    if let Some(token) = admission_token {
        request = request.header(ADMISSION_TOKEN_HEADER, token);
    }
    answer(request.send().await?).await
}

/// Spearman's rank correlation of two rankings of the same items (ranks 0..n, no ties).
pub fn spearman(a: &[u64], b: &[u64]) -> f64 {
    assert_eq!(a.len(), b.len(), "two rankings of the same items");
    let n = a.len() as f64;
    let d2: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

/// Ranks (0..n) of `keys` in ascending order.
pub fn ranks<K: Ord>(keys: &[K]) -> Vec<u64> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
    let mut ranks = vec![0; keys.len()];
    for (rank, index) in order.into_iter().enumerate() {
        ranks[index] = rank as u64;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_written_and_read_as_the_protocol_has_them() {
        let hello = ClientMsg::Hello { event: 4, token: "t".into(), ticket: None };
        assert_eq!(serde_json::to_string(&hello).unwrap(), r#"{"type":"hello","event":4,"token":"t","ticket":null}"#);
        let join = ClientMsg::Join { challenge: "c".into(), answer: 7 };
        assert_eq!(serde_json::to_string(&join).unwrap(), r#"{"type":"join","challenge":"c","answer":7}"#);
        assert_eq!(serde_json::to_string(&ClientMsg::Heartbeat).unwrap(), r#"{"type":"heartbeat"}"#);
        let admitted: ServerMsg =
            serde_json::from_str(r#"{"type":"admitted","admissionToken":"a","expiresAt":5}"#).unwrap();
        assert_eq!(admitted, ServerMsg::Admitted { admission_token: "a".into(), expires_at: 5 });
        let position: ServerMsg = serde_json::from_str(
            r#"{"type":"position","ahead":3,"waitSeconds":null,"note":null,"onSaleAt":9,"paused":false}"#,
        )
        .unwrap();
        assert!(matches!(position, ServerMsg::Position { ahead: 3, on_sale_at: 9, .. }));
    }

    #[test]
    fn places_compare_field_by_field() {
        let pre = Place { class: 0, primary: u64::MAX, node: 9, seq: 9 };
        let early = Place { class: 1, primary: 5, node: 3, seq: 7 };
        let late = Place { class: 1, primary: 6, node: 1, seq: 0 };
        assert!(pre < early && early < late);
        assert!(early < Place { seq: 8, ..early });
    }

    #[test]
    fn a_fan_token_is_signed_claims() {
        let token = fan_token("secret", 42, 1_000);
        let (payload, mac) = token.split_once('.').unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(payload).unwrap(), br#"{"uid":42,"exp":1000}"#);
        assert_eq!(URL_SAFE_NO_PAD.decode(mac).unwrap().len(), 32);
        assert_ne!(fan_token("other", 42, 1_000), token);
    }

    #[test]
    fn a_solved_challenge_has_its_zero_bits() {
        let answer = solve("c1.abc.def", 8);
        assert!(solves("c1.abc.def", answer, 8));
        assert!((0..answer).all(|x| !solves("c1.abc.def", x, 8)), "the first answer");
        assert_eq!(solve("anything", 0), 0);
        assert_eq!(leading_zero_bits(&[0, 0b0001_0000]), 11);
    }

    #[test]
    fn admission_claims_are_read_from_the_token() {
        let claims = r#"{"ev":4,"uid":9,"pl":{"class":1,"primary":5,"node":2,"seq":3},"exp":77}"#;
        let token = format!("a1.{}.mac", URL_SAFE_NO_PAD.encode(claims));
        let read = AdmissionClaims::read(&token).unwrap();
        assert_eq!((read.event, read.user, read.expires_at), (4, 9, 77));
        assert_eq!(read.place, Place { class: 1, primary: 5, node: 2, seq: 3 });
        assert_eq!(AdmissionClaims::read("junk"), None);
    }
}

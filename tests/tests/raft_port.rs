//! A node's raft port is closed to strangers: on a real cluster, a client that does not speak
//! TLS, one whose certificate another CA issued, one with a real certificate that names another
//! node than its hello claims (a stolen key), or one naming a node outside the cluster gets
//! nothing back and replaces no link; a claimed 512 MiB frame, before or after a valid hello,
//! costs the node no such allocation. Throughout, the cluster keeps committing holds.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{Cluster, Settings, StatusCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What a refused connection may take to be closed: the node's handshake deadline (3 s by
/// default) and some.
const CLOSED_WITHIN: Duration = Duration::from_secs(6);
/// A frame length far beyond anything a stranger should make the node hold.
const CLAIMED_BYTES: u32 = 512 << 20;
/// How much a node's memory may grow while strangers claim 512 MiB frames: far less than one.
const GROWTH_BYTES_MAX: u64 = 96 << 20;

/// A hello frame as the transport encodes it (`raft::wire`): `[u32 length][u64 id][u8 kind]`
/// big endian, then bincode's `Request::Hello { from, cluster }` (variant 0 as u32, the id as
/// u64, the name as u64 length and bytes, little endian).
fn hello(from: u64) -> Vec<u8> {
    let cluster = pki::NAME_SUFFIX.as_bytes();
    let mut body = 0u64.to_be_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&from.to_le_bytes());
    body.extend_from_slice(&(cluster.len() as u64).to_le_bytes());
    body.extend_from_slice(cluster);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Everything the connection gives until it is closed (an error counts as closed).
async fn rest<R: AsyncRead + Unpin>(mut stream: R) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + CLOSED_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection was left open for {CLOSED_WITHIN:?}"),
        }
    }
}

/// A TLS client presenting `cert` and `key` (PEM) and trusting `ca` (PEM) for the server.
fn client(ca: &str, cert: &str, key: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    TlsConnector::from(Arc::new(config))
}

/// The cluster's CA, and a client with node `id`'s own certificate and key from the cluster's
/// folder.
fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn node_client(cluster: &Cluster, id: u64) -> TlsConnector {
    let dir = cluster.certs_dir();
    client(&read(&dir, "ca.crt"), &read(&dir, &format!("node-{id}.crt")), &read(&dir, &format!("node-{id}.key")))
}

/// Connects with TLS to node `to`'s raft port, checking that it is node `to`. `None` when the
/// handshake fails.
async fn tls(cluster: &Cluster, client: &TlsConnector, to: u64) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(&cluster.node(to).raft_addr).await.unwrap();
    let name = ServerName::try_from(pki::node_name(to)).unwrap();
    client.connect(name, tcp).await.ok()
}

/// Sends `bytes` on a TLS connection and returns what comes back until it closes (nothing, for
/// a refused one; a failed handshake counts as nothing).
async fn tls_exchange(cluster: &Cluster, client: &TlsConnector, to: u64, bytes: &[u8]) -> Vec<u8> {
    let Some(mut stream) = tls(cluster, client, to).await else { return Vec::new() };
    // TLS 1.3: the server judges the client's certificate after the client's last flight, so a
    // refusal may show only here.
    if stream.write_all(bytes).await.is_err() || stream.flush().await.is_err() {
        return Vec::new();
    }
    rest(stream).await
}

/// A fan holds a seat through node `via`: the cluster commits.
async fn holds(cluster: &Cluster, event: u64, via: u64, ticket: u32) {
    let fan = cluster.fan(via, format!("fan{ticket}")).await.unwrap();
    let answer = fan.hold(&cluster.url(via), event, &[ticket]).await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED, "a hold through node {via}: {:?}", answer.body);
}

fn log_lines(cluster: &Cluster, id: u64, needle: &str) -> usize {
    std::fs::read_to_string(cluster.log_path(id)).unwrap().lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_get_nothing_and_replace_no_link() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = cluster.seed_event(100).await.unwrap()["id"].as_u64().unwrap();
    holds(&cluster, event, 1, 0).await;

    // No TLS: a hello in the clear, from a node of the cluster, gets not a byte.
    for to in [2, 3] {
        let mut raw = TcpStream::connect(&cluster.node(to).raft_addr).await.unwrap();
        raw.write_all(&hello(1)).await.unwrap();
        assert!(rest(raw).await.is_empty(), "a plain hello to node {to} gets nothing");
    }

    // Another CA's certificate for node 1: the handshake fails, nothing comes.
    let foreign = pki::Authority::generate().unwrap();
    let forged = foreign.issue(1).unwrap();
    let ca = read(&cluster.certs_dir(), "ca.crt");
    let got = tls_exchange(&cluster, &client(&ca, &forged.cert, &forged.key), 3, &hello(1)).await;
    assert!(got.is_empty(), "another CA's certificate gets nothing: {got:?}");

    // Node 2's real certificate and key, claiming to be node 1: refused.
    let stolen = node_client(&cluster, 2);
    let got = tls_exchange(&cluster, &stolen, 3, &hello(1)).await;
    assert!(got.is_empty(), "node 2's certificate saying it is node 1 gets nothing: {got:?}");

    // A certificate from the cluster's CA naming node 9, not of the cluster: refused, whoever
    // it says it is.
    let authority = pki::Authority::read(&cluster.certs_dir()).unwrap();
    let outsider = authority.issue(9).unwrap();
    let outsider = client(&ca, &outsider.cert, &outsider.key);
    for claim in [9, 1] {
        let got = tls_exchange(&cluster, &outsider, 3, &hello(claim)).await;
        assert!(got.is_empty(), "node 9's certificate saying it is node {claim} gets nothing: {got:?}");
    }

    // Claimed 512 MiB frames: in the clear, and after a valid handshake before the hello.
    let (rss, vm) = (cluster.rss_bytes(3).unwrap(), cluster.virtual_bytes(3).unwrap());
    let mut claims = Vec::new();
    for _ in 0..8 {
        let mut raw = TcpStream::connect(&cluster.node(3).raft_addr).await.unwrap();
        raw.write_all(&CLAIMED_BYTES.to_be_bytes()).await.unwrap();
        claims.push(tokio::spawn(rest(raw)));
        let mut claim = CLAIMED_BYTES.to_be_bytes().to_vec();
        claim.extend_from_slice(&[7u8; 16 << 10]);
        claims.push(tokio::spawn({
            let outsider = outsider.clone();
            let addr = cluster.node(3).raft_addr.clone();
            async move {
                let tcp = TcpStream::connect(&addr).await.unwrap();
                let name = ServerName::try_from(pki::node_name(3)).unwrap();
                let Ok(mut stream) = outsider.connect(name, tcp).await else { return Vec::new() };
                let _ = stream.write_all(&claim).await;
                rest(stream).await
            }
        }));
    }
    for claim in claims {
        assert!(claim.await.unwrap().is_empty(), "a claimed 512 MiB frame gets nothing");
    }
    let (rss_after, vm_after) = (cluster.rss_bytes(3).unwrap(), cluster.virtual_bytes(3).unwrap());
    eprintln!("node 3: rss {rss} -> {rss_after} bytes, virtual {vm} -> {vm_after} bytes");
    assert!(rss_after < rss + GROWTH_BYTES_MAX, "rss grew from {rss} to {rss_after}");
    assert!(vm_after < vm + GROWTH_BYTES_MAX, "virtual memory grew from {vm} to {vm_after}");

    // Twenty more refusals from this address within the period are counted, not logged.
    let before = log_lines(&cluster, 3, "raft link refused");
    for _ in 0..20 {
        let mut raw = TcpStream::connect(&cluster.node(3).raft_addr).await.unwrap();
        raw.write_all(&hello(1)).await.unwrap();
        rest(raw).await;
    }
    let after = log_lines(&cluster, 3, "raft link refused");
    assert!(before >= 1, "a refusal is logged");
    assert!(after <= before + 1, "refusals are logged once per address per period: {before} then {after}");

    // No link was replaced, and the cluster commits through every node.
    for id in 1..=3 {
        assert_eq!(log_lines(&cluster, id, "raft connection replaced"), 0, "node {id} replaced a link");
        holds(&cluster, event, id, id as u32).await;
    }
    let line = std::fs::read_to_string(cluster.log_path(3)).unwrap();
    let line = line.lines().find(|l| l.contains("raft link refused")).unwrap();
    eprintln!("a refusal as node 3 logs it: {line}");
}

/// After a valid hello (node 1's own certificate and key, with node 1 not running, so that no
/// real link competes), a frame that claims 512 MiB and brings a few MiB costs the node what
/// arrived, and the link is closed when it goes idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claimed_frame_after_the_hello_costs_what_arrives() {
    let settings = Settings { not_started: vec![1], ..Settings::default() };
    let cluster = Cluster::start(settings).await.unwrap();
    let event = cluster.seed_event(100).await.unwrap()["id"].as_u64().unwrap();
    holds(&cluster, event, 2, 0).await;
    let (rss, vm) = (cluster.rss_bytes(2).unwrap(), cluster.virtual_bytes(2).unwrap());
    let mut stream = tls(&cluster, &node_client(&cluster, 1), 2).await.expect("node 1's certificate is good");
    stream.write_all(&hello(1)).await.unwrap();
    stream.flush().await.unwrap();
    let mut len = [0u8; 4];
    tokio::time::timeout(CLOSED_WITHIN, stream.read_exact(&mut len)).await.unwrap().unwrap();
    assert!(u32::from_be_bytes(len) < 64, "node 2 answers node 1's hello");
    stream.write_all(&CLAIMED_BYTES.to_be_bytes()).await.unwrap();
    for _ in 0..8 {
        stream.write_all(&[7u8; 1 << 20]).await.unwrap();
    }
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_after, vm_after) = (cluster.rss_bytes(2).unwrap(), cluster.virtual_bytes(2).unwrap());
    eprintln!("node 2: rss {rss} -> {rss_after} bytes, virtual {vm} -> {vm_after} bytes");
    assert!(rss_after < rss + GROWTH_BYTES_MAX, "rss grew from {rss} to {rss_after}");
    assert!(vm_after < vm + GROWTH_BYTES_MAX, "virtual memory grew from {vm} to {vm_after}");
    // Then nothing more: the link is closed at the idle timeout (10 s by default).
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // node 2's keepalives and raft's messages to node 1
            }
        }
    });
    assert!(closed.await.is_ok(), "a link that stalls mid-frame is closed when idle");
    holds(&cluster, event, 3, 1).await;
}

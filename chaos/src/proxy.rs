//! A fault-injecting proxy on one link between two nodes.
//!
//! Nodes talk raft over one TLS connection per pair; the runner points the dialing node at a
//! proxy that forwards to the other. The nodes check each other's certificates by node id, not
//! address, so the proxy passes TLS through untouched. It reads whole TLS records
//! (`[u8 type][u16 version][u16 length][body]`), so it can delay messages (deliver each record
//! `delay` after it arrived, in order), lose them, or cut the link (close its connections and
//! refuse new ones until healed). Behind TLS one record cannot be lost alone (the receiver sees
//! the gap and fails the connection), so a lost record ends its connection: everything in flight
//! on it is lost and the nodes dial again. It knows nothing else of the protocol.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Bytes of a TLS record's header.
const RECORD_HEADER_BYTES: usize = 5;
/// Largest TLS record body (2^14 plus the most a cipher adds, RFC 8446 5.2).
const RECORD_BODY_BYTES_MAX: usize = (1 << 14) + 256;
/// Records in flight inside the proxy per direction (delayed ones wait here).
const RECORDS_IN_FLIGHT_MAX: usize = 4_096;

/// What is being done to a link right now. Shared by the runner and the link's pumps.
#[derive(Debug, Default)]
pub struct LinkFaults {
    cut: AtomicBool,
    delay_ms: AtomicU64,
    /// Frames lost out of every thousand.
    loss_per_mille: AtomicU32,
    /// Bumped on every cut, so that connections that predate it close.
    cuts: watch::Sender<u64>,
}

impl LinkFaults {
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn set_delay(&self, delay_ms: u64) {
        self.delay_ms.store(delay_ms, Ordering::SeqCst);
    }

    pub fn set_loss(&self, per_mille: u32) {
        self.loss_per_mille.store(per_mille.min(1000), Ordering::SeqCst);
    }

    /// Back to a healthy link.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.set_delay(0);
        self.set_loss(0);
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

/// A running proxy: listens on `addr` and forwards to `target`.
pub struct Proxy {
    pub addr: String,
    pub faults: Arc<LinkFaults>,
}

impl Proxy {
    pub async fn start(target: String) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let faults = Arc::new(LinkFaults::default());
        tokio::spawn(accept(listener, target, faults.clone()));
        Ok(Proxy { addr, faults })
    }
}

async fn accept(listener: TcpListener, target: String, faults: Arc<LinkFaults>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        if faults.is_cut() {
            drop(client);
            continue;
        }
        let (target, faults) = (target.clone(), faults.clone());
        tokio::spawn(async move {
            if let Ok(server) = TcpStream::connect(&target).await {
                forward(client, server, faults).await;
            }
        });
    }
}

/// Forwards both ways until either side closes or the link is cut.
async fn forward(client: TcpStream, server: TcpStream, faults: Arc<LinkFaults>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut cuts = faults.cuts.subscribe();
    cuts.mark_unchanged();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, faults.clone()) => {}
        _ = pump(server_read, client_write, faults.clone()) => {}
        _ = cuts.changed() => {}
    }
}

/// Moves records from `from` to `to`, delaying them and losing them (with their connection) as
/// the faults say.
async fn pump(from: OwnedReadHalf, to: OwnedWriteHalf, faults: Arc<LinkFaults>) {
    let (queue, records) = mpsc::channel::<(Instant, Vec<u8>)>(RECORDS_IN_FLIGHT_MAX);
    tokio::select! {
        _ = read_records(from, queue, faults) => {}
        _ = deliver(to, records) => {}
    }
}

async fn read_records(mut from: OwnedReadHalf, queue: mpsc::Sender<(Instant, Vec<u8>)>, faults: Arc<LinkFaults>) {
    loop {
        let mut header = [0u8; RECORD_HEADER_BYTES];
        if from.read_exact(&mut header).await.is_err() {
            return;
        }
        let n = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if n > RECORD_BODY_BYTES_MAX {
            return;
        }
        let mut record = vec![0u8; RECORD_HEADER_BYTES + n];
        record[..RECORD_HEADER_BYTES].copy_from_slice(&header);
        if from.read_exact(&mut record[RECORD_HEADER_BYTES..]).await.is_err() || faults.is_cut() {
            return;
        }
        let loss = faults.loss_per_mille.load(Ordering::SeqCst);
        if loss > 0 && rand::thread_rng().gen_range(0..1000) < loss {
            // The connection ends here: see the module's doc.
            return;
        }
        let due = Instant::now() + Duration::from_millis(faults.delay_ms.load(Ordering::SeqCst));
        if queue.send((due, record)).await.is_err() {
            return;
        }
    }
}

async fn deliver(mut to: OwnedWriteHalf, mut records: mpsc::Receiver<(Instant, Vec<u8>)>) {
    while let Some((due, record)) = records.recv().await {
        tokio::time::sleep_until(due.into()).await;
        if to.write_all(&record).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// An application-data TLS record carrying `body`.
    fn record(body: &[u8]) -> Vec<u8> {
        let mut f = vec![23, 3, 3];
        f.extend_from_slice(&(body.len() as u16).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    async fn read_record(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut header = [0u8; 5];
        tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut header)).await.ok()?.ok()?;
        let mut body = vec![0u8; u16::from_be_bytes([header[3], header[4]]) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Some(body)
    }

    #[tokio::test]
    async fn records_pass_are_delayed_lost_and_cut_as_told() {
        let proxy = Proxy::start(echo_server().await).await.unwrap();
        let mut stream = TcpStream::connect(&proxy.addr).await.unwrap();
        stream.write_all(&record(b"hello")).await.unwrap();
        assert_eq!(read_record(&mut stream).await.as_deref(), Some(&b"hello"[..]));

        proxy.faults.set_delay(150);
        let sent = Instant::now();
        stream.write_all(&record(b"slow")).await.unwrap();
        assert_eq!(read_record(&mut stream).await.as_deref(), Some(&b"slow"[..]));
        assert!(sent.elapsed() >= Duration::from_millis(300), "delayed each way");
        proxy.faults.heal();

        proxy.faults.set_loss(1000);
        stream.write_all(&record(b"lost")).await.unwrap();
        assert_eq!(read_record(&mut stream).await, None, "a lost record never arrives");
        proxy.faults.heal();
        let mut buf = [0u8; 1];
        let ended = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
        assert!(matches!(ended, Ok(Ok(0)) | Ok(Err(_))), "and ends its connection: {ended:?}");
        let mut stream = TcpStream::connect(&proxy.addr).await.unwrap();

        proxy.faults.cut();
        let _ = stream.write_all(&record(b"cut")).await;
        assert_eq!(read_record(&mut stream).await, None, "a cut link closes");
        let mut again = TcpStream::connect(&proxy.addr).await.unwrap();
        let _ = again.write_all(&record(b"refused")).await;
        assert_eq!(read_record(&mut again).await, None, "and refuses new connections");
        proxy.faults.heal();
        let mut healed = TcpStream::connect(&proxy.addr).await.unwrap();
        healed.write_all(&record(b"back")).await.unwrap();
        assert_eq!(read_record(&mut healed).await.as_deref(), Some(&b"back"[..]));
    }
}

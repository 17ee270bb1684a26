//! A fault-injecting proxy on one link between two nodes.
//!
//! Nodes talk raft over one TCP connection per pair; the runner points the dialing node at a
//! proxy that forwards to the other. The proxy reads whole frames (`[u32 length][body]`, the
//! transport's framing), so it can lose a message (drop a frame), delay messages (deliver each
//! frame `delay` after it arrived, in order), or cut the link (close its connections and refuse
//! new ones until healed). It knows nothing else of the protocol.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Largest frame the proxy forwards, as the nodes' own limit.
const FRAME_BYTES_MAX: u32 = 512 << 20;
/// Frames in flight inside the proxy per direction (delayed ones wait here).
const FRAMES_IN_FLIGHT_MAX: usize = 4_096;

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

/// Moves frames from `from` to `to`, losing and delaying them as the faults say.
async fn pump(from: OwnedReadHalf, to: OwnedWriteHalf, faults: Arc<LinkFaults>) {
    let (queue, frames) = mpsc::channel::<(Instant, Vec<u8>)>(FRAMES_IN_FLIGHT_MAX);
    tokio::select! {
        _ = read_frames(from, queue, faults) => {}
        _ = deliver(to, frames) => {}
    }
}

async fn read_frames(mut from: OwnedReadHalf, queue: mpsc::Sender<(Instant, Vec<u8>)>, faults: Arc<LinkFaults>) {
    loop {
        let mut len = [0u8; 4];
        if from.read_exact(&mut len).await.is_err() {
            return;
        }
        let n = u32::from_be_bytes(len);
        if n > FRAME_BYTES_MAX {
            return;
        }
        let mut frame = vec![0u8; 4 + n as usize];
        frame[..4].copy_from_slice(&len);
        if from.read_exact(&mut frame[4..]).await.is_err() || faults.is_cut() {
            return;
        }
        let loss = faults.loss_per_mille.load(Ordering::SeqCst);
        if loss > 0 && rand::thread_rng().gen_range(0..1000) < loss {
            continue;
        }
        let due = Instant::now() + Duration::from_millis(faults.delay_ms.load(Ordering::SeqCst));
        if queue.send((due, frame)).await.is_err() {
            return;
        }
    }
}

async fn deliver(mut to: OwnedWriteHalf, mut frames: mpsc::Receiver<(Instant, Vec<u8>)>) {
    while let Some((due, frame)) = frames.recv().await {
        tokio::time::sleep_until(due.into()).await;
        if to.write_all(&frame).await.is_err() {
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

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut len)).await.ok()?.ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Some(body)
    }

    #[tokio::test]
    async fn frames_pass_are_delayed_lost_and_cut_as_told() {
        let proxy = Proxy::start(echo_server().await).await.unwrap();
        let mut stream = TcpStream::connect(&proxy.addr).await.unwrap();
        stream.write_all(&frame(b"hello")).await.unwrap();
        assert_eq!(read_frame(&mut stream).await.as_deref(), Some(&b"hello"[..]));

        proxy.faults.set_delay(150);
        let sent = Instant::now();
        stream.write_all(&frame(b"slow")).await.unwrap();
        assert_eq!(read_frame(&mut stream).await.as_deref(), Some(&b"slow"[..]));
        assert!(sent.elapsed() >= Duration::from_millis(300), "delayed each way");
        proxy.faults.heal();

        proxy.faults.set_loss(1000);
        stream.write_all(&frame(b"lost")).await.unwrap();
        assert_eq!(read_frame(&mut stream).await, None, "a lost frame never arrives");
        proxy.faults.heal();

        proxy.faults.cut();
        let _ = stream.write_all(&frame(b"cut")).await;
        assert_eq!(read_frame(&mut stream).await, None, "a cut link closes");
        let mut again = TcpStream::connect(&proxy.addr).await.unwrap();
        let _ = again.write_all(&frame(b"refused")).await;
        assert_eq!(read_frame(&mut again).await, None, "and refuses new connections");
        proxy.faults.heal();
        let mut healed = TcpStream::connect(&proxy.addr).await.unwrap();
        healed.write_all(&frame(b"back")).await.unwrap();
        assert_eq!(read_frame(&mut healed).await.as_deref(), Some(&b"back"[..]));
    }
}

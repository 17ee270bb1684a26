//! Redis as a peer: one `redis-server` on loopback, a client that holds a ticket the way a
//! Redis user would, as a lock with `SET ticket:{id} {holder} NX PX {ttl}`, and the benchmark's
//! worker over that client.
//!
//! Everything lives in `<dir>/redis`, emptied first. Durability is Redis's shipped default (RDB
//! snapshots, no append-only file: acknowledged holds may be lost on a crash) or, asked for,
//! `appendonly yes` with `appendfsync always` (every write fsynced before it is answered).
//! The client speaks RESP by hand over one TCP connection: the replies it needs are a few bytes.

use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{find_binary, free_port, kill_group, log_tail, wait_until, Holder};
use crate::load::{Answer, Worker};

/// Bound on the server answering PING after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `redis-server`, killed on drop.
pub struct Redis {
    /// `127.0.0.1:port`.
    pub addr: String,
    child: Child,
}

impl Redis {
    /// Starts `redis-server` in `<dir>/redis`: default persistence, or `appendfsync always` when
    /// `fsync_always`; returns once it answers PING.
    pub async fn start(dir: &Path, fsync_always: bool) -> anyhow::Result<Redis> {
        let bin = find_binary("redis-server")
            .ok_or_else(|| anyhow!("redis-server not found: install redis-server (apt-get install -y redis-server)"))?;
        let root = dir.join("redis");
        super::fresh_dir(&root)?;
        let (port, log) = (free_port()?, root.join("redis.log"));
        let mut cmd = Command::new(bin);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--daemonize", "no", "--protected-mode", "no"]);
        cmd.arg("--dir").arg(&root).arg("--logfile").arg(&log);
        // Without these, redis-server keeps its compiled-in defaults: RDB snapshots, no AOF.
        if fsync_always {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        }
        // Its own process group, so that drop kills it whatever it forks (RDB saves).
        let child = cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        let mut redis = Redis { addr: format!("127.0.0.1:{port}"), child: child.context("cannot start redis-server")? };
        redis.wait_ready(&log).await?;
        Ok(redis)
    }

    async fn wait_ready(&mut self, log: &Path) -> anyhow::Result<()> {
        let addr = self.addr.clone();
        let child = &mut self.child;
        wait_until(START_TIMEOUT, "redis-server did not answer PING", &[log], || {
            let exited = child.try_wait();
            let addr = &addr;
            async move {
                if let Some(status) = exited? {
                    bail!("redis-server exited ({status}): {}", log_tail(log));
                }
                let Ok(mut conn) = RedisHold::connect(addr).await else { return Ok(false) };
                // Until it has loaded its data, redis answers -LOADING: not ready yet.
                Ok(conn.call(&["PING"]).await.is_ok_and(|r| r == Reply::Simple("PONG".into())))
            }
        })
        .await
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// One RESP reply, as far as these commands need.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
}

/// One client connection.
pub struct RedisHold {
    conn: BufReader<TcpStream>,
    /// The encoded command, reused from one command to the next.
    buf: Vec<u8>,
}

impl RedisHold {
    /// Opens one connection to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> anyhow::Result<RedisHold> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to redis at {addr}"))?;
        // One small request at a time: Nagle would add delay, not save packets.
        stream.set_nodelay(true)?;
        Ok(RedisHold { conn: BufReader::new(stream), buf: Vec::with_capacity(128) })
    }

    /// Holds `ticket` for `holder` for `ttl_ms` (forever when `None`): `Ok(true)` when granted,
    /// `Ok(false)` when the key exists, that is someone holds it.
    pub async fn hold(&mut self, ticket: u32, holder: u32, ttl_ms: Option<u64>) -> anyhow::Result<bool> {
        let (key, value) = (format!("ticket:{ticket}"), holder.to_string());
        let reply = match ttl_ms {
            Some(ttl) => self.call(&["SET", &key, &value, "NX", "PX", &ttl.to_string()]).await?,
            None => self.call(&["SET", &key, &value, "NX"]).await?,
        };
        match reply {
            Reply::Simple(ok) if ok == "OK" => Ok(true),
            Reply::Nil => Ok(false),
            other => bail!("unexpected reply to SET NX: {other:?}"),
        }
    }

    /// Empties the server (between scenarios).
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        match self.call(&["FLUSHALL"]).await? {
            Reply::Simple(ok) if ok == "OK" => Ok(()),
            other => bail!("unexpected reply to FLUSHALL: {other:?}"),
        }
    }

    /// How many keys there are, that is tickets held (expired holds go once Redis notices).
    pub async fn count(&mut self) -> anyhow::Result<u64> {
        match self.call(&["DBSIZE"]).await? {
            Reply::Int(n) => Ok(u64::try_from(n)?),
            other => bail!("unexpected reply to DBSIZE: {other:?}"),
        }
    }

    /// Sends one command and reads its reply; an error reply is an error.
    pub async fn call(&mut self, args: &[&str]) -> anyhow::Result<Reply> {
        self.buf.clear();
        let _ = write!(self.buf, "*{}\r\n", args.len());
        for arg in args {
            let _ = write!(self.buf, "${}\r\n{arg}\r\n", arg.len());
        }
        self.conn.get_mut().write_all(&self.buf).await.context("cannot write to redis")?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let mut line = String::new();
        if self.conn.read_line(&mut line).await.context("cannot read from redis")? == 0 {
            bail!("redis closed the connection");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at_checked(1).ok_or_else(|| anyhow!("empty reply from redis"))?;
        match kind {
            "+" => Ok(Reply::Simple(rest.to_string())),
            "-" => bail!("redis error: {rest}"),
            ":" => Ok(Reply::Int(rest.parse().with_context(|| format!("bad integer reply {line:?}"))?)),
            // RESP2's null bulk string and RESP3's null.
            "_" => Ok(Reply::Nil),
            "$" if rest == "-1" => Ok(Reply::Nil),
            "$" => self.read_bulk(rest).await,
            _ => bail!("unsupported reply from redis: {line:?}"),
        }
    }

    async fn read_bulk(&mut self, len: &str) -> anyhow::Result<Reply> {
        let len: usize = len.parse().with_context(|| format!("bad bulk length {len:?}"))?;
        let mut data = vec![0; len + 2];
        self.conn.read_exact(&mut data).await.context("cannot read from redis")?;
        data.truncate(len);
        Ok(Reply::Bulk(data))
    }
}

/// A Redis client holding one random ticket per request with the lock a Redis user would take:
/// `SET ticket NX PX ttl`.
pub struct RedisWorker {
    redis: RedisHold,
    holder: Holder,
}

impl Worker for RedisWorker {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        let (ticket, holder) = (self.holder.next_ticket(), &self.holder);
        Ok(if self.redis.hold(ticket, holder.id, holder.ttl_ms).await? { Answer::Granted } else { Answer::Refused })
    }
}

/// A worker for each holder, over a connection of its own.
pub async fn redis_workers(redis: &Redis, holders: impl Iterator<Item = Holder>) -> anyhow::Result<Vec<RedisWorker>> {
    let mut workers = Vec::new();
    for holder in holders {
        workers.push(RedisWorker { redis: RedisHold::connect(&redis.addr).await?, holder });
    }
    Ok(workers)
}

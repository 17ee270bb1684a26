//! etcd as a peer: a cluster of `etcd` members (Debian's `etcd-server`, etcd 3.4) on loopback, a
//! client that holds tickets the way an etcd user would, with a lease for the hold's time and one
//! transaction that creates every ticket's key if none of them exists yet, and the benchmark's
//! worker over that client.
//!
//! Everything lives in `<dir>/etcd`, emptied first: `member-{n}/` is member n's data folder,
//! `member-{n}.log` its log. etcd keeps its defaults, fsync included: a hold is answered once a
//! majority of the members wrote it to disk. The client speaks etcd's v3 JSON gateway (the gRPC
//! API transcoded to JSON over HTTP/1.1) with `reqwest`, no gRPC crate: keys and values are
//! base64, 64-bit integers come back as strings, and fields at their default (a count of 0, a
//! transaction that did not succeed) are left out.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use super::{find_binary, free_port, kill_group, log_tail, wait_until, Holder};
use crate::load::{Answer, Worker};

/// Bound on every member answering a linearizable read after the members are started.
const START_TIMEOUT_MS: u64 = 30_000;
/// Bound on one readiness probe, so that a member that accepts but does not answer (no leader
/// yet) is asked again rather than waited on.
const PROBE_TIMEOUT_MS: u64 = 1_000;
/// etcd's default `--max-txn-ops`: a hold of more tickets than this is refused by the server.
const TXN_OPS_MAX: usize = 128;

/// A running etcd cluster, every member killed on drop.
pub struct Etcd {
    /// Each member's client URL, `http://127.0.0.1:port`, member n at n.
    pub urls: Vec<String>,
    http: reqwest::Client,
    members: Vec<Child>,
    logs: Vec<PathBuf>,
}

impl Etcd {
    /// Starts `members` etcd members as one new cluster in `<dir>/etcd`, each on its own client
    /// and peer ports; returns once every member answers a linearizable read (the cluster has a
    /// leader and a quorum).
    pub async fn start(dir: &Path, members: usize) -> anyhow::Result<Etcd> {
        if members == 0 {
            bail!("an etcd cluster needs at least one member");
        }
        let bin = find_binary("etcd").ok_or_else(|| {
            anyhow!(
                "etcd not found: install Debian's etcd-server (apt-get install -y etcd-server, or run scripts/bench)"
            )
        })?;
        let root = dir.join("etcd");
        super::fresh_dir(&root)?;
        let ports = distinct_ports(2 * members)?;
        let (client_ports, peer_ports) = ports.split_at(members);
        let name = |n: usize| format!("member-{n}");
        let peer_url = |n: usize| format!("http://127.0.0.1:{}", peer_ports[n]);
        let cluster: Vec<String> = (0..members).map(|n| format!("{}={}", name(n), peer_url(n))).collect();
        let cluster = cluster.join(",");
        // Members of another cluster that reuse a port later cannot join this one by mistake.
        let token = format!("boxoffice-bench-{}-{}", std::process::id(), peer_ports[0]);
        let mut etcd = Etcd {
            urls: client_ports.iter().map(|port| format!("http://127.0.0.1:{port}")).collect(),
            // Every worker's requests share this pool: one connection per request in flight.
            http: reqwest::Client::builder().pool_max_idle_per_host(1024).build()?,
            members: Vec::new(),
            logs: Vec::new(),
        };
        for n in 0..members {
            let log = root.join(format!("{}.log", name(n)));
            let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
            let mut cmd = Command::new(&bin);
            cmd.arg("--name").arg(name(n)).arg("--data-dir").arg(root.join(name(n)));
            cmd.args(["--listen-client-urls", &etcd.urls[n], "--advertise-client-urls", &etcd.urls[n]]);
            cmd.args(["--listen-peer-urls", &peer_url(n), "--initial-advertise-peer-urls", &peer_url(n)]);
            cmd.args(["--initial-cluster", &cluster, "--initial-cluster-state", "new"]);
            cmd.args(["--initial-cluster-token", &token]);
            // etcd reads ETCD_* variables as flags, and stops when one is also given on the command
            // line: none from our environment, but the one that lets it run on a less common
            // architecture (not needed on amd64).
            for (key, _) in std::env::vars_os() {
                let key_text = key.to_string_lossy();
                if key_text.starts_with("ETCD_") && key_text != "ETCD_UNSUPPORTED_ARCH" {
                    cmd.env_remove(&key);
                }
            }
            // Its own process group, so that drop kills whatever it runs.
            let child = cmd.process_group(0).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).spawn();
            etcd.members.push(child.context("cannot start etcd")?);
            etcd.logs.push(log);
        }
        etcd.wait_ready().await?;
        Ok(etcd)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let probe = reqwest::Client::builder().timeout(Duration::from_millis(PROBE_TIMEOUT_MS)).build()?;
        let logs: Vec<&Path> = self.logs.iter().map(PathBuf::as_path).collect();
        let (urls, members) = (&self.urls, &mut self.members);
        let timeout = Duration::from_millis(START_TIMEOUT_MS);
        wait_until(timeout, "the etcd cluster did not answer reads on every member", &logs, || {
            let exited = members.iter_mut().enumerate().find_map(|(n, child)| match child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(Ok((n, status))),
                Err(e) => Some(Err(e)),
            });
            let (probe, logs) = (&probe, &logs);
            async move {
                if let Some(exited) = exited {
                    let (n, status) = exited?;
                    bail!("etcd member {n} exited ({status}): {}", log_tail(logs[n]));
                }
                for url in urls {
                    // A linearizable read: answered only once the cluster has a leader and a quorum.
                    let range = json!({ "key": base64(b"/ready") });
                    if call(probe, url, "/v3/kv/range", &range).await.is_err() {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        })
        .await
    }

    /// How many of `event`'s tickets are held: its keys, counted by the cluster (holds whose lease
    /// expired are gone once the leader revoked the lease).
    pub async fn held(&self, event: u64) -> anyhow::Result<u64> {
        let (key, range_end) = event_range(event);
        let range = json!({ "key": key, "range_end": range_end, "count_only": true });
        let answer = call(&self.http, &self.urls[0], "/v3/kv/range", &range).await?;
        Ok(u64::try_from(int(&answer, "count")?)?)
    }

    /// Frees every ticket of `event` (between scenarios); returns how many were held.
    pub async fn clear(&self, event: u64) -> anyhow::Result<u64> {
        let (key, range_end) = event_range(event);
        let delete = json!({ "key": key, "range_end": range_end });
        let answer = call(&self.http, &self.urls[0], "/v3/kv/deleterange", &delete).await?;
        Ok(u64::try_from(int(&answer, "deleted")?)?)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for member in &mut self.members {
            kill_group(member);
        }
    }
}

/// `count` free loopback ports, all different (each is released before the next is asked for,
/// so the kernel could hand one out twice).
fn distinct_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let port = free_port()?;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// A ticket's key: `/events/{event}/tickets/{ticket}`.
fn ticket_key(event: u64, ticket: u32) -> String {
    format!("/events/{event}/tickets/{ticket}")
}

/// The base64 key and range end that cover every ticket key of `event`: the prefix, and the
/// prefix with its last byte plus one (`/` + 1 is `0`), etcd's way of saying "with this prefix".
fn event_range(event: u64) -> (String, String) {
    (base64(format!("/events/{event}/tickets/").as_bytes()), base64(format!("/events/{event}/tickets0").as_bytes()))
}

/// POSTs `body` to `path` at the member `url`; anything but a 200 with JSON that has etcd's
/// response header is an error, with what etcd said.
async fn call(http: &reqwest::Client, url: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
    let response = http.post(format!("{url}{path}")).json(body).send().await;
    let response = response.with_context(|| format!("cannot reach etcd at {url}"))?;
    let status = response.status();
    let text = response.text().await.with_context(|| format!("cannot read etcd's answer to {path}"))?;
    if !status.is_success() {
        bail!("etcd at {url} answered {status} to {path}: {text}");
    }
    let answer: Value =
        serde_json::from_str(&text).with_context(|| format!("bad json from etcd for {path}: {text}"))?;
    if answer.get("header").is_none() {
        bail!("etcd's answer to {path} has no header: {text}");
    }
    Ok(answer)
}

/// A 64-bit integer field of an answer: the gateway writes them as strings, and leaves them out
/// when they are 0.
fn int(answer: &Value, field: &str) -> anyhow::Result<i64> {
    match answer.get(field) {
        None => Ok(0),
        Some(Value::String(text)) => text.parse().with_context(|| format!("bad integer {field} {text:?} from etcd")),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| anyhow!("bad integer {field} {n} from etcd")),
        Some(other) => bail!("bad integer {field} {other} from etcd"),
    }
}

/// Standard base64 with padding, as the gateway wants keys and values (the only encoding this
/// client needs: it never reads a key or a value back).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = byte(0) << 16 | byte(1) << 8 | byte(2);
        for i in 0..4 {
            // A chunk of k bytes makes k + 1 characters; `=` pads the group to 4.
            out.push(if i <= chunk.len() { ALPHABET[(group >> (18 - 6 * i)) as usize & 63] as char } else { '=' });
        }
    }
    out
}

/// An etcd client holding tickets for one holder, through one member as a user's client does
/// with its endpoint list; the benchmark's worker, one random ticket (by default) per hold.
pub struct EtcdHold {
    http: reqwest::Client,
    /// The member this client talks to, `http://127.0.0.1:port`.
    url: String,
    holder: Holder,
    event: u64,
    /// Tickets asked for in each hold, all or none (at most etcd's 128 operations a transaction).
    pub tickets_per_hold: u32,
    /// The hold's lease TTL in seconds: the holder's TTL rounded up, at least 1; no lease (the
    /// hold lasts forever) when the holder's holds do.
    ttl_s: Option<u64>,
}

impl EtcdHold {
    /// A client of `etcd`'s member `member` (mod the members) holding for `holder` in `event`.
    pub fn new(etcd: &Etcd, member: usize, holder: Holder, event: u64) -> EtcdHold {
        let url = etcd.urls[member % etcd.urls.len()].clone();
        let ttl_s = holder.ttl_ms.map(|ms| ms.div_ceil(1000).max(1));
        EtcdHold { http: etcd.http.clone(), url, holder, event, tickets_per_hold: 1, ttl_s }
    }

    /// Holds every one of `tickets` for this client's holder, all or none: `Ok(true)` when
    /// granted, `Ok(false)` when one of them is already held.
    ///
    /// With a TTL, two round trips: a lease grant, then the transaction (each one a raft round
    /// fsynced on a majority). Without, the transaction alone.
    pub async fn hold(&self, tickets: &[u32]) -> anyhow::Result<bool> {
        if tickets.is_empty() || tickets.len() > TXN_OPS_MAX {
            bail!("a hold asks for 1 to {TXN_OPS_MAX} tickets, not {}", tickets.len());
        }
        let lease = match self.ttl_s {
            Some(ttl_s) => Some(self.grant(ttl_s).await?),
            None => None,
        };
        let value = base64(self.holder.id.to_string().as_bytes());
        let (mut compare, mut success) = (Vec::with_capacity(tickets.len()), Vec::with_capacity(tickets.len()));
        for &ticket in tickets {
            let key = base64(ticket_key(self.event, ticket).as_bytes());
            // Create revision 0: the key does not exist, that is nobody holds the ticket.
            compare.push(json!({ "key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0" }));
            let mut put = json!({ "key": key, "value": value });
            if let Some(lease) = lease {
                put["lease"] = Value::String(lease.to_string());
            }
            success.push(json!({ "request_put": put }));
        }
        let answer =
            call(&self.http, &self.url, "/v3/kv/txn", &json!({ "compare": compare, "success": success })).await?;
        // A refused hold leaves its lease unused: we let it expire rather than revoke it, as a lean
        // client would, which keeps a hold at two round trips; the cost is one more lease for the
        // leader to expire (etcd revokes at most 1,000 expired leases a second).
        match answer.get("succeeded") {
            None => Ok(false),
            Some(Value::Bool(succeeded)) => Ok(*succeeded),
            Some(other) => bail!("bad succeeded {other} in etcd's answer to a hold"),
        }
    }

    /// Grants a lease of `ttl_s` seconds; etcd raises a TTL below its minimum (2 s with the default
    /// election timeout) to that minimum.
    async fn grant(&self, ttl_s: u64) -> anyhow::Result<i64> {
        let answer = call(&self.http, &self.url, "/v3/lease/grant", &json!({ "TTL": ttl_s })).await?;
        if let Some(error) = answer.get("error").and_then(Value::as_str).filter(|error| !error.is_empty()) {
            bail!("etcd refused a lease: {error}");
        }
        match int(&answer, "ID")? {
            0 => bail!("etcd granted no lease: {answer}"),
            id => Ok(id),
        }
    }

    /// The tickets of the next hold: `tickets_per_hold` different ones drawn by the holder (etcd
    /// refuses a transaction that puts one key twice).
    fn draw(&mut self) -> Vec<u32> {
        let count = self.tickets_per_hold.min(self.holder.tickets).max(1) as usize;
        let mut tickets = Vec::with_capacity(count);
        while tickets.len() < count {
            let ticket = self.holder.next_ticket();
            if !tickets.contains(&ticket) {
                tickets.push(ticket);
            }
        }
        tickets
    }
}

impl Worker for EtcdHold {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        let tickets = self.draw();
        Ok(if self.hold(&tickets).await? { Answer::Granted } else { Answer::Refused })
    }
}

/// A worker for each holder in `event`, client n talking to member n mod the members, as clients
/// given the cluster's endpoint list spread over it. Holds last the holders' TTL (a lease each),
/// or forever when they have none.
pub fn etcd_workers(etcd: &Etcd, holders: impl Iterator<Item = Holder>, event: u64) -> Vec<EtcdHold> {
    holders.enumerate().map(|(n, holder)| EtcdHold::new(etcd, n, holder, event)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_as_the_standard_says() {
        let cases =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn an_event_range_covers_its_tickets_only() {
        let (key, end) = event_range(12);
        assert_eq!(key, base64(b"/events/12/tickets/"));
        assert_eq!(end, base64(b"/events/12/tickets0"));
        let inside = ticket_key(12, 99);
        assert!("/events/12/tickets/" <= inside.as_str() && inside.as_str() < "/events/12/tickets0");
        assert!(ticket_key(120, 0).as_str() >= "/events/12/tickets0", "event 120 is not in event 12's range");
    }
}

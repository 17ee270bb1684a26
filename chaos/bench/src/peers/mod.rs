//! The benchmark's peers: what a user would pick instead of Boxoffice, each started from nothing
//! on loopback in a folder of its own, on a private port, and stopped when dropped; each module
//! also holds its system's clients and the load engine's workers over them.
//!
//! - [`postgres`]: PostgreSQL 15 alone or with synchronous standbys, holds as one `UPDATE`
//!   (purchases as a second one);
//! - [`redis`]: Redis with default persistence or `appendfsync always`, holds as `SET NX PX`;
//! - [`nginx`]: nginx serving the event page as a static file (the ceiling for reads);
//! - [`etcd`]: an etcd 3.4 cluster (three members in use), holds as a lease and one transaction
//!   creating every held ticket's key if none exists.

pub mod etcd;
pub mod nginx;
pub mod postgres;
pub mod redis;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One holding client's side of a sell-out against a peer: who holds, which tickets it draws
/// (at random in `0..tickets`, from a source seeded by the holder), and how long its holds last.
pub struct Holder {
    /// The holder's number, as the peer records it.
    pub id: u32,
    tickets: u32,
    /// How long a hold lasts; forever when `None`.
    pub ttl_ms: Option<u64>,
    rng: StdRng,
}

impl Holder {
    /// One holder per client, client `n` being holder `n` drawing from seed `n`: every system
    /// sees the same clients asking for the same tickets in the same order.
    pub fn clients(clients: usize, tickets: u32, ttl_ms: Option<u64>) -> impl Iterator<Item = Holder> {
        (0..clients).map(move |n| Holder { id: n as u32, tickets, ttl_ms, rng: StdRng::seed_from_u64(n as u64) })
    }

    /// The next ticket to ask for.
    pub fn next_ticket(&mut self) -> u32 {
        self.rng.gen_range(0..self.tickets)
    }
}

/// A free loopback port (bound, read, released: the peer binds it right after).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether this process runs as root (peers that refuse root, or drop to `nobody`, need care).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Finds an executable on `PATH`, then in the sbin folders a non-root `PATH` often lacks.
pub(crate) fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbins = ["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path).chain(sbins).map(|dir| dir.join(name)).find(|file| is_executable(file))
}

fn is_executable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    file.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The last lines of a log file, to say why a peer did not come up.
pub(crate) fn log_tail(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.is_empty() {
        format!("({} is empty)", file.display())
    } else {
        format!("last lines of {}:\n{tail}", file.display())
    }
}

/// Polls `ready` every 50 ms until it says yes or errs; after `timeout`, fails saying `what` did
/// not happen, with the tails of `logs` as they are then.
pub(crate) async fn wait_until<F, Fut>(
    timeout: Duration,
    what: &str,
    logs: &[&Path],
    mut ready: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if ready().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let tails: Vec<String> = logs.iter().map(|log| log_tail(log)).collect();
            bail!("{what} after {} s\n{}", timeout.as_secs(), tails.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates `dir` (and its parents), emptying what a previous run left in it.
pub(crate) fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Kills a child and its whole process group (it was started as a group leader), then reaps it.
pub(crate) fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill has no memory preconditions; a stale group id only yields ESRCH.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

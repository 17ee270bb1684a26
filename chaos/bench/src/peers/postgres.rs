//! PostgreSQL 15 as a peer: a primary on loopback, optionally with synchronous standbys, a
//! client that holds a ticket the way a user would with one table and one `UPDATE`, and the
//! benchmark's workers over that client (holds, the mixed scenario's reads, purchases).
//!
//! Everything lives in `<dir>/postgres`, emptied first: `primary/` and `s1/`, `s2/`… are data
//! folders, `*.log` their server logs. PostgreSQL refuses to run as root, so as root the folders
//! belong to the `postgres` system user and every server binary runs through `runuser`.
//! Durability is the default and said explicitly: `fsync = on`, `synchronous_commit = on`, and
//! with standbys `FIRST n (s1, …)`, so every commit is flushed on the primary and every standby.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio_postgres::{Client, NoTls, Statement};

use super::{free_port, is_root, log_tail, wait_until, Holder};
use crate::load::{Answer, Worker};

/// The system user that owns the data folders when we run as root.
const PG_USER: &str = "postgres";
/// Where Debian puts PostgreSQL 15's server binaries when `pg_config` is absent.
const DEBIAN_BINDIR: &str = "/usr/lib/postgresql/15/bin";
/// Bound on starting one server and on the standbys becoming synchronous.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One server: the primary or a standby.
struct Server {
    data: PathBuf,
    log: PathBuf,
    port: u16,
}

/// A running primary (and standbys); all are stopped on drop.
pub struct Postgres {
    /// Connection string of the `bench` database on the primary.
    pub dsn: String,
    /// Connection strings of the `bench` database on each standby (read-only).
    pub standby_dsns: Vec<String>,
    bin: PathBuf,
    /// Started servers, primary first: only these are stopped on drop.
    servers: Vec<Server>,
}

fn dsn(port: u16, db: &str) -> String {
    format!("host=127.0.0.1 port={port} user={PG_USER} dbname={db}")
}

impl Postgres {
    /// Starts a primary with `standbys` synchronous standbys (0 for none) in `<dir>/postgres`,
    /// creates the `bench` database, and with standbys waits until all of them confirm commits.
    pub async fn start(dir: &Path, standbys: usize) -> anyhow::Result<Postgres> {
        let bin = bindir()?;
        let root = prepare_root(dir)?;
        let primary = Server { data: root.join("primary"), log: root.join("primary.log"), port: free_port()? };
        let mut pg = Postgres { dsn: dsn(primary.port, "bench"), standby_dsns: Vec::new(), bin, servers: Vec::new() };
        pg.run(Command::new(pg.bin.join("initdb")).args(initdb_args(&primary.data)), "initdb").await?;
        append(&primary.data.join("postgresql.conf"), &primary_conf(primary.port, standbys))?;
        pg.start_server(primary).await?;
        let admin = connect(&dsn(pg.servers[0].port, "postgres")).await?;
        admin.batch_execute("CREATE DATABASE bench").await.context("cannot create the bench database")?;
        for n in 1..=standbys {
            pg.start_standby(&root, n).await?;
        }
        if standbys > 0 {
            pg.require_sync(&admin, standbys).await?;
        }
        Ok(pg)
    }

    /// Takes a base backup of the primary as standby `s{n}` and starts it.
    async fn start_standby(&mut self, root: &Path, n: usize) -> anyhow::Result<()> {
        let name = format!("s{n}");
        let standby = Server { data: root.join(&name), log: root.join(format!("{name}.log")), port: free_port()? };
        let primary_port = self.servers[0].port;
        let conninfo = format!("host=127.0.0.1 port={primary_port} user={PG_USER} application_name={name}");
        let mut backup = Command::new(self.bin.join("pg_basebackup"));
        backup.arg("-D").arg(&standby.data).args(["-R", "-X", "stream", "-c", "fast", "-d", &conninfo]);
        self.run(&mut backup, &format!("pg_basebackup of {name}")).await?;
        // -R wrote standby.signal and primary_conninfo (with application_name, the name that
        // synchronous_standby_names lists) to postgresql.auto.conf. The copied postgresql.conf
        // names the primary's port: later lines win.
        let conf = format!("\n# standby {name}\nport = {}\nhot_standby = on\nsynchronous_commit = on\n", standby.port);
        append(&standby.data.join("postgresql.conf"), &conf)?;
        self.standby_dsns.push(dsn(standby.port, "bench"));
        self.start_server(standby).await
    }

    /// Makes every standby synchronous, then waits until the primary reports them so.
    async fn require_sync(&self, admin: &Client, standbys: usize) -> anyhow::Result<()> {
        let names: Vec<String> = (1..=standbys).map(|n| format!("s{n}")).collect();
        let line = format!("synchronous_standby_names = 'FIRST {standbys} ({})'\n", names.join(", "));
        // Set only now: with it set, CREATE DATABASE would have waited for standbys not yet there.
        append(&self.servers[0].data.join("postgresql.conf"), &line)?;
        admin.batch_execute("SELECT pg_reload_conf()").await?;
        let what = format!("the {standbys} standbys did not become synchronous");
        let logs: Vec<&Path> = self.servers.iter().map(|s| s.log.as_path()).collect();
        wait_until(START_TIMEOUT, &what, &logs, || async { Ok(sync_standbys_of(admin).await? == standbys as u64) })
            .await
    }

    /// How many standbys the primary's `pg_stat_replication` shows with `sync_state = 'sync'`.
    pub async fn sync_standbys(&self) -> anyhow::Result<u64> {
        sync_standbys_of(&connect(&self.dsn).await?).await
    }

    /// (Re)creates `tickets` with ids `0..tickets`, all available, and `events` with row 1
    /// whose body is `event_json`.
    pub async fn load(&self, tickets: u32, event_json: &str) -> anyhow::Result<()> {
        let client = connect(&self.dsn).await?;
        client
            .batch_execute(
                "DROP TABLE IF EXISTS tickets, events;
                 CREATE TABLE tickets (id integer PRIMARY KEY, status text NOT NULL, holder integer, expires_at timestamptz);
                 CREATE TABLE events (id integer PRIMARY KEY, body text NOT NULL);",
            )
            .await
            .context("cannot create the tables")?;
        let last = i32::try_from(tickets).context("too many tickets for an integer id")? - 1;
        let insert = "INSERT INTO tickets (id, status) SELECT n, 'available' FROM generate_series(0, $1) AS n";
        client.execute(insert, &[&last]).await.context("cannot insert the tickets")?;
        client.execute("INSERT INTO events (id, body) VALUES (1, $1)", &[&event_json]).await?;
        // Fresh statistics, so that the first holds already use the primary key.
        client.batch_execute("ANALYZE tickets, events").await?;
        Ok(())
    }

    /// Starts one server and records it to be stopped.
    async fn start_server(&mut self, server: Server) -> anyhow::Result<()> {
        let mut start = Command::new(self.bin.join("pg_ctl"));
        start.arg("-D").arg(&server.data).arg("-l").arg(&server.log).args(["-w", "-t", "60", "start"]);
        let log = server.log.clone();
        // Recorded even if pg_ctl fails: it may have left a server running all the same.
        self.servers.push(server);
        self.run(&mut start, "pg_ctl start").await.map_err(|e| anyhow!("{e}\n{}", log_tail(&log)))
    }

    /// Runs a server binary (as the `postgres` user when root) and fails with its output.
    async fn run(&self, cmd: &mut Command, what: &str) -> anyhow::Result<()> {
        // Through tokio: initdb and pg_basebackup take seconds, which must not stall a worker.
        let out = tokio::process::Command::from(as_pg_user(cmd)).output().await;
        let out = out.with_context(|| format!("cannot run {what}"))?;
        if !out.status.success() {
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            bail!("{what} failed ({}):\n{}\n{}", out.status, stdout.trim(), stderr.trim());
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        for server in self.servers.iter().rev() {
            let mut stop = Command::new(self.bin.join("pg_ctl"));
            stop.arg("-D").arg(&server.data).args(["-m", "immediate", "-w", "-t", "10", "stop"]);
            let stopped = as_pg_user(&mut stop).stdout(Stdio::null()).stderr(Stdio::null()).status();
            if !stopped.is_ok_and(|s| s.success()) {
                kill_postmaster(&server.data);
            }
        }
    }
}

/// Last resort when pg_ctl cannot stop a server: SIGKILL the pid in `postmaster.pid`.
fn kill_postmaster(data: &Path) {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
    if let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill has no memory preconditions; a stale pid only yields ESRCH.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The folder of the server binaries: `pg_config --bindir`, else Debian's PostgreSQL 15 folder.
fn bindir() -> anyhow::Result<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let candidates = from_pg_config.into_iter().chain([PathBuf::from(DEBIAN_BINDIR)]);
    let has_all =
        |dir: &PathBuf| ["initdb", "pg_ctl", "postgres", "pg_basebackup"].iter().all(|b| dir.join(b).is_file());
    candidates.into_iter().find(has_all).ok_or_else(|| {
        anyhow!("postgres binaries not found (no initdb via pg_config --bindir or in {DEBIAN_BINDIR}): install postgresql-15")
    })
}

/// Empties and creates `<dir>/postgres`, owned by the `postgres` user when we are root.
fn prepare_root(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join("postgres");
    super::fresh_dir(&root)?;
    if !is_root() {
        return Ok(root);
    }
    ensure_pg_user()?;
    // The postgres user must be able to walk into `dir`; its parents are the caller's business.
    for folder in [dir, &root] {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot chmod 0755 {}", folder.display()))?;
    }
    let (uid, gid) = pg_user_ids()?;
    std::os::unix::fs::chown(&root, Some(uid), Some(gid))
        .with_context(|| format!("cannot give {} to the {PG_USER} user", root.display()))?;
    let reachable = Command::new("runuser").args(["-u", PG_USER, "--", "test", "-w"]).arg(&root).status();
    if !reachable.is_ok_and(|s| s.success()) {
        bail!("{} is not reachable by the {PG_USER} user: chmod o+x its parent folders", root.display());
    }
    Ok(root)
}

/// Creates the `postgres` system user if the package did not.
fn ensure_pg_user() -> anyhow::Result<()> {
    if pg_user_ids().is_ok() {
        return Ok(());
    }
    let made = Command::new("useradd").args(["--system", "--user-group", "--no-create-home", PG_USER]).status();
    if !made.is_ok_and(|s| s.success()) {
        bail!("no {PG_USER} user and `useradd --system {PG_USER}` failed: create it, or install postgresql-15");
    }
    Ok(())
}

/// The uid and gid of the `postgres` user, from `id`.
fn pg_user_ids() -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, PG_USER]).output().context("cannot run id")?;
        if !out.status.success() {
            bail!("no {PG_USER} user");
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().context("cannot read the output of id")
    };
    Ok((id("-u")?, id("-g")?))
}

/// Wraps a command to run as the `postgres` user when we are root; runs it from `/` either way,
/// since the server binaries complain when that user cannot read the current folder.
fn as_pg_user(cmd: &mut Command) -> Command {
    let mut wrapped = if is_root() {
        let mut runuser = Command::new("runuser");
        runuser.args(["-u", PG_USER, "--"]).arg(cmd.get_program()).args(cmd.get_args());
        runuser
    } else {
        let mut direct = Command::new(cmd.get_program());
        direct.args(cmd.get_args());
        direct
    };
    wrapped.current_dir("/").stdin(Stdio::null());
    wrapped
}

fn initdb_args(data: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["-D".into(), data.into()];
    // Trust is enough on loopback; --no-sync only skips syncing the fresh template files.
    for arg in ["-U", PG_USER, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"] {
        args.push(arg.into());
    }
    args
}

/// The primary's settings, appended to postgresql.conf (later lines win).
fn primary_conf(port: u16, standbys: usize) -> String {
    let mut conf = format!(
        "\n# boxoffice bench\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
         unix_socket_directories = ''\nfsync = on\nsynchronous_commit = on\n\
         max_connections = 200\nshared_buffers = 256MB\n"
    );
    if standbys > 0 {
        let _ = write!(conf, "wal_level = replica\nmax_wal_senders = 10\n");
    }
    conf
}

fn append(file: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .with_context(|| format!("cannot open {}", file.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", file.display()))
}

async fn sync_standbys_of(client: &Client) -> anyhow::Result<u64> {
    let row = client.query_one("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'", &[]).await?;
    Ok(u64::try_from(row.get::<_, i64>(0))?)
}

/// Connects and drives the connection on a task of its own.
async fn connect(dsn: &str) -> anyhow::Result<Client> {
    let (client, connection) =
        tokio_postgres::connect(dsn, NoTls).await.with_context(|| format!("cannot connect to postgres at {dsn}"))?;
    // Its error, if any, is also the error of the client's next query: nothing to report here.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// One client connection, holding tickets the way a PostgreSQL user would: an implicit status
/// with expiration (a ticket is free when available or when its hold has expired).
pub struct PgHold {
    client: Client,
    hold_for: Statement,
    hold_forever: Statement,
    sell: Statement,
    read_event: Statement,
}

impl PgHold {
    /// Connects to the primary's `bench` database and prepares the statements (after `load`).
    pub async fn connect(pg: &Postgres) -> anyhow::Result<PgHold> {
        let client = connect(&pg.dsn).await?;
        // A ticket is free when available, or when its hold has expired: no sweeper needed.
        let free = "WHERE id = $1 AND (status = 'available' OR (status = 'reserved' AND expires_at < now()))";
        let set = "UPDATE tickets SET status = 'reserved', holder = $2";
        let hold_for = format!("{set}, expires_at = now() + $3::bigint * interval '1 millisecond' {free}");
        let hold_forever = format!("{set}, expires_at = 'infinity' {free}");
        Ok(PgHold {
            hold_for: client.prepare(&hold_for).await.context("cannot prepare the hold: run load first")?,
            hold_forever: client.prepare(&hold_forever).await?,
            sell: client
                .prepare("UPDATE tickets SET status = 'sold' WHERE id = $1 AND holder = $2 AND status = 'reserved'")
                .await?,
            read_event: client.prepare("SELECT body FROM events WHERE id = 1").await?,
            client,
        })
    }

    /// Holds `ticket` for `holder` for `ttl_ms` (forever when `None`), in its own transaction:
    /// `Ok(true)` when granted, `Ok(false)` when someone else holds it.
    pub async fn hold(&self, ticket: u32, holder: u32, ttl_ms: Option<u64>) -> anyhow::Result<bool> {
        let (ticket, holder) = (i32::try_from(ticket)?, i32::try_from(holder)?);
        let updated = match ttl_ms {
            Some(ttl) => self.client.execute(&self.hold_for, &[&ticket, &holder, &i64::try_from(ttl)?]).await?,
            None => self.client.execute(&self.hold_forever, &[&ticket, &holder]).await?,
        };
        Ok(updated == 1)
    }

    /// Marks a ticket `holder` holds as sold (the payment of a purchase), in its own
    /// transaction: `Ok(false)` when `holder` does not hold it.
    pub async fn sell(&self, ticket: u32, holder: u32) -> anyhow::Result<bool> {
        let (ticket, holder) = (i32::try_from(ticket)?, i32::try_from(holder)?);
        Ok(self.client.execute(&self.sell, &[&ticket, &holder]).await? == 1)
    }

    /// Tickets whose status is 'sold'.
    pub async fn sold_count(&self) -> anyhow::Result<u64> {
        let row = self.client.query_one("SELECT count(*) FROM tickets WHERE status = 'sold'", &[]).await?;
        Ok(u64::try_from(row.get::<_, i64>(0))?)
    }

    /// Reads the event's page (the JSON body of row 1) and returns its length in bytes.
    pub async fn read_event(&self) -> anyhow::Result<usize> {
        let row = self.client.query_one(&self.read_event, &[]).await?;
        Ok(row.get::<_, &str>(0).len())
    }

    /// Tickets whose status is 'reserved', including expired holds nobody has taken over yet.
    pub async fn reserved_count(&self) -> anyhow::Result<u64> {
        let row = self.client.query_one("SELECT count(*) FROM tickets WHERE status = 'reserved'", &[]).await?;
        Ok(u64::try_from(row.get::<_, i64>(0))?)
    }
}

/// A PostgreSQL client holding one random ticket per request with the
/// implicit-status-with-expiration `UPDATE` a PostgreSQL user would write.
pub struct PgWorker {
    pg: PgHold,
    holder: Holder,
}

impl PgWorker {
    /// Holds one random ticket: the ticket when granted.
    async fn hold_one(&mut self) -> anyhow::Result<Option<u32>> {
        let ticket = self.holder.next_ticket();
        Ok(self.pg.hold(ticket, self.holder.id, self.holder.ttl_ms).await?.then_some(ticket))
    }
}

impl Worker for PgWorker {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        Ok(if self.hold_one().await?.is_some() { Answer::Granted } else { Answer::Refused })
    }
}

/// A worker for each holder, over a connection of its own.
pub async fn pg_workers(pg: &Postgres, holders: impl Iterator<Item = Holder>) -> anyhow::Result<Vec<PgWorker>> {
    let mut workers = Vec::new();
    for holder in holders {
        workers.push(PgWorker { pg: PgHold::connect(pg).await?, holder });
    }
    Ok(workers)
}

/// The mixed scenario's read against PostgreSQL: the event's row.
pub struct PgRead {
    pg: PgHold,
}

impl PgRead {
    pub async fn connect(pg: &Postgres) -> anyhow::Result<PgRead> {
        Ok(PgRead { pg: PgHold::connect(pg).await? })
    }
}

impl Worker for PgRead {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        self.pg.read_event().await?;
        Ok(Answer::Read)
    }
}

/// A PostgreSQL client buying one random ticket at a time: holds it (the same `UPDATE` as
/// [`PgWorker`], never expiring), then marks it sold in a second transaction.
pub struct PgBuy {
    hold: PgWorker,
    /// The ticket held and not paid for yet: the next request sells it.
    unpaid: Option<u32>,
}

impl PgBuy {
    pub fn new(hold: PgWorker) -> PgBuy {
        PgBuy { hold, unpaid: None }
    }
}

impl Worker for PgBuy {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        let hold = &mut self.hold;
        if let Some(ticket) = self.unpaid.take() {
            if !hold.pg.sell(ticket, hold.holder.id).await? {
                bail!("ticket {ticket} was held by client {} and could not be sold", hold.holder.id);
            }
            return Ok(Answer::Paid);
        }
        self.unpaid = hold.hold_one().await?;
        Ok(if self.unpaid.is_some() { Answer::Granted } else { Answer::Refused })
    }
}

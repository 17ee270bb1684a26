//! `boxoffice-bench`: Boxoffice against PostgreSQL, Redis and nginx, in one run on this machine.
//!
//! Scenarios (see docs/benchmarks/README.md):
//! - a1, sell-out: a hot event of `--tickets` tickets, `--clients` clients each holding one
//!   random ticket per request, holds never expire, until every ticket is held;
//! - a2, churn: the same, holds end after 2 s, for `--churn` seconds;
//! - b, the event page: Boxoffice's gateway with a warm cache against nginx serving the same
//!   JSON as a static file (measured with wrk);
//! - c, a mixed on-sale: 100 reads of the event page for every hold.
//!
//! Each system runs alone (the others are stopped), and the results go to `--out` as
//! `results.json`, `results.md` and `results.svg`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use chaos::bench::boxoffice::{Boxoffice, Buy, Get, Hold, Mixed};
use chaos::bench::load::{self, Answer, LoadResult, LoadSpec, Worker};
use chaos::bench::peers::nginx::Nginx;
use chaos::bench::peers::postgres::{PgHold, Postgres};
use chaos::bench::peers::redis::{Redis, RedisHold};
use chaos::bench::report::{self, Row};
use clap::Parser;

#[derive(Parser, Clone)]
#[command(name = "boxoffice-bench", about = "Boxoffice against PostgreSQL, Redis and nginx, in one run")]
struct Options {
    /// Where results.json, results.md and results.svg go (named after `--name`).
    #[arg(long, default_value = "docs/benchmarks")]
    out: PathBuf,
    /// Where the systems keep their data while they run (PostgreSQL's server user must be able
    /// to reach it).
    #[arg(long, default_value = "/tmp/boxoffice-bench")]
    work: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    tickets: u32,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Nodes of Boxoffice's cluster (every group on every node): 3 as in the issue; 1 shows what
    /// replication costs on this machine.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=NODES_MAX))]
    nodes: u64,
    /// How long the churn scenario runs.
    #[arg(long, default_value = "30s", value_parser = model::duration::parse_ms)]
    churn: u64,
    /// How long the event page scenario runs.
    #[arg(long, default_value = "20s", value_parser = model::duration::parse_ms)]
    page: u64,
    /// How long the mixed scenario runs.
    #[arg(long, default_value = "30s", value_parser = model::duration::parse_ms)]
    mixed: u64,
    /// Longest the purchase scenario runs (it ends sooner once `PURCHASE_FILL_PERCENT` of the
    /// tickets are held).
    #[arg(long, default_value = "60s", value_parser = model::duration::parse_ms)]
    purchases: u64,
    /// Longest a sell-out may take before it is cut short (and reported as not sold out).
    #[arg(long, default_value = "15m", value_parser = model::duration::parse_ms)]
    sell_out_max: u64,
    /// Scenarios to run.
    #[arg(long, value_delimiter = ',', default_value = "a1,a2,b,c,p")]
    scenarios: Vec<String>,
    /// Systems to run: boxoffice, postgres, postgres-3, redis, redis-aof, nginx.
    #[arg(long, value_delimiter = ',', default_value = "boxoffice,postgres,postgres-3,redis,redis-aof,nginx")]
    systems: Vec<String>,
    /// The `boxoffice` binary; the one beside this binary if not given.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Events in the search benchmark's catalog.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// How long each system answers the search mix.
    #[arg(long, default_value = "20s", value_parser = model::duration::parse_ms)]
    search: u64,
    /// Clients of the search benchmark.
    #[arg(long, default_value_t = 8)]
    search_clients: usize,
    /// Searches per second, in all, of the search latency run (open loop: latency counts from
    /// when each search was due, so a system that falls behind shows it).
    #[arg(long, default_value_t = 100)]
    search_rate: u64,
    /// The name of the result files (`<name>.md`, `<name>.json`, `<name>.svg`).
    #[arg(long, default_value = "results")]
    name: String,
    /// Keep the systems' data and logs after a run that succeeded (a failed run always keeps
    /// them, to read its logs): a million-event run leaves gigabytes.
    #[arg(long)]
    keep_data: bool,
}

/// How long a hold lasts in the churn scenario.
const CHURN_TTL_MS: u64 = 2_000;
/// How long "never" is for Boxoffice's holds in the sell-out (its longest allowed hold).
const NEVER_MS: u64 = 24 * 60 * 60 * 1000;
/// The purchase scenario ends once this share of the tickets is held: every system is measured
/// over the same stretch of the on-sale, before refusals pile up (a system that sold out within
/// a fixed time would be judged on its slow tail, one that did not on its quick start).
const PURCHASE_FILL_PERCENT: u64 = 40;
/// Most nodes a benchmark cluster may have: they all share this machine.
const NODES_MAX: u64 = 5;

impl Options {
    fn runs(&self, scenario: &str, system: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario) && self.systems.iter().any(|s| s == system)
    }

    /// The purchase scenario's spec: until `PURCHASE_FILL_PERCENT` of the tickets are held, or
    /// `--purchases` is up.
    fn purchases_spec(&self, label: &str) -> LoadSpec {
        let target = u64::from(self.tickets) * PURCHASE_FILL_PERCENT / 100;
        self.spec(label, Some(self.purchases), Some(target.max(1)))
    }

    fn spec(&self, label: &str, duration_ms: Option<u64>, target: Option<u64>) -> LoadSpec {
        LoadSpec {
            label: label.into(),
            duration: Some(Duration::from_millis(duration_ms.unwrap_or(self.sell_out_max))),
            granted_target: target,
            rate_per_s: None,
            progress: true,
        }
    }
}

fn row(scenario: &str, system: &str, result: LoadResult, checked: String) -> Row {
    println!(
        "{scenario} {system}: {:.0} answered/s, {:.0} granted/s, p50 {:.2} ms, p99 {:.2} ms, {:.1} s, errors {} ({checked})",
        result.per_s, result.granted_per_s, result.p50_ms, result.p99_ms, result.elapsed_s, result.errors
    );
    Row { scenario: scenario.into(), system: system.into(), result, checked }
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    // The run is dropped when a signal wins, stopping the systems it started.
    let outcome = tokio::select! {
        outcome = run(options) => Ok(outcome),
        signal = chaos::interrupted() => Err(signal),
    };
    let outcome = outcome.unwrap_or_else(|signal| {
        eprintln!("boxoffice-bench: stopped by {signal}; the systems it started were stopped");
        std::process::exit(130);
    });
    if let Err(error) = outcome {
        eprintln!("boxoffice-bench: {error:#}");
        std::process::exit(2);
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.out)?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    std::fs::create_dir_all(&options.work)?;
    let work = std::path::absolute(&options.work)?.join(&stamp);
    let mut rows = Vec::new();
    let measured = async {
        boxoffice(&options, &work, &mut rows).await?;
        postgres(&options, &work, &mut rows, "postgres", 0).await?;
        postgres(&options, &work, &mut rows, "postgres-3", 2).await?;
        redis(&options, &work, &mut rows, "redis", false).await?;
        redis(&options, &work, &mut rows, "redis-aof", true).await?;
        search(&options, &work, &mut rows).await
    }
    .await;
    if let Err(error) = measured {
        return Err(error.context(format!("the systems' data and logs are kept in {}", work.display())));
    }
    write_results(&options, &rows, &stamp)?;
    if !options.keep_data && work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    }
    Ok(())
}

fn sibling_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().map(|dir| dir.join("boxoffice")).unwrap_or_else(|| PathBuf::from("boxoffice"))
}

/// One client per fan, each kept on one gateway, the clients spread evenly over the gateways.
fn holds(bo: &Boxoffice, tokens: &[String], event: u64, tickets: u32) -> Vec<Hold> {
    let bases = bo.bases();
    tokens
        .iter()
        .enumerate()
        .map(|(n, t)| Hold::new(&bases[n % bases.len()], event, t.clone(), tickets, n as u64))
        .collect()
}

async fn boxoffice(options: &Options, work: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let bin = options.bin.clone().unwrap_or_else(sibling_binary);
    let nodes = options.nodes;
    let system = &format!("boxoffice ({nodes} {})", if nodes == 1 { "node" } else { "nodes" });
    let n = options.tickets;
    if ["a1", "b", "c", "p"].iter().any(|s| options.runs(s, "boxoffice")) || options.runs("b", "nginx") {
        println!("starting {system}, holds never expire");
        let bo = Boxoffice::start(bin.clone(), work.join("boxoffice-a1"), nodes, n, NEVER_MS, "").await?;
        let tokens = bo.fans(options.clients).await?;
        if options.runs("a1", "boxoffice") {
            let event = bo.new_event("sell-out").await?;
            let result =
                load::run(options.spec("a1 boxoffice", None, Some(n as u64)), holds(&bo, &tokens, event, n)).await;
            let held = bo.verify(event, result.granted, false).await?;
            rows.push(row("a1", system, result, format!("{held} tickets held, each by one booking")));
        }
        if options.runs("c", "boxoffice") {
            let event = bo.new_event("mixed").await?;
            let bases = bo.bases();
            let workers: Vec<_> = holds(&bo, &tokens, event, n)
                .into_iter()
                .enumerate()
                .map(|(i, write)| {
                    let read = Get::new(&bases[i % bases.len()], format!("/events/{event}"));
                    Mixed { reads: 100, done: i as u32 % 101, read, write }
                })
                .collect();
            let result = load::run(options.spec("c boxoffice", Some(options.mixed), None), workers).await;
            let held = bo.verify(event, result.granted, false).await?;
            rows.push(row("c", system, result, format!("{held} tickets held, each by one booking")));
        }
        if options.runs("p", "boxoffice") {
            let event = bo.new_event("purchases").await?;
            let workers = holds(&bo, &tokens, event, n).into_iter().map(Buy::new).collect();
            let result = load::run(options.purchases_spec("p boxoffice"), workers).await;
            let (granted, paid) = (result.granted, result.paid);
            let sold = bo.verify_sales(event, granted, paid).await?;
            rows.push(row("p", system, result, format!("{sold} bookings confirmed, one per purchase")));
        }
        if options.runs("b", "boxoffice") || options.runs("b", "nginx") {
            page_scenario(options, work, &bo, rows).await?;
        }
    }
    if options.runs("a2", "boxoffice") {
        println!("starting {system}, holds end after {CHURN_TTL_MS} ms");
        let bo = Boxoffice::start(bin, work.join("boxoffice-a2"), nodes, n, CHURN_TTL_MS, "").await?;
        let tokens = bo.fans(options.clients).await?;
        let event = bo.new_event("churn").await?;
        let result =
            load::run(options.spec("a2 boxoffice", Some(options.churn), None), holds(&bo, &tokens, event, n)).await;
        let held = bo.verify(event, result.granted, true).await?;
        rows.push(row("a2", system, result, format!("no ticket held twice ({held} ticket rows)")));
    }
    Ok(())
}

/// b: the cached event page through the gateway, then the same bytes from nginx, both with wrk.
async fn page_scenario(options: &Options, work: &Path, bo: &Boxoffice, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let event = bo.new_event("page").await?;
    let url = format!("{}/events/{event}", bo.cluster.url(1));
    let body = bo.http.get(&url).send().await?.bytes().await?;
    if options.runs("b", "boxoffice") {
        let result = wrk("b boxoffice", &url, options.clients, options.page).await?;
        rows.push(row("b", "boxoffice gateway (cached)", result, format!("{} byte page", body.len())));
    }
    if options.runs("b", "nginx") {
        let nginx = Nginx::start(&work.join("nginx"), &format!("/events/{event}"), &body).await?;
        let result = wrk("b nginx", &nginx.url, options.clients, options.page).await?;
        rows.push(row("b", "nginx (static file)", result, format!("{} byte page", body.len())));
    }
    Ok(())
}

/// Runs wrk (two threads, `clients` connections) and reads its figures.
async fn wrk(label: &str, url: &str, clients: usize, duration_ms: u64) -> anyhow::Result<LoadResult> {
    println!("  {label}: wrk for {} s", duration_ms / 1000);
    let output = tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{clients}"), &format!("-d{}s", duration_ms / 1000), "--latency", url])
        .output()
        .await
        .context("wrk could not run: install it (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!("wrk failed: {text}");
    }
    parse_wrk(label, clients, duration_ms, &text)
}

fn wrk_ms(text: &str, key: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
    let value = line.split_whitespace().nth(1)?;
    let (number, scale) = if let Some(v) = value.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = value.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (value, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn parse_wrk(label: &str, clients: usize, duration_ms: u64, text: &str) -> anyhow::Result<LoadResult> {
    let per_s: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0);
    let elapsed_s = duration_ms as f64 / 1000.0;
    Ok(LoadResult {
        label: label.into(),
        clients,
        elapsed_s,
        requests: (per_s * elapsed_s) as u64,
        granted: 0,
        refused: 0,
        reads: (per_s * elapsed_s) as u64,
        paid: 0,
        errors,
        per_s,
        granted_per_s: 0.0,
        paid_per_s: 0.0,
        p50_ms: wrk_ms(text, "50%").unwrap_or(0.0),
        p90_ms: wrk_ms(text, "90%").unwrap_or(0.0),
        p99_ms: wrk_ms(text, "99%").unwrap_or(0.0),
        p999_ms: 0.0,
        max_ms: wrk_ms(text, "Latency").unwrap_or(0.0),
    })
}

/// A PostgreSQL client running the seed's "implicit status with expiration" update.
struct PgWorker {
    pg: PgHold,
    tickets: u32,
    holder: u32,
    ttl_ms: Option<u64>,
    rng: rand::rngs::StdRng,
}

impl PgWorker {
    /// Holds one random ticket: the ticket when granted.
    async fn hold_one(&mut self) -> anyhow::Result<Option<u32>> {
        use rand::Rng;
        let ticket = self.rng.gen_range(0..self.tickets);
        Ok(self.pg.hold(ticket, self.holder, self.ttl_ms).await?.then_some(ticket))
    }
}

impl Worker for PgWorker {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        Ok(if self.hold_one().await?.is_some() { Answer::Granted } else { Answer::Refused })
    }
}

/// The mixed scenario's read against PostgreSQL: the event's row.
struct PgRead {
    pg: PgHold,
}

impl Worker for PgRead {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        self.pg.read_event().await?;
        Ok(Answer::Read)
    }
}

async fn pg_workers(pg: &Postgres, options: &Options, ttl_ms: Option<u64>) -> anyhow::Result<Vec<PgWorker>> {
    use rand::SeedableRng;
    let mut workers = Vec::new();
    for n in 0..options.clients {
        let rng = rand::rngs::StdRng::seed_from_u64(n as u64);
        workers.push(PgWorker {
            pg: PgHold::connect(pg).await?,
            tickets: options.tickets,
            holder: n as u32,
            ttl_ms,
            rng,
        });
    }
    Ok(workers)
}

const EVENT_JSON_BYTES: usize = 2_000;

async fn postgres(
    options: &Options,
    work: &Path,
    rows: &mut Vec<Row>,
    system: &str,
    standbys: usize,
) -> anyhow::Result<()> {
    let wanted = ["a1", "a2", "c", "p"].iter().any(|s| options.runs(s, system));
    if !wanted {
        return Ok(());
    }
    let label =
        if standbys == 0 { "postgres 15".to_string() } else { format!("postgres 15 + {standbys} sync standbys") };
    println!("starting {label}");
    let pg = Postgres::start(&work.join(system), standbys).await?;
    let event_json = format!("{{\"name\":\"{}\"}}", "x".repeat(EVENT_JSON_BYTES));
    let n = options.tickets;
    if options.runs("a1", system) {
        pg.load(n, &event_json).await?;
        let result = load::run(
            options.spec(&format!("a1 {system}"), None, Some(n as u64)),
            pg_workers(&pg, options, None).await?,
        )
        .await;
        let held = PgHold::connect(&pg).await?.reserved_count().await?;
        rows.push(row("a1", &label, result, format!("{held} tickets reserved")));
    }
    if options.runs("a2", system) {
        pg.load(n, &event_json).await?;
        let result = load::run(
            options.spec(&format!("a2 {system}"), Some(options.churn), None),
            pg_workers(&pg, options, Some(CHURN_TTL_MS)).await?,
        )
        .await;
        rows.push(row("a2", &label, result, "one row per ticket".into()));
    }
    if options.runs("c", system) {
        pg.load(n, &event_json).await?;
        let mut workers = Vec::new();
        for (i, write) in pg_workers(&pg, options, None).await?.into_iter().enumerate() {
            workers.push(Mixed {
                reads: 100,
                done: i as u32 % 101,
                read: PgRead { pg: PgHold::connect(&pg).await? },
                write,
            });
        }
        let result = load::run(options.spec(&format!("c {system}"), Some(options.mixed), None), workers).await;
        rows.push(row("c", &label, result, "event row read, one row per ticket".into()));
    }
    if options.runs("p", system) {
        pg.load(n, &event_json).await?;
        let workers = pg_workers(&pg, options, None).await?.into_iter().map(|hold| PgBuy { hold, unpaid: None });
        let result = load::run(options.purchases_spec(&format!("p {system}")), workers.collect()).await;
        let sold = PgHold::connect(&pg).await?.sold_count().await?;
        if sold != result.paid {
            bail!("{} payments marked a row sold but {sold} rows are sold", result.paid);
        }
        rows.push(row("p", &label, result, format!("{sold} rows sold, one per purchase")));
    }
    Ok(())
}

/// A PostgreSQL client buying one random ticket at a time: holds it (the seed's update, never
/// expiring), then marks it sold in a second transaction.
struct PgBuy {
    hold: PgWorker,
    /// The ticket held and not paid for yet: the next request sells it.
    unpaid: Option<u32>,
}

impl Worker for PgBuy {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        let hold = &mut self.hold;
        if let Some(ticket) = self.unpaid.take() {
            if !hold.pg.sell(ticket, hold.holder).await? {
                bail!("ticket {ticket} was held by client {} and could not be sold", hold.holder);
            }
            return Ok(Answer::Paid);
        }
        self.unpaid = hold.hold_one().await?;
        Ok(if self.unpaid.is_some() { Answer::Granted } else { Answer::Refused })
    }
}

/// A Redis client running the seed's lock: SET ticket NX PX ttl.
struct RedisWorker {
    redis: RedisHold,
    tickets: u32,
    holder: u32,
    ttl_ms: Option<u64>,
    rng: rand::rngs::StdRng,
}

impl Worker for RedisWorker {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        use rand::Rng;
        let ticket = self.rng.gen_range(0..self.tickets);
        Ok(if self.redis.hold(ticket, self.holder, self.ttl_ms).await? { Answer::Granted } else { Answer::Refused })
    }
}

async fn redis_workers(redis: &Redis, options: &Options, ttl_ms: Option<u64>) -> anyhow::Result<Vec<RedisWorker>> {
    use rand::SeedableRng;
    let mut workers = Vec::new();
    for n in 0..options.clients {
        let rng = rand::rngs::StdRng::seed_from_u64(n as u64);
        let conn = RedisHold::connect(&redis.addr).await?;
        workers.push(RedisWorker { redis: conn, tickets: options.tickets, holder: n as u32, ttl_ms, rng });
    }
    Ok(workers)
}

async fn redis(
    options: &Options,
    work: &Path,
    rows: &mut Vec<Row>,
    system: &str,
    fsync_always: bool,
) -> anyhow::Result<()> {
    if !["a1", "a2"].iter().any(|s| options.runs(s, system)) {
        return Ok(());
    }
    let label = if fsync_always { "redis 7 (appendfsync always)" } else { "redis 7 (default persistence)" };
    println!("starting {label}");
    let redis = Redis::start(&work.join(system), fsync_always).await?;
    let n = options.tickets;
    let mut admin = RedisHold::connect(&redis.addr).await?;
    if options.runs("a1", system) {
        admin.flush().await?;
        let result = load::run(
            options.spec(&format!("a1 {system}"), None, Some(n as u64)),
            redis_workers(&redis, options, None).await?,
        )
        .await;
        let held = admin.count().await?;
        rows.push(row("a1", label, result, format!("{held} keys set")));
    }
    if options.runs("a2", system) {
        admin.flush().await?;
        let result = load::run(
            options.spec(&format!("a2 {system}"), Some(options.churn), None),
            redis_workers(&redis, options, Some(CHURN_TTL_MS)).await?,
        )
        .await;
        rows.push(row("a2", label, result, "one key per ticket".into()));
    }
    Ok(())
}

fn write_results(options: &Options, rows: &[Row], stamp: &str) -> anyhow::Result<()> {
    let command: String = std::env::args().skip(1).map(|a| format!(" {a}")).collect();
    let mut setup = Vec::new();
    if options.scenarios.iter().any(|s| s != "s") {
        setup.push(format!("{} tickets, {} clients", options.tickets, options.clients));
    }
    if options.scenarios.iter().any(|s| s == "s") {
        setup.push(format!(
            "{} events, {} search clients, {} searches/s in the latency run",
            options.events, options.search_clients, options.search_rate
        ));
    }
    let header = format!(
        "# Benchmark results\n\nOne run of `scripts/bench{command}` on this machine ({stamp} UTC): {}; every \
         system alone on the machine in turn. Boxoffice is a {}-node cluster on loopback, every node syncing its log.",
        setup.join("; "),
        options.nodes
    );
    std::fs::write(options.out.join(format!("{}.json", options.name)), serde_json::to_vec_pretty(rows)?)?;
    std::fs::write(options.out.join(format!("{}.md", options.name)), report::markdown(rows, &header))?;
    std::fs::write(
        options.out.join(format!("{}.svg", options.name)),
        report::svg(rows, "Boxoffice against PostgreSQL, Redis and nginx"),
    )?;
    println!("\n{}", report::markdown(rows, &header));
    println!("results written to {}", options.out.display());
    Ok(())
}

/// The search benchmark: one catalog in Boxoffice and PostgreSQL, the same mix against each.
async fn search(options: &Options, work: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use chaos::bench::search::{self as s, GatewaySearch, PostgresSearch};
    if !options.scenarios.iter().any(|x| x == "s") {
        return Ok(());
    }
    const SEED: u64 = 2026;
    let from_ms = chrono::Utc::now().timestamp_millis() as u64;
    let mix = s::mix(&s::catalog(SEED, options.events, from_ms), from_ms);
    // Each system answers the mix twice: at a fixed rate for latency, then as fast as it goes.
    let spec = |label: &str, rate_per_s: Option<u64>| LoadSpec {
        label: label.into(),
        duration: Some(Duration::from_millis(options.search)),
        granted_target: None,
        rate_per_s,
        progress: true,
    };
    let runs = [("sl", Some(options.search_rate)), ("s", None)];
    if options.runs("s", "boxoffice") {
        println!(
            "starting boxoffice ({} nodes, search cache off) and loading {} events",
            options.nodes, options.events
        );
        let bin = options.bin.clone().unwrap_or_else(sibling_binary);
        let bo =
            Boxoffice::start(bin, work.join("boxoffice-search"), options.nodes, 1, NEVER_MS, "search_cache_ttl_ms = 0")
                .await?;
        s::load_boxoffice(&bo, SEED, options.events, from_ms).await?;
        s::wait_indexed(&bo, options.events).await?;
        s::wait_merged(&bo).await?;
        if let Ok(minutes) = std::env::var("BOXOFFICE_BENCH_PAUSE_MINUTES") {
            println!("paused for {minutes} minutes: gateways {:?}", bo.bases());
            tokio::time::sleep(Duration::from_secs(60 * minutes.parse::<u64>().unwrap_or(10))).await;
        }
        let bases = bo.bases();
        let paths: Vec<String> = mix.iter().map(|q| q.path()).collect();
        for (scenario, rate) in runs {
            let workers: Vec<_> = (0..options.search_clients)
                .map(|n| GatewaySearch {
                    conn: chaos::bench::http::Conn::new(&bases[n % bases.len()]),
                    paths: paths.clone(),
                    turn: n * 5,
                })
                .collect();
            let result = load::run(spec(&format!("{scenario} boxoffice"), rate), workers).await;
            let system = "boxoffice (search shards, cache off)";
            rows.push(row(scenario, system, result, format!("{} events", options.events)));
        }
    }
    if options.runs("s", "postgres") {
        println!("starting postgres 15 and loading {} events", options.events);
        let pg = Postgres::start(&work.join("postgres-search"), 0).await?;
        let (client, connection) = tokio_postgres::connect(&pg.dsn, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        s::load_postgres(&client, SEED, options.events, from_ms).await?;
        for (like, label) in [(false, "postgres 15 (tsvector, GIN)"), (true, "postgres 15 (LIKE)")] {
            for (scenario, rate) in runs {
                let mut workers = Vec::new();
                for n in 0..options.search_clients {
                    workers.push(PostgresSearch::connect(&pg.dsn, &mix, like, n * 5).await?);
                }
                let result = load::run(spec(&format!("{scenario} {label}"), rate), workers).await;
                rows.push(row(scenario, label, result, format!("{} events", options.events)));
            }
        }
    }
    Ok(())
}

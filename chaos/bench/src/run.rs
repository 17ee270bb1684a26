//! One benchmark run: every scenario asked for against every system asked for, each system alone
//! on the machine in turn (the others stopped), then the result files.
//!
//! Data and logs go to `<work>/<stamp>/<system>`, removed after a run that succeeded unless
//! `--keep-data`; the results go to `<out>/<name>.json`, `.md` and `.svg` (when a scenario but the
//! waiting room ran), and the waiting room's to `<out>/waiting-room.json` and `.md`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::boxoffice::{Boxoffice, Buy, Get};
use crate::load::{self, LoadResult, LoadSpec, Mixed};
use crate::options::{Options, Scenario, System, PURCHASE_FILL_PERCENT};
use crate::peers::etcd::{etcd_workers, Etcd};
use crate::peers::nginx::Nginx;
use crate::peers::postgres::{pg_workers, PgBuy, PgHold, PgRead, Postgres};
use crate::peers::redis::{redis_workers, Redis, RedisHold};
use crate::peers::Holder;
use crate::report::{self, Row};
use crate::room::{self, RoomFigures, RoomSpec};
use crate::seatmap::{self, MapFigures, MapSpec};
use crate::wrk::wrk;

/// How long a hold lasts in the churn scenario.
const CHURN_TTL_MS: u64 = 2_000;
/// How long "never" is for Boxoffice's holds in the sell-out (its longest allowed hold).
const NEVER_MS: u64 = 24 * 60 * 60 * 1000;
/// Size of the JSON body of the event row PostgreSQL reads in the mixed scenario.
const EVENT_JSON_BYTES: usize = 2_000;
/// Reads of the event page for every hold in the mixed scenario.
const MIXED_READS: u32 = 100;
/// The groups scenario's cluster: five nodes, each the first leader of a group of the event
/// over four groups (the benchmark cluster has four).
const GROUPS_NODES: u64 = 5;
/// The groups an event of the groups scenario is spread over, one run each.
const GROUPS_RUNS: [u32; 3] = [1, 2, 4];
/// A hold of the groups scenario lasts as Boxoffice's default hold does: ten minutes.
const GROUPS_HOLD_TTL_MS: u64 = 600_000;
/// Members of the etcd cluster, as a user would run it to survive the loss of one.
const ETCD_MEMBERS: usize = 3;

/// Runs the benchmark as `options` say and writes its result files.
pub async fn run(options: Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.out)?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    std::fs::create_dir_all(&options.work)?;
    let work = std::path::absolute(&options.work)?.join(&stamp);
    let mut run = Run { options: &options, work: work.clone(), rows: Vec::new(), room: None, map: None };
    let measured = async {
        run.boxoffice().await?;
        run.postgres(System::Postgres, 0).await?;
        run.postgres(System::Postgres3, 2).await?;
        run.redis(System::Redis, false).await?;
        run.redis(System::RedisAof, true).await?;
        run.search().await?;
        run.groups().await?;
        run.room().await?;
        run.map().await
    }
    .await;
    if let Err(error) = measured {
        return Err(error.context(format!("the systems' data and logs are kept in {}", work.display())));
    }
    if !run.rows.is_empty() {
        write_results(&options, &run.rows, &stamp)?;
    }
    if let Some(figures) = &run.room {
        write_room(&options, figures, &stamp)?;
    }
    if let Some(figures) = &run.map {
        write_map(&options, figures, &stamp)?;
    }
    if !options.keep_data && work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    }
    Ok(())
}

/// The `boxoffice` binary to run: `--bin`, or the one beside this executable.
fn boxoffice_binary(options: &Options) -> PathBuf {
    options.bin.clone().unwrap_or_else(harness::sibling_binary)
}

/// A run under way: what it was asked, where its systems keep their data, and its rows so far.
struct Run<'a> {
    options: &'a Options,
    work: PathBuf,
    rows: Vec<Row>,
    /// The waiting room's figures, once it ran: they are not rows of the peers' table.
    room: Option<RoomFigures>,
    /// The seat map's figures, once it ran.
    map: Option<MapFigures>,
}

impl Run<'_> {
    /// Prints one result and adds it as a row; `scenario` is its row's scenario (`sl` for the
    /// search latency run), `system` the system as the results name it.
    fn row(&mut self, scenario: &str, system: &str, result: LoadResult, checked: String) {
        println!(
            "{scenario} {system}: {:.0} answered/s, {:.0} granted/s, p50 {:.2} ms, p99 {:.2} ms, {:.1} s, errors {} ({checked})",
            result.per_s, result.granted_per_s, result.p50_ms, result.p99_ms, result.elapsed_s, result.errors
        );
        self.rows.push(Row { scenario: scenario.into(), system: system.into(), result, checked });
    }

    /// a1, a2, c and p against Boxoffice, and b against it and nginx.
    async fn boxoffice(&mut self) -> anyhow::Result<()> {
        use Scenario::*;
        let (options, work) = (self.options, self.work.clone());
        let bin = boxoffice_binary(options);
        let nodes = options.nodes;
        let system = &format!("boxoffice ({nodes} {})", if nodes == 1 { "node" } else { "nodes" });
        let n = options.tickets;
        let runs = |scenario| options.runs(scenario, System::Boxoffice);
        if options.runs_any(&[A1, B, C, P], System::Boxoffice) || options.runs(B, System::Nginx) {
            println!("starting {system}, holds never expire");
            let bo = Boxoffice::start(bin.clone(), work.join("boxoffice-a1"), nodes, n, NEVER_MS, "").await?;
            let tokens = bo.fans(options.clients).await?;
            if runs(A1) {
                let event = bo.new_event("sell-out").await?;
                let result =
                    load::run(options.spec("a1 boxoffice", None, Some(n as u64)), bo.holds(&tokens, event, n)).await;
                let held = bo.verify(event, result.granted, false).await?;
                self.row("a1", system, result, format!("{held} tickets held, each by one booking"));
            }
            if runs(C) {
                let event = bo.new_event("mixed").await?;
                let bases = bo.bases();
                let workers: Vec<_> = bo
                    .holds(&tokens, event, n)
                    .into_iter()
                    .enumerate()
                    .map(|(i, write)| {
                        let read = Get::new(&bases[i % bases.len()], format!("/events/{event}"));
                        Mixed { reads: MIXED_READS, done: i as u32 % (MIXED_READS + 1), read, write }
                    })
                    .collect();
                let result = load::run(options.spec("c boxoffice", Some(options.mixed), None), workers).await;
                let held = bo.verify(event, result.granted, false).await?;
                self.row("c", system, result, format!("{held} tickets held, each by one booking"));
            }
            if runs(P) {
                let event = bo.new_event("purchases").await?;
                let workers = bo.holds(&tokens, event, n).into_iter().map(Buy::new).collect();
                let result = load::run(options.purchases_spec("p boxoffice"), workers).await;
                let (granted, paid) = (result.granted, result.paid);
                let sold = bo.verify_sales(event, granted, paid).await?;
                self.row("p", system, result, format!("{sold} bookings confirmed, one per purchase"));
            }
            if runs(B) || options.runs(B, System::Nginx) {
                self.page_scenario(&bo).await?;
            }
        }
        if runs(A2) {
            println!("starting {system}, holds end after {CHURN_TTL_MS} ms");
            let bo = Boxoffice::start(bin, work.join("boxoffice-a2"), nodes, n, CHURN_TTL_MS, "").await?;
            let tokens = bo.fans(options.clients).await?;
            let event = bo.new_event("churn").await?;
            let result =
                load::run(options.spec("a2 boxoffice", Some(options.churn), None), bo.holds(&tokens, event, n)).await;
            let held = bo.verify(event, result.granted, true).await?;
            self.row("a2", system, result, format!("no ticket held twice ({held} ticket rows)"));
        }
        Ok(())
    }

    /// b: the cached event page through the gateway, then the same bytes from nginx, both with wrk.
    async fn page_scenario(&mut self, bo: &Boxoffice) -> anyhow::Result<()> {
        let (options, work) = (self.options, self.work.clone());
        let event = bo.new_event("page").await?;
        let url = format!("{}/events/{event}", bo.cluster.url(1));
        let body = bo.http.get(&url).send().await?.bytes().await?;
        if options.runs(Scenario::B, System::Boxoffice) {
            let result = wrk("b boxoffice", &url, options.clients, options.page).await?;
            self.row("b", "boxoffice gateway (cached)", result, format!("{} byte page", body.len()));
        }
        if options.runs(Scenario::B, System::Nginx) {
            let nginx = Nginx::start(&work.join("nginx"), &format!("/events/{event}"), &body).await?;
            let result = wrk("b nginx", &nginx.url, options.clients, options.page).await?;
            self.row("b", "nginx (static file)", result, format!("{} byte page", body.len()));
        }
        Ok(())
    }

    /// a1, a2, c and p against PostgreSQL with `standbys` synchronous standbys.
    async fn postgres(&mut self, system: System, standbys: usize) -> anyhow::Result<()> {
        use Scenario::*;
        let (options, work) = (self.options, self.work.clone());
        if !options.runs_any(&[A1, A2, C, P], system) {
            return Ok(());
        }
        let name = system.name();
        let label =
            if standbys == 0 { "postgres 15".to_string() } else { format!("postgres 15 + {standbys} sync standbys") };
        println!("starting {label}");
        let pg = Postgres::start(&work.join(name), standbys).await?;
        let event_json = format!("{{\"name\":\"{}\"}}", "x".repeat(EVENT_JSON_BYTES));
        let (n, clients) = (options.tickets, options.clients);
        if options.runs(A1, system) {
            pg.load(n, &event_json).await?;
            let workers = pg_workers(&pg, Holder::clients(clients, n, None)).await?;
            let result = load::run(options.spec(&format!("a1 {name}"), None, Some(n as u64)), workers).await;
            let held = PgHold::connect(&pg).await?.reserved_count().await?;
            self.row("a1", &label, result, format!("{held} tickets reserved"));
        }
        if options.runs(A2, system) {
            pg.load(n, &event_json).await?;
            let workers = pg_workers(&pg, Holder::clients(clients, n, Some(CHURN_TTL_MS))).await?;
            let result = load::run(options.spec(&format!("a2 {name}"), Some(options.churn), None), workers).await;
            self.row("a2", &label, result, "one row per ticket".into());
        }
        if options.runs(C, system) {
            pg.load(n, &event_json).await?;
            let mut workers = Vec::new();
            for (i, write) in pg_workers(&pg, Holder::clients(clients, n, None)).await?.into_iter().enumerate() {
                let read = PgRead::connect(&pg).await?;
                workers.push(Mixed { reads: MIXED_READS, done: i as u32 % (MIXED_READS + 1), read, write });
            }
            let result = load::run(options.spec(&format!("c {name}"), Some(options.mixed), None), workers).await;
            self.row("c", &label, result, "event row read, one row per ticket".into());
        }
        if options.runs(P, system) {
            pg.load(n, &event_json).await?;
            let workers =
                pg_workers(&pg, Holder::clients(clients, n, None)).await?.into_iter().map(PgBuy::new).collect();
            let result = load::run(options.purchases_spec(&format!("p {name}")), workers).await;
            let sold = PgHold::connect(&pg).await?.sold_count().await?;
            if sold != result.paid {
                bail!("{} payments marked a row sold but {sold} rows are sold", result.paid);
            }
            self.row("p", &label, result, format!("{sold} rows sold, one per purchase"));
        }
        Ok(())
    }

    /// a1 and a2 against Redis, with `appendfsync always` when `fsync_always`.
    async fn redis(&mut self, system: System, fsync_always: bool) -> anyhow::Result<()> {
        use Scenario::*;
        let (options, work) = (self.options, self.work.clone());
        if !options.runs_any(&[A1, A2], system) {
            return Ok(());
        }
        let name = system.name();
        let label = if fsync_always { "redis 7 (appendfsync always)" } else { "redis 7 (default persistence)" };
        println!("starting {label}");
        let redis = Redis::start(&work.join(name), fsync_always).await?;
        let (n, clients) = (options.tickets, options.clients);
        let mut admin = RedisHold::connect(&redis.addr).await?;
        if options.runs(A1, system) {
            admin.flush().await?;
            let workers = redis_workers(&redis, Holder::clients(clients, n, None)).await?;
            let result = load::run(options.spec(&format!("a1 {name}"), None, Some(n as u64)), workers).await;
            let held = admin.count().await?;
            self.row("a1", label, result, format!("{held} keys set"));
        }
        if options.runs(A2, system) {
            admin.flush().await?;
            let workers = redis_workers(&redis, Holder::clients(clients, n, Some(CHURN_TTL_MS))).await?;
            let result = load::run(options.spec(&format!("a2 {name}"), Some(options.churn), None), workers).await;
            self.row("a2", label, result, "one key per ticket".into());
        }
        Ok(())
    }

    /// g: one event's holds on a five-node cluster, the event in 1, 2 and 4 groups, each until
    /// `PURCHASE_FILL_PERCENT` of its tickets are held; then etcd running the same holds.
    async fn groups(&mut self) -> anyhow::Result<()> {
        let (options, work) = (self.options, self.work.clone());
        let n = options.tickets;
        let target = Some((u64::from(n) * PURCHASE_FILL_PERCENT / 100).max(1));
        if options.runs(Scenario::G, System::Boxoffice) {
            println!("starting boxoffice ({GROUPS_NODES} nodes), holds of {GROUPS_HOLD_TTL_MS} ms");
            let bin = boxoffice_binary(options);
            let dir = work.join("boxoffice-g");
            let bo = Boxoffice::start(bin, dir, GROUPS_NODES, n, GROUPS_HOLD_TTL_MS, "").await?;
            let tokens = bo.fans(options.clients).await?;
            for groups in GROUPS_RUNS {
                let event = bo.new_event_in(&format!("one event, {groups} groups"), Some(groups)).await?;
                let label = format!("g boxoffice {groups} groups");
                let spec = options.spec(&label, Some(options.groups_max), target);
                let before = node_cpu_ms(&bo.cluster);
                let result = load::run(spec, bo.holds(&tokens, event, n)).await;
                let cpu = cpu_note(&before, &node_cpu_ms(&bo.cluster), result.granted);
                let held = bo.verify(event, result.granted, false).await?;
                let system = format!("boxoffice ({GROUPS_NODES} nodes, event in {groups} {})", plural(groups, "group"));
                self.row("g", &system, result, format!("{held} tickets held, each by one booking; {cpu}"));
            }
        }
        if options.runs(Scenario::G, System::Etcd) {
            println!("starting etcd ({ETCD_MEMBERS} members)");
            let etcd = Etcd::start(&work.join("etcd"), ETCD_MEMBERS).await?;
            let event = 1;
            let holders = Holder::clients(options.clients, n, Some(GROUPS_HOLD_TTL_MS));
            let spec = options.spec("g etcd", Some(options.groups_max), target);
            let result = load::run(spec, etcd_workers(&etcd, holders, event)).await;
            let held = etcd.held(event).await?;
            if held != result.granted {
                bail!("{} holds were granted but etcd holds {held} ticket keys", result.granted);
            }
            let label = format!("etcd 3.4 ({ETCD_MEMBERS} members, lease + txn per hold)");
            self.row("g", &label, result, format!("{held} ticket keys, one per granted hold"));
        }
        Ok(())
    }

    /// The search benchmark: one catalog in Boxoffice and PostgreSQL, the same mix against each.
    async fn search(&mut self) -> anyhow::Result<()> {
        let (options, work) = (self.options, self.work.clone());
        use crate::search::{self as s, GatewaySearch, PostgresSearch};
        if !options.scenarios.contains(&Scenario::S) {
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
        if options.runs(Scenario::S, System::Boxoffice) {
            println!(
                "starting boxoffice ({} nodes, search cache off) and loading {} events",
                options.nodes, options.events
            );
            let bin = boxoffice_binary(options);
            let bo = Boxoffice::start(
                bin,
                work.join("boxoffice-search"),
                options.nodes,
                1,
                NEVER_MS,
                "search_cache_ttl_ms = 0",
            )
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
                        conn: crate::http::Conn::new(&bases[n % bases.len()]),
                        paths: paths.clone(),
                        turn: n * 5,
                    })
                    .collect();
                let result = load::run(spec(&format!("{scenario} boxoffice"), rate), workers).await;
                let system = "boxoffice (search shards, cache off)";
                self.row(scenario, system, result, format!("{} events", options.events));
            }
        }
        if options.runs(Scenario::S, System::Postgres) {
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
                    self.row(scenario, label, result, format!("{} events", options.events));
                }
            }
        }
        Ok(())
    }
}

impl Run<'_> {
    /// w: the waiting room of a Boxoffice cluster, alone on the machine.
    async fn room(&mut self) -> anyhow::Result<()> {
        let options = self.options;
        if !options.runs(Scenario::W, System::Boxoffice) {
            return Ok(());
        }
        let spec = RoomSpec {
            bin: boxoffice_binary(options),
            dir: self.work.join("boxoffice-room"),
            nodes: options.nodes,
            fans: options.room_fans,
            sse_fans: options.room_sse_fans,
            pow_bits: options.room_pow_bits,
            rate_per_min: options.room_rate,
            fans_per_socket: options.room_fans_per_socket as usize,
        };
        println!("starting boxoffice ({} nodes) with a waiting room", options.nodes);
        self.room = Some(room::run(spec).await?);
        Ok(())
    }
}

impl Run<'_> {
    /// m: the live seat map of a Boxoffice cluster, alone on the machine.
    async fn map(&mut self) -> anyhow::Result<()> {
        let options = self.options;
        if !options.runs(Scenario::M, System::Boxoffice) {
            return Ok(());
        }
        let spec = MapSpec {
            bin: boxoffice_binary(options),
            dir: self.work.join("boxoffice-map"),
            nodes: options.nodes,
            subscribers: options.map_subscribers as usize,
            seats: options.map_seats as usize,
            holds_per_s: options.map_holds_per_s,
            duration: Duration::from_millis(options.map_duration),
        };
        println!("starting boxoffice ({} nodes) for the seat map", options.nodes);
        self.map = Some(seatmap::run(spec).await?);
        Ok(())
    }
}

/// Writes `seat-map.json` and `seat-map.md` into `--out`, and prints the table.
fn write_map(options: &Options, figures: &MapFigures, stamp: &str) -> anyhow::Result<()> {
    let command: String = std::env::args().skip(1).map(|a| format!(" {a}")).collect();
    let header = format!(
        "# Live seat map\n\nOne run of `boxoffice-bench{command}` on this machine ({stamp} UTC): a {}-node cluster on \
         loopback, one event of {} seats, {} fans each on a seat stream of their own (spread over the gateways), holds \
         of one seat each at up to {} a second.",
        figures.nodes, figures.seats, figures.subscribers_asked, options.map_holds_per_s
    );
    let table = seatmap::markdown(figures, &header);
    std::fs::write(options.out.join("seat-map.json"), serde_json::to_vec_pretty(figures)?)?;
    std::fs::write(options.out.join("seat-map.md"), &table)?;
    println!("\n{table}");
    println!("seat map results written to {}", options.out.display());
    Ok(())
}

/// Writes `waiting-room.json` and `waiting-room.md` into `--out`, and prints the table.
fn write_room(options: &Options, figures: &RoomFigures, stamp: &str) -> anyhow::Result<()> {
    let command: String = std::env::args().skip(1).map(|a| format!(" {a}")).collect();
    let header = format!(
        "# Waiting room\n\nOne run of `boxoffice-bench{command}` on this machine ({stamp} UTC): a {}-node cluster on \
         loopback, {} fans on QUIC (one connection each, from {} client sockets) and {} on the HTTP fallback's event \
         streams, proof of work {} bits, admissions set at {} a minute.",
        figures.nodes,
        figures.fans,
        figures.client_sockets,
        figures.sse_fans,
        figures.pow_bits,
        figures.rate_per_minute
    );
    let table = room::markdown(figures, &header);
    std::fs::write(options.out.join("waiting-room.json"), serde_json::to_vec_pretty(figures)?)?;
    std::fs::write(options.out.join("waiting-room.md"), &table)?;
    println!("\n{table}");
    println!("waiting-room results written to {}", options.out.display());
    Ok(())
}

/// Writes `<name>.json`, `<name>.md` and `<name>.svg` into `--out`, and prints the table.
fn write_results(options: &Options, rows: &[Row], stamp: &str) -> anyhow::Result<()> {
    let command: String = std::env::args().skip(1).map(|a| format!(" {a}")).collect();
    let mut setup = Vec::new();
    if options.scenarios.iter().any(|s| *s != Scenario::S) {
        setup.push(format!("{} tickets, {} clients", options.tickets, options.clients));
    }
    if options.scenarios.contains(&Scenario::G) {
        setup.push(format!("the groups scenario on {GROUPS_NODES} nodes"));
    }
    if options.scenarios.contains(&Scenario::S) {
        setup.push(format!(
            "{} events, {} search clients, {} searches/s in the latency run",
            options.events, options.search_clients, options.search_rate
        ));
    }
    let only_groups = options.scenarios.iter().all(|s| *s == Scenario::G);
    let nodes = if only_groups { GROUPS_NODES } else { options.nodes };
    let header = format!(
        "# Benchmark results\n\nOne run of `scripts/bench{command}` on this machine ({stamp} UTC): {}; every \
         system alone on the machine in turn. Boxoffice is a {nodes}-node cluster on loopback, every node syncing its \
         log.",
        setup.join("; "),
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

/// `1 group`, `2 groups`: the noun of a count.
fn plural(count: u32, noun: &str) -> String {
    if count == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

/// The CPU time each node of `cluster` has used so far, in milliseconds, by node.
fn node_cpu_ms(cluster: &harness::Cluster) -> Vec<u64> {
    cluster.nodes.iter().map(|node| cluster.cpu_ms(node.id).unwrap_or(0)).collect()
}

/// What the nodes spent between two samples: CPU seconds by node, and CPU milliseconds of the
/// whole cluster per granted hold.
fn cpu_note(before: &[u64], after: &[u64], granted: u64) -> String {
    let spent: Vec<u64> = after.iter().zip(before).map(|(a, b)| a.saturating_sub(*b)).collect();
    let by_node: Vec<String> = spent.iter().map(|ms| format!("{:.1}", *ms as f64 / 1_000.0)).collect();
    let per_hold = spent.iter().sum::<u64>() as f64 / granted.max(1) as f64;
    format!("node CPU s {}, {per_hold:.2} CPU ms per hold", by_node.join("/"))
}

//! What a run is asked to do: the command line of `boxoffice-bench`, with the scenarios and the
//! systems as typed values (their command-line spellings are `a1`, `postgres-3`, ...).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::load::LoadSpec;

/// Most nodes a benchmark cluster may have: they all share this machine.
pub const NODES_MAX: u64 = 5;
/// The purchase scenario ends once this share of the tickets is held: every system is measured
/// over the same stretch of the on-sale, before refusals pile up (a system that sold out within
/// a fixed time would be judged on its slow tail, one that did not on its quick start).
pub const PURCHASE_FILL_PERCENT: u64 = 40;

/// A scenario of the benchmark (see docs/benchmarks/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Sell-out: a hot event, every client holding one random ticket per request, holds never
    /// expire, until every ticket is held.
    #[value(name = "a1")]
    A1,
    /// Churn: the same, holds end after 2 s, for `--churn`.
    #[value(name = "a2")]
    A2,
    /// The event page: Boxoffice's gateway with a warm cache against nginx serving the same JSON
    /// as a static file (measured with wrk).
    #[value(name = "b")]
    B,
    /// A mixed on-sale: 100 reads of the event page for every hold.
    #[value(name = "c")]
    C,
    /// Purchases: hold one ticket, pay for it, again.
    #[value(name = "p")]
    P,
    /// Search: the same mix of fan searches against Boxoffice and PostgreSQL.
    #[value(name = "s")]
    S,
    /// The waiting room: tens of thousands of fans on QUIC and thousands on the HTTP fallback
    /// wait in one room of a Boxoffice cluster (Boxoffice only).
    #[value(name = "w")]
    W,
    /// The live seat map: tens of thousands of fans watch one event's seat stream while holds
    /// run (Boxoffice only).
    #[value(name = "m")]
    M,
    /// One event over several groups: its holds on a five-node cluster with the event in 1, 2
    /// and 4 groups, against etcd running the same holds (Boxoffice and etcd only).
    #[value(name = "g")]
    G,
}

/// A system the benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum System {
    #[value(name = "boxoffice")]
    Boxoffice,
    /// PostgreSQL 15 alone.
    #[value(name = "postgres")]
    Postgres,
    /// PostgreSQL 15 with two synchronous standbys.
    #[value(name = "postgres-3")]
    Postgres3,
    /// Redis with its default persistence.
    #[value(name = "redis")]
    Redis,
    /// Redis with `appendfsync always`.
    #[value(name = "redis-aof")]
    RedisAof,
    #[value(name = "nginx")]
    Nginx,
    /// etcd 3.4, three members.
    #[value(name = "etcd")]
    Etcd,
}

impl System {
    /// The command-line spelling, which also names the system's folder and its load's label.
    pub fn name(self) -> &'static str {
        match self {
            System::Boxoffice => "boxoffice",
            System::Postgres => "postgres",
            System::Postgres3 => "postgres-3",
            System::Redis => "redis",
            System::RedisAof => "redis-aof",
            System::Nginx => "nginx",
            System::Etcd => "etcd",
        }
    }
}

#[derive(Parser, Clone, Debug)]
#[command(name = "boxoffice-bench", about = "Boxoffice against PostgreSQL, Redis and nginx, in one run")]
pub struct Options {
    /// Where results.json, results.md and results.svg go (named after `--name`).
    #[arg(long, default_value = "docs/benchmarks")]
    pub out: PathBuf,
    /// Where the systems keep their data while they run (PostgreSQL's server user must be able
    /// to reach it).
    #[arg(long, default_value = "/tmp/boxoffice-bench")]
    pub work: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    pub tickets: u32,
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Nodes of Boxoffice's cluster (every group on every node): 3, the smallest cluster that
    /// survives the loss of a node; 1 shows what replication costs on this machine.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=NODES_MAX))]
    pub nodes: u64,
    /// How long the churn scenario runs.
    #[arg(long, default_value = "30s", value_parser = model::duration::parse_ms)]
    pub churn: u64,
    /// How long the event page scenario runs.
    #[arg(long, default_value = "20s", value_parser = model::duration::parse_ms)]
    pub page: u64,
    /// How long the mixed scenario runs.
    #[arg(long, default_value = "30s", value_parser = model::duration::parse_ms)]
    pub mixed: u64,
    /// Longest the purchase scenario runs (it ends sooner once `PURCHASE_FILL_PERCENT` of the
    /// tickets are held).
    #[arg(long, default_value = "60s", value_parser = model::duration::parse_ms)]
    pub purchases: u64,
    /// Longest a sell-out may take before it is cut short (and reported as not sold out).
    #[arg(long, default_value = "15m", value_parser = model::duration::parse_ms)]
    pub sell_out_max: u64,
    /// Scenarios to run (`s`, `w`, `m` and `g` run only when named).
    #[arg(long, value_delimiter = ',', value_enum, default_value = "a1,a2,b,c,p")]
    pub scenarios: Vec<Scenario>,
    /// Systems to run.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "boxoffice,postgres,postgres-3,redis,redis-aof,nginx"
    )]
    pub systems: Vec<System>,
    /// The `boxoffice` binary; the one beside this binary if not given.
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Events in the search benchmark's catalog.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// How long each system answers the search mix.
    #[arg(long, default_value = "20s", value_parser = model::duration::parse_ms)]
    pub search: u64,
    /// Clients of the search benchmark.
    #[arg(long, default_value_t = 8)]
    pub search_clients: usize,
    /// Searches per second, in all, of the search latency run (open loop: latency counts from
    /// when each search was due, so a system that falls behind shows it).
    #[arg(long, default_value_t = 100)]
    pub search_rate: u64,
    /// Fans of the waiting-room scenario on QUIC, each on a connection of its own.
    #[arg(long, default_value_t = 60_000)]
    pub room_fans: usize,
    /// Fans of the waiting-room scenario on the HTTP fallback, each on an event stream of its own.
    #[arg(long, default_value_t = 5_000)]
    pub room_sse_fans: usize,
    /// QUIC fans one client UDP socket (one quinn endpoint) of the benchmark carries. A push to
    /// every fan lands a datagram for each at once: too many on one socket overflow its receive
    /// buffer, and what is dropped is resent a loss timeout later, so that the benchmark's own
    /// socket, not the nodes, sets the latencies it reports (it counts the drops). 500 fans share
    /// a 4 MiB buffer: 8 KiB each.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub room_fans_per_socket: u64,
    /// Proof-of-work bits of the waiting room's joins.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=28))]
    pub room_pow_bits: u8,
    /// Admissions per minute set at the waiting room's on-sale (the window that measures it ends
    /// before the line runs dry).
    #[arg(long, default_value_t = 40_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub room_rate: u32,
    /// Fans of the seat map scenario, each on a seat stream of its own.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=200_000))]
    pub map_subscribers: u64,
    /// Seats of the seat map scenario's event (the stadium of the demo has 50,672).
    #[arg(long, default_value_t = 50_672, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub map_seats: u64,
    /// Holds a second in the seat map scenario, one seat each.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub map_holds_per_s: u64,
    /// How long the seat map scenario's holds run.
    #[arg(long, default_value = "30s", value_parser = model::duration::parse_ms)]
    pub map_duration: u64,
    /// Longest each run of the groups scenario takes (it ends sooner once
    /// `PURCHASE_FILL_PERCENT` of the tickets are held).
    #[arg(long, default_value = "30s", value_parser = model::duration::parse_ms)]
    pub groups_max: u64,
    /// The name of the result files (`<name>.md`, `<name>.json`, `<name>.svg`).
    #[arg(long, default_value = "results")]
    pub name: String,
    /// Keep the systems' data and logs after a run that succeeded (a failed run always keeps
    /// them, to read its logs): a million-event run leaves gigabytes.
    #[arg(long)]
    pub keep_data: bool,
}

impl Options {
    /// Whether `scenario` runs against `system`.
    pub fn runs(&self, scenario: Scenario, system: System) -> bool {
        self.scenarios.contains(&scenario) && self.systems.contains(&system)
    }

    /// Whether any of `scenarios` runs against `system`.
    pub fn runs_any(&self, scenarios: &[Scenario], system: System) -> bool {
        scenarios.iter().any(|&scenario| self.runs(scenario, system))
    }

    /// The purchase scenario's spec: until `PURCHASE_FILL_PERCENT` of the tickets are held, or
    /// `--purchases` is up.
    pub fn purchases_spec(&self, label: &str) -> LoadSpec {
        let target = u64::from(self.tickets) * PURCHASE_FILL_PERCENT / 100;
        self.spec(label, Some(self.purchases), Some(target.max(1)))
    }

    /// A closed-loop load with progress lines: for `duration_ms` (`--sell-out-max` if `None`),
    /// or until `target` holds are granted.
    pub fn spec(&self, label: &str, duration_ms: Option<u64>, target: Option<u64>) -> LoadSpec {
        LoadSpec {
            label: label.into(),
            duration: Some(Duration::from_millis(duration_ms.unwrap_or(self.sell_out_max))),
            granted_target: target,
            rate_per_s: None,
            progress: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_spellings_parse() {
        let options = Options::try_parse_from([
            "boxoffice-bench",
            "--scenarios",
            "a1,a2,b,c,p,s,w,m,g",
            "--systems",
            "boxoffice,postgres,postgres-3,redis,redis-aof,nginx,etcd",
        ])
        .unwrap();
        use Scenario::*;
        assert_eq!(options.scenarios, [A1, A2, B, C, P, S, W, M, G]);
        use System::*;
        assert_eq!(options.systems, [Boxoffice, Postgres, Postgres3, Redis, RedisAof, Nginx, Etcd]);
        assert!(Options::try_parse_from(["boxoffice-bench", "--systems", "mysql"]).is_err());
    }

    #[test]
    fn the_defaults_are_the_full_run() {
        let options = Options::try_parse_from(["boxoffice-bench"]).unwrap();
        assert_eq!(options.scenarios, [Scenario::A1, Scenario::A2, Scenario::B, Scenario::C, Scenario::P]);
        assert_eq!(options.systems.len(), 6);
        assert!(options.runs(Scenario::B, System::Nginx) && !options.runs(Scenario::S, System::Boxoffice));
        assert_eq!((options.tickets, options.clients, options.nodes), (100_000, 64, 3));
        assert_eq!((options.churn, options.sell_out_max), (30_000, 15 * 60_000));
        assert_eq!(
            (options.out.as_path(), options.name.as_str()),
            (std::path::Path::new("docs/benchmarks"), "results")
        );
        assert_eq!(options.purchases_spec("p").granted_target, Some(40_000));
        assert!(!options.runs(Scenario::W, System::Boxoffice), "the waiting room runs only when named");
        assert_eq!((options.room_fans, options.room_sse_fans, options.room_pow_bits), (60_000, 5_000, 0));
    }

    #[test]
    fn a_system_is_named_as_on_the_command_line() {
        for system in System::value_variants() {
            assert_eq!(system.to_possible_value().unwrap().get_name(), system.name());
        }
    }
}

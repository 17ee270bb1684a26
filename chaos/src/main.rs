//! `boxoffice-chaos`: break a real cluster and check what survived.
//!
//! - `boxoffice-chaos run [--duration 3m] [--seed N] [--faults kill-leader,pause,…]`: start a
//!   cluster of `boxoffice node` processes behind fault-injecting proxies, drive fans through
//!   it while faults come and go, then check the history and the final state;
//! - `boxoffice-chaos check --history FILE --final FILE [--room FILE]`: check a saved run again
//!   (with the waiting room's history, `room.jsonl` beside the history if not named).
//!
//! Exit status: 0 when every invariant held, 1 on any violation, 2 when the run itself failed.

use std::path::PathBuf;

use anyhow::Context;
use chaos::faults::FaultKind;
use chaos::run::{run, RunOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "boxoffice-chaos", about = "Break a real Boxoffice cluster and check what survived")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a cluster under faults and check it.
    Run {
        /// How long fans shop while faults are injected, e.g. 90s, 20m.
        #[arg(long, default_value = "3m", value_parser = model::duration::parse_ms)]
        duration: u64,
        /// Seed of the fault schedule (and of the fans' choices); random if not given.
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        #[arg(long, default_value_t = 24)]
        fans: u64,
        /// The kinds of fault to inject; all of them if not given.
        #[arg(long, value_delimiter = ',', value_enum)]
        faults: Vec<FaultKind>,
        /// How long holds last in the cluster.
        #[arg(long, default_value = "3s", value_parser = model::duration::parse_ms)]
        hold_ttl: u64,
        /// Where the run writes its history, report and the nodes' files.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The `boxoffice` binary to run; the one beside this binary if not given.
        #[arg(long)]
        bin: Option<PathBuf>,
        /// Fans of the waiting room's event (over QUIC); 0 runs without a room.
        #[arg(long, default_value_t = 120)]
        room_fans: u64,
        /// Adds a second admission of an admitted place, under another token, to the room's
        /// history before checking: the run must fail (docs/chaos.md).
        #[arg(long, hide = true)]
        plant_room_violation: bool,
    },
    /// Check a saved history and final state.
    Check {
        #[arg(long)]
        history: PathBuf,
        #[arg(long = "final")]
        final_state: PathBuf,
        /// The waiting room's history; `room.jsonl` beside the history if there is one.
        #[arg(long)]
        room: Option<PathBuf>,
    },
}

async fn main_result() -> anyhow::Result<bool> {
    match Cli::parse().command {
        Command::Run { duration, seed, nodes, fans, faults, hold_ttl, out, bin, room_fans, plant_room_violation } => {
            let seed = seed.unwrap_or_else(rand::random);
            let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
            let options = RunOptions {
                bin: bin.unwrap_or_else(harness::sibling_binary),
                out: out.unwrap_or_else(|| PathBuf::from(format!("target/chaos/{stamp}-seed{seed}"))),
                duration_ms: duration,
                seed,
                nodes,
                fans,
                kinds: if faults.is_empty() { default_kinds(room_fans) } else { faults },
                hold_ttl_ms: hold_ttl,
                room_fans,
                plant_room_violation,
            };
            let outcome = run(options).await?;
            println!("\n{}", outcome.summary);
            Ok(outcome.report.ok())
        }
        Command::Check { history, final_state, room } => {
            let room = room.or_else(|| {
                let beside = history.with_file_name("room.jsonl");
                beside.exists().then_some(beside)
            });
            let room = match room {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    chaos::history::parse_room_history(&text).map_err(anyhow::Error::msg)?
                }
                None => Vec::new(),
            };
            let text =
                std::fs::read_to_string(&history).with_context(|| format!("cannot read {}", history.display()))?;
            let history = chaos::history::parse_history(&text).map_err(anyhow::Error::msg)?;
            let text = std::fs::read_to_string(&final_state)
                .with_context(|| format!("cannot read {}", final_state.display()))?;
            let final_state = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a final state", final_state.display()))?;
            let report = chaos::checker::check_run(&history, &room, &final_state);
            println!("{report}");
            Ok(report.ok())
        }
    }
}

/// Every kind of fault, but the room's own when the run has no room.
fn default_kinds(room_fans: u64) -> Vec<FaultKind> {
    FaultKind::ALL.into_iter().filter(|k| room_fans > 0 || *k != FaultKind::KillRoomBusiest).collect()
}

#[tokio::main]
async fn main() {
    // The run is dropped when a signal wins, stopping the processes it started.
    let outcome = tokio::select! {
        outcome = main_result() => Ok(outcome),
        signal = harness::interrupted() => Err(signal),
    };
    let outcome = outcome.unwrap_or_else(|signal| {
        eprintln!("boxoffice-chaos: stopped by {signal}; the cluster's processes were stopped");
        std::process::exit(130);
    });
    match outcome {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("boxoffice-chaos: {error:#}");
            std::process::exit(2);
        }
    }
}

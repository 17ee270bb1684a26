//! `boxoffice`: the ticketing cluster's one binary.
//!
//! - `boxoffice dev`: three nodes on loopback with demo data, the web page and the API;
//! - `boxoffice node --config FILE`: one node of a cluster spread over machines;
//! - `boxoffice certs ca|node`: the CA and node certificates of the nodes' mutual TLS;
//! - `boxoffice ctl`: the operator's command line over the admin API ([`ctl`]).
//!
//! Layout: [`config`] reads and checks the node's TOML file; [`server`] starts a node (storage,
//! raft host, gateway) and stops it in order; [`cluster`] adapts the raft host to the gateway;
//! [`dev`] runs the embedded three-node cluster and loads the demo catalog (crate `demo`) through
//! the admin API; [`search_feed`] feeds the search shard (crate `search`) this node's change stream
//! and replica reads, and serves it to the raft host; [`malloc`] limits the C allocator's arenas
//! before the runtime starts; [`certs`] makes TLS files. `boxoffice sandbox` runs the `sandbox`
//! crate's payment provider.

mod certs;
mod cluster;
mod config;
mod ctl;
mod dev;
mod malloc;
mod search_feed;
mod server;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "boxoffice", version, about = "A raft-replicated ticketing cluster")]
struct Cli {
    /// Log format: text for people, json for machines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run three nodes on loopback with demo data, the web page and the API.
    Dev {
        /// Where the web page and API listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        /// The data folder; running again on it keeps the data.
        #[arg(long, default_value = "data/dev")]
        data: PathBuf,
        /// How long a hold keeps its tickets, e.g. 10m, 90s, 1500ms.
        #[arg(long, default_value = "10m", value_parser = model::duration::parse_ms)]
        hold_ttl: u64,
        /// Start without loading the demo catalog.
        #[arg(long)]
        no_demo: bool,
    },
    /// Run one node of a cluster from its configuration file (see the README).
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Make the cluster's CA and its nodes' certificates (raft links are mutual TLS).
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// The operator's command line over the admin API: status, events.
    Ctl(ctl::CtlArgs),
    /// Run the sandbox payment provider: a Stripe-like API, checkout pages and signed webhooks.
    Sandbox(sandbox::SandboxArgs),
}

fn init_logs(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal during start-up stops the process cleanly too.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).expect("a SIGINT handler can be installed");
    let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler can be installed");
    async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("interrupt received"),
            _ = terminate.recv() => tracing::info!("terminate received"),
        }
    }
}

fn main() -> anyhow::Result<()> {
    // Before the runtime starts its threads: see `malloc`.
    let arenas = malloc::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(run(arenas))
}

async fn run(arenas: malloc::Arenas) -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The dev cluster is a demo on one screen: openraft's warnings about its own elections
    // (late vote answers, peers not yet connected) say nothing to the person watching it.
    let default_filter = match cli.command {
        Command::Dev { .. } => "info,openraft=error,tantivy=warn",
        // A command line's output is its answer: only problems go to the log.
        Command::Ctl(_) => "warn",
        _ => "info,openraft=warn,tantivy=warn",
    };
    init_logs(cli.log_format, default_filter);
    tracing::debug!(?arenas, arenas_max = malloc::ARENAS_MAX, "allocator arenas");
    if matches!(cli.command, Command::Dev { .. } | Command::Node { .. }) {
        malloc::trim_periodically();
    }
    match cli.command {
        Command::Dev { http, data, hold_ttl, no_demo } => {
            let options = dev::DevOptions { http, data, hold_ttl_ms: hold_ttl, demo: !no_demo };
            dev::run(options, shutdown_signal()).await
        }
        Command::Sandbox(args) => Ok(sandbox::run(args, shutdown_signal()).await?),
        Command::Certs(command) => certs::run(command),
        Command::Ctl(args) => ctl::run(args).await,
        Command::Node { config } => {
            let config = config::NodeConfig::load(&config)?;
            let shutdown = shutdown_signal();
            let raft = server::bind(&config.raft_addr).await?;
            let http = server::bind(&config.http_addr).await?;
            let node = server::start(&config, raft, http).await.context("the node did not start")?;
            tokio::select! {
                _ = shutdown => {
                    node.stop().await;
                    Ok(())
                }
                // A replica that stopped on a storage error must not be served around: stop
                // loudly, and let the operator (or the chaos runner) restart the node.
                reason = node.fatal() => {
                    tracing::error!(%reason, "stopping: a raft group failed");
                    std::process::exit(70);
                }
            }
        }
    }
}

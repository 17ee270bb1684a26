//! `boxoffice-bench`: Boxoffice against PostgreSQL, Redis and nginx, in one run on this machine.
//! The command line is [`bench::options::Options`] (try `--help`); the run is [`bench::run`].
//!
//! Exit status: 0 when the run finished and wrote its results, 2 when it failed, 130 when a
//! signal stopped it (the systems it started are stopped first).

use clap::Parser;

#[tokio::main]
async fn main() {
    let options = bench::options::Options::parse();
    // The run is dropped when a signal wins, stopping the systems it started.
    let outcome = tokio::select! {
        outcome = bench::run::run(options) => Ok(outcome),
        signal = harness::interrupted() => Err(signal),
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

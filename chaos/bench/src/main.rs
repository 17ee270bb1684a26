//! `boxoffice-bench`: Boxoffice against PostgreSQL, Redis and nginx, in one run on this machine.
//! The command line is [`bench::options::Options`] (try `--help`); the run is [`bench::run`].
//!
//! Exit status: 0 when the run finished and wrote its results, 2 when it failed, 130 when a
//! signal stopped it (the systems it started are stopped first).

use clap::Parser;

#[tokio::main]
async fn main() {
    // A helper process of the seat map scenario: it holds streams (one process may not have
    // enough open files for all of them).
    if let Ok(role) = std::env::var(bench::seatmap::HELPER_ENV) {
        if let Err(error) = bench::seatmap::be_helper(&role).await {
            eprintln!("boxoffice-bench (seat stream helper): {error:#}");
            std::process::exit(2);
        }
        return;
    }
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

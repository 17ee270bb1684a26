//! The processes of a cluster: starting `boxoffice node` and `boxoffice sandbox`, signalling
//! them, and the tails of their logs.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

use crate::settings::Settings;

/// Starts `boxoffice node --config <config>`, appending its output to `log`.
pub fn spawn_node(settings: &Settings, config: &Path, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut command = Command::new(&settings.bin);
    if settings.json_logs {
        command.args(["--log-format", "json"]);
    }
    command
        .args(["node", "--config"])
        .arg(config)
        .env("RUST_LOG", "info,openraft=warn,tantivy=warn")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting boxoffice node")
}

/// Starts the sandbox payment provider on `addr`, sending webhooks to every gateway in
/// `gateways` (`host:port`), its output in `log`.
pub fn spawn_sandbox<'a>(
    settings: &Settings,
    addr: &str,
    gateways: impl Iterator<Item = &'a str>,
    log: &Path,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    let secrets = &settings.secrets;
    let mut command = Command::new(&settings.bin);
    command.args(["sandbox", "--http", addr, "--api-key", secrets.payment_api_key]);
    command.args(["--webhook-secret", secrets.webhook_secret]);
    command.args(["--delay-max-ms", &settings.sandbox_delay_max_ms.to_string()]);
    command.args(["--duplicate-per-mille", &settings.sandbox_duplicate_per_mille.to_string()]);
    for gateway in gateways {
        command.args(["--webhook", &format!("http://{gateway}/webhooks/payments")]);
    }
    command.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
    command.spawn().context("starting boxoffice sandbox")
}

/// Sends `signal` to a child process.
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child process this harness spawned and has not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

/// SIGKILLs a child (resuming it first, were it paused) and reaps it.
pub fn kill(mut child: Child) {
    signal(&child, libc::SIGCONT);
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `lines` lines of a log file under a heading naming it.
pub fn log_tail(out: &mut String, heading: &str, log: &Path, lines: usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    let _ = writeln!(out, "----- {heading} -----");
    for line in tail.into_iter().rev() {
        let _ = writeln!(out, "{line}");
    }
}

//! The independent clients the tests drive (`tests/clients`): Python scripts with aioquic,
//! Playwright over Debian's Chromium, and axe-core, in the environment `scripts/setup-clients`
//! makes. A missing tool fails the test that needs it; it never skips it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The repository's root (the harness sits in `tests/harness`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository's root")
}

/// The Python of the clients' environment, made (or found) by `scripts/setup-clients`.
pub fn python() -> String {
    let out = Command::new(repo().join("scripts/setup-clients")).output().expect("scripts/setup-clients runs");
    assert!(out.status.success(), "scripts/setup-clients failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("a path").trim().to_string()
}

/// Runs a client script of `tests/clients` to its end and returns its JSON lines (asserting it
/// exited 0).
pub fn run_client(script: &str, args: &[String]) -> Vec<Value> {
    let out = Command::new(python())
        .arg(repo().join("tests/clients").join(script))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the client starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
}

/// The line of `lines` whose `check` is `name`.
pub fn check<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines.iter().find(|l| l["check"] == name).unwrap_or_else(|| panic!("no `{name}` line in {lines:?}"))
}

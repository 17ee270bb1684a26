//! Property-based fuzzing of the whole HTTP API from its own OpenAPI document: Schemathesis
//! (`scripts/setup-clients` installs it) generates requests for every operation of
//! `boxoffice dev`'s `/openapi.json` and checks every answer: never a 5xx, a status and a body
//! that the document promises, with the content type it names. Authenticated routes are reached
//! with a fan's token and, for the admin routes, the admin token; server-sent event streams have
//! each event checked. The fault injection route is left out (and is disabled in
//! `boxoffice dev` anyway: the test checks it).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::clients::python;
use harness::dev::{signed_in_fan, Dev};
use serde_json::Value;

/// Test cases per operation and phase: enough to find the shapes that break a handler, few
/// enough for two cores.
const EXAMPLES_PER_OPERATION: &str = "10";
/// The time budget of one Schemathesis run, in seconds (its fuzzing phase repeats until then).
const RUN_TIME_MAX_S: &str = "70";
/// What Schemathesis checks on every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// Runs Schemathesis over the operations `filter` selects, as `token`; asserts it exits 0.
fn schemathesis(base: &str, token: &str, filter: &[&str], reports: &Path) {
    let cli = Path::new(&python()).with_file_name("schemathesis");
    let out = Command::new(cli)
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--checks", CHECKS, "--mode", "positive", "--max-examples", EXAMPLES_PER_OPERATION])
        .args(["--phases", "examples,coverage,fuzzing", "--max-time", RUN_TIME_MAX_S])
        .args(["--request-timeout", "10", "--workers", "2", "--seed", "1", "--no-color"])
        .args(filter)
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--report", "junit", "--report-dir"])
        .arg(reports)
        // Schemathesis keeps a cache of what it found in its working folder: the test's own.
        .current_dir(reports.parent().expect("the reports sit in the test's folder"))
        .output()
        .expect("schemathesis starts");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures ({:?})\n--- report\n{report}\n--- stderr\n{}",
        filter,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "schemathesis ran operations:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_nor_answer_off_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let base = format!("http://{addr}");
    let (data, log) = (dir.path().join("data"), dir.path().join("dev.log"));
    let dev = Dev::start(&addr, &data, &log);
    dev.wait_up(1).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_string();
    let (fan, _) = signed_in_fan(&http, &base, "fuzzer").await;

    // The one route that could break the cluster on purpose is off in this run.
    let faults = http.put(format!("{base}/admin/faults")).bearer_auth(&admin).json(&serde_json::json!({}));
    assert_eq!(faults.send().await.unwrap().status(), 404, "fault injection is disabled in boxoffice dev");
    let document: Value = http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(document["paths"]["/events/{eventId}/waiting-room/join"].is_object(), "the room's routes are merged in");

    let reports = dir.path().join("reports");
    // One filter of each kind per run: Schemathesis keeps only the last of a repeated option.
    schemathesis(&base, &fan, &["--exclude-path-regex", "^/admin/"], &reports);
    schemathesis(&base, &admin, &["--include-path-regex", "^/admin/", "--exclude-path", "/admin/faults"], &reports);
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the cluster still serves after the fuzzing");
    dev.stop();
}

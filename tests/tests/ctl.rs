//! `boxoffice ctl` against a cluster of real node processes, as an operator runs it: the status
//! table and its JSON, events created from a file, and the clear refusals of a bad backup folder,
//! a folder that is no backup, a wrong token or a cluster that is not there. A backup and its
//! restore during an on-sale are `backup.rs`'s.

use std::process::Output;

use harness::{test_binary, Cluster, Secrets, Settings};
use serde_json::{json, Value};

/// Runs `boxoffice ctl` with `args`, the token given through the environment as an operator does.
async fn ctl(url: &str, token: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(test_binary())
        .arg("ctl")
        .args(args)
        .env("BOXOFFICE_URL", url)
        .env("BOXOFFICE_ADMIN_TOKEN", token)
        .output()
        .await
        .expect("boxoffice runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_shows_the_cluster_creates_events_and_says_what_to_fix() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let url = cluster.url(1);
    let token = Secrets::HARNESS.admin_token;

    let status = ctl(&url, token, &["status"]).await;
    let table = text(&status.stdout);
    println!("{table}");
    assert!(status.status.success(), "ctl status failed: {}", text(&status.stderr));
    for node in 1..=3 {
        let row = table.lines().find(|l| l.starts_with(&format!("{node} "))).expect("a row per node");
        assert!(row.contains(" up "), "node {node} is up: {row}");
        let leads: u32 = row.split_whitespace().last().unwrap().parse().unwrap();
        assert!(leads >= 1, "a new cluster's first leaders are spread over the nodes: {table}");
    }
    let groups: Vec<&str> = table.lines().skip_while(|l| !l.starts_with("GROUP")).skip(1).collect();
    assert!(groups.len() >= 2, "the placement group and an inventory group at least: {table}");
    for row in &groups {
        assert_eq!(row.matches(":leader:").count(), 1, "one leader a group: {row}");
        assert_eq!(row.matches(':').count(), 6, "three replicas a group: {row}");
    }

    let json = ctl(&url, token, &["status", "--json"]).await;
    assert!(json.status.success(), "{}", text(&json.stderr));
    let json: Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(3), "{json}");

    let seeded = cluster.seed_event(40).await.unwrap();
    let venue = seeded["venue"]["id"].clone();
    let performers: Vec<Value> = seeded["performers"].as_array().unwrap().iter().map(|p| p["id"].clone()).collect();
    assert!(venue.is_u64() && !performers.is_empty(), "the seeded event names its venue and performers: {seeded}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.json");
    let event = |name: &str| {
        json!({
            "name": name, "description": "from a file", "category": "concert",
            "startsAt": "2031-06-01T20:00:00Z",
            "venueId": venue, "performerIds": performers,
        })
    };
    std::fs::write(&file, serde_json::to_vec(&json!({"events": [event("First"), event("Second")]})).unwrap()).unwrap();
    let created = ctl(&url, token, &["events", "create", "--file", file.to_str().unwrap(), "--json"]).await;
    assert!(created.status.success(), "{}", text(&created.stderr));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let ids = created["ids"].as_array().expect("the new events' ids").clone();
    assert_eq!(ids.len(), 2, "{created}");
    for id in ids {
        let page = reqwest::get(format!("{url}/events/{id}")).await.unwrap();
        assert_eq!(page.status(), 200, "event {id} was created");
    }

    std::fs::write(&file, "{not json").unwrap();
    let bad = ctl(&url, token, &["events", "create", "--file", file.to_str().unwrap()]).await;
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("is not JSON"), "{}", text(&bad.stderr));

    let relative = ctl(&url, token, &["backup", "--to", "backups/today"]).await;
    assert!(!relative.status.success(), "a backup goes to an absolute path on the node");
    assert!(text(&relative.stderr).contains("absolute path"), "{}", text(&relative.stderr));
    let not_a_backup =
        ctl(&url, token, &["restore", "--from", dir.path().to_str().unwrap(), "--data", "/nonexistent"]).await;
    assert!(!not_a_backup.status.success());
    assert!(text(&not_a_backup.stderr).contains("is not a backup"), "{}", text(&not_a_backup.stderr));

    let refused = ctl(&url, "not-the-token-at-all", &["status"]).await;
    assert!(!refused.status.success(), "a wrong token fails");
    let said = text(&refused.stderr);
    assert!(said.contains("403") && said.contains("BOXOFFICE_ADMIN_TOKEN"), "says what to fix: {said}");

    drop(cluster);
    let gone = ctl(&url, token, &["status"]).await;
    assert!(!gone.status.success(), "no cluster, no status");
    assert!(text(&gone.stderr).contains("is the cluster running"), "{}", text(&gone.stderr));
}

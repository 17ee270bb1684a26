//! A backup taken while fans hold and pay (an on-sale), restored into a new cluster, holds every
//! booking acknowledged before the backup was asked for: held ones held (or since confirmed),
//! confirmed ones confirmed. The backup and the restore are `boxoffice ctl`'s, as an operator runs
//! them, on real node processes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{test_binary, Cluster, Fan, Secrets, Settings};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::watch;

/// Buyers at once.
const FANS: u32 = 4;
/// Fans each buyer signs in as, in turn: a fan may hold or own 8 tickets of an event.
const FANS_PER_BUYER: u32 = 16;
/// Seats each fan buys before the buyer takes the next fan.
const SEATS_PER_FAN: u32 = 4;
/// Seats of the event: more than the fans buy in the test's few seconds.
const SEATS: u32 = 2_000;
/// How long the on-sale runs before the backup, and after it.
const LOAD_BEFORE: Duration = Duration::from_millis(1_000);
const LOAD_AFTER: Duration = Duration::from_millis(1_000);
/// A buyer's pause between seats, so that its fans last past the backup.
const BUYER_PAUSE: Duration = Duration::from_millis(30);
/// The card the sandbox provider accepts.
const CARD_OK: &str = "4242424242424242";

/// A booking a node acknowledged, and when.
#[derive(Debug, Clone)]
struct Acknowledged {
    fan: usize,
    booking: String,
    confirmed: bool,
    at: Instant,
}

/// Buyer `n` buys seats `n`, `n + FANS`, … one at a time as its fans in turn (`first` is the
/// first one's index in `fans`), paying for every other one, until `stop` or its fans are done.
async fn buy(
    n: u32,
    fans: Vec<Fan>,
    first: usize,
    base: String,
    event: u64,
    log: Arc<Mutex<Vec<Acknowledged>>>,
    stop: watch::Receiver<bool>,
) {
    let mut seat = n;
    for bought in 0.. {
        let Some(fan) = fans.get((bought / SEATS_PER_FAN) as usize) else { return };
        let who = first + (bought / SEATS_PER_FAN) as usize;
        if *stop.borrow() || seat >= SEATS {
            return;
        }
        let held = fan.hold(&base, event, &[seat]).await.unwrap();
        assert_eq!(held.status, StatusCode::CREATED, "seat {seat} is the fan's alone: {:?}", held.body);
        let booking = held.body["bookingId"].as_str().unwrap().to_string();
        log.lock().unwrap().push(Acknowledged {
            fan: who,
            booking: booking.clone(),
            confirmed: false,
            at: Instant::now(),
        });
        if bought % 2 == 0 {
            let paid = fan.pay(&base, &booking, CARD_OK).await.unwrap();
            assert_eq!(paid.status, StatusCode::OK, "{:?}", paid.body);
            log.lock().unwrap().push(Acknowledged { fan: who, booking, confirmed: true, at: Instant::now() });
        }
        seat += FANS;
        tokio::time::sleep(BUYER_PAUSE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_during_an_on_sale_restored_into_a_new_cluster_keeps_every_acknowledged_booking() {
    let cluster = Cluster::start(Settings::default()).await.unwrap();
    let event = cluster.seed_event(SEATS as usize).await.unwrap()["id"].as_u64().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop) = watch::channel(false);
    let mut fans = Vec::new();
    let mut buyers = Vec::new();
    for n in 0..FANS {
        let node = 1 + u64::from(n) % 3;
        let first = fans.len();
        let mut own = Vec::new();
        for f in 0..FANS_PER_BUYER {
            own.push(cluster.fan(node, format!("buyer{n}-{f}")).await.unwrap());
        }
        fans.extend(own.iter().cloned());
        buyers.push((n, own, first, cluster.url(node)));
    }
    let buyers: Vec<_> = buyers
        .into_iter()
        .map(|(n, own, first, base)| tokio::spawn(buy(n, own, first, base, event, log.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(LOAD_BEFORE).await;

    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("node2");
    let asked_at = Instant::now();
    let backup = tokio::process::Command::new(test_binary())
        .args(["ctl", "backup", "--json", "--to", dir.to_str().unwrap()])
        .env("BOXOFFICE_URL", cluster.url(2))
        .env("BOXOFFICE_ADMIN_TOKEN", Secrets::HARNESS.admin_token)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&backup.stdout);
    assert!(backup.status.success(), "ctl backup: {}", String::from_utf8_lossy(&backup.stderr));
    let manifest: Value =
        serde_json::from_str(&said).unwrap_or_else(|e| panic!("ctl backup --json prints the backup: {e}: {said}"));
    assert_eq!(manifest["node"], 2, "{manifest}");
    assert!(
        dir.join("db").is_dir() && dir.join("backup.json").is_file(),
        "the folder holds the database and its description"
    );
    println!("backup of node 2 during the on-sale: {manifest}");
    tokio::time::sleep(LOAD_AFTER).await;
    stop_tx.send(true).unwrap();
    for buyer in buyers {
        buyer.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    let before: Vec<&Acknowledged> = log.iter().filter(|a| a.at < asked_at).collect();
    let after = log.len() - before.len();
    println!("{} bookings and payments acknowledged before the backup was asked for, {after} after", before.len());
    assert!(before.len() >= 10 && after >= 1, "the backup ran during the on-sale");
    drop(cluster);

    let settings = Settings { restore_from: Some(dir.clone()), ..Settings::default() };
    let restored = Cluster::start(settings).await.unwrap();
    let mut missing = Vec::new();
    for ack in &before {
        let fan = &fans[ack.fan];
        let read = fan.booking(&restored.url(1), &ack.booking).await.unwrap();
        let status = read.body["status"].as_str().unwrap_or_default().to_string();
        let kept = read.status == StatusCode::OK && (!ack.confirmed || status == "confirmed");
        if !kept {
            missing.push((ack.booking.clone(), ack.confirmed, read.status, status));
        }
    }
    assert!(missing.is_empty(), "acknowledged before the backup, not in the restored cluster: {missing:?}");
    let statuses = harness::ticket_statuses(&restored.http, &restored.url(3), event).await.unwrap();
    let sold = statuses.iter().filter(|s| s.as_str() != "available").count();
    println!("the restored cluster: {sold} of {SEATS} seats held or sold, every acknowledged booking kept");
}

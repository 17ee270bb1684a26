//! Kill the leader of a busy event's group with SIGKILL: holds succeed again within 5 s, nothing
//! acknowledged is lost, and the killed node, restarted after its log was purged on the others,
//! catches up from a snapshot. And a new cluster whose first node never came elects without it.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{ticket_statuses, Cluster, Fan, Settings, StatusCode};

const SEATS: usize = 40_000;
const WORKERS: usize = 16;

#[derive(Default)]
struct Record {
    /// (ticket, booking id, fan index) of every acknowledged hold.
    held: Vec<(u32, String, usize)>,
    /// Booking ids whose payment was acknowledged.
    sold: Vec<String>,
    /// Booking ids whose payment got no definite answer: sold or still held.
    paid_unknown: Vec<String>,
    /// Requests without a definite answer (connection lost, timeout, 503).
    unknown: usize,
    /// When each acknowledged hold's request started and when its answer came.
    acked_at: Vec<(Instant, Instant)>,
    conflicts: usize,
}

/// What the load workers share.
#[derive(Clone)]
struct Load {
    urls: Vec<(u64, String)>,
    /// Nodes requests go to; the victim leaves it when it is killed.
    alive: Arc<Mutex<Vec<u64>>>,
    /// The next ticket to try: each ticket is tried once.
    next: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    event: u64,
}

async fn worker(n: usize, fan: Fan, load: Load) {
    let Load { urls: cluster_urls, alive, next, stop, record, event } = load;
    let mut turn = n;
    while !stop.load(Ordering::Relaxed) {
        let ticket = next.fetch_add(1, Ordering::Relaxed);
        if ticket as usize >= SEATS {
            return;
        }
        let node = {
            let alive = alive.lock().unwrap();
            alive[turn % alive.len()]
        };
        turn += 1;
        let base = &cluster_urls.iter().find(|(id, _)| *id == node).unwrap().1;
        let started = Instant::now();
        match fan.hold(base, event, &[ticket]).await {
            Ok(answer) if answer.status == StatusCode::CREATED => {
                let booking = answer.body["bookingId"].as_str().unwrap().to_string();
                {
                    let mut r = record.lock().unwrap();
                    r.held.push((ticket, booking.clone(), n));
                    r.acked_at.push((started, Instant::now()));
                }
                if ticket % 3 == 0 {
                    match fan.pay(base, &booking, "4242424242424242").await {
                        Ok(paid) if paid.status == StatusCode::OK => record.lock().unwrap().sold.push(booking),
                        _ => {
                            let mut r = record.lock().unwrap();
                            r.unknown += 1;
                            r.paid_unknown.push(booking);
                        }
                    }
                }
            }
            Ok(answer) if answer.status == StatusCode::CONFLICT => record.lock().unwrap().conflicts += 1,
            _ => record.lock().unwrap().unknown += 1,
        }
    }
}

/// Waits until node `id` has applied `group` up to `target`.
async fn wait_applied(cluster: &Cluster, id: u64, group: u64, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let replica = cluster.replica(id, group).await.unwrap();
        if replica["appliedIndex"].as_u64().unwrap_or(0) >= target {
            return;
        }
        assert!(Instant::now() < deadline, "node {id} did not catch up to {target}: {replica}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_leader_under_load_loses_nothing_and_it_catches_up_from_a_snapshot() {
    let settings = Settings {
        raft_extra: "snapshot_logs_since_last = 100\nsnapshot_logs_kept_max = 10\n".into(),
        // Each loader holds thousands of seats: no per-fan limit here.
        gateway_extra: "tickets_per_fan_max = 0".into(),
        ..Settings::default()
    };
    let mut cluster = Cluster::start(settings.clone()).await.unwrap();
    let event = cluster.seed_event(SEATS).await.unwrap();
    let event_id = event["id"].as_u64().unwrap();
    let group = model::group_for_new_event(event_id, settings.inventory_groups) as u64;
    let urls: Vec<(u64, String)> = cluster.running().into_iter().map(|id| (id, cluster.url(id))).collect();
    let alive = Arc::new(Mutex::new(cluster.running()));
    let fans =
        futures::future::join_all((0..WORKERS).map(|n| cluster.fan(1 + (n as u64 % 3), format!("loader{n}")))).await;
    let load = Load {
        urls,
        alive: alive.clone(),
        next: Arc::new(AtomicU32::new(0)),
        stop: Arc::new(AtomicBool::new(false)),
        record: Arc::new(Mutex::new(Record::default())),
        event: event_id,
    };
    let (stop, record) = (load.stop.clone(), load.record.clone());
    let workers: Vec<_> =
        fans.into_iter().enumerate().map(|(n, fan)| tokio::spawn(worker(n, fan.unwrap(), load.clone()))).collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let victim = cluster.leader_of(group).await.unwrap();
    let index_at_kill = cluster.replica(victim, group).await.unwrap()["lastLogIndex"].as_u64().unwrap();
    let acked_before = record.lock().unwrap().held.len();
    assert!(acked_before > 20, "the load is running before the kill ({acked_before} holds)");
    alive.lock().unwrap().retain(|&id| id != victim);
    let killed_at = Instant::now();
    cluster.kill(victim);
    eprintln!("killed node {victim}, leader of group {group}, at {:?}", std::time::SystemTime::now());

    // Holds succeed again within 5 s of the kill.
    let recovered_at = loop {
        // The first answer to a hold that was asked after the kill.
        let first_after = record
            .lock()
            .unwrap()
            .acked_at
            .iter()
            .filter(|(asked, _)| *asked > killed_at)
            .map(|(_, answered)| *answered)
            .min();
        if let Some(t) = first_after {
            break t;
        }
        if killed_at.elapsed() > Duration::from_secs(15) {
            for id in cluster.running() {
                eprintln!("node {id}: {:?}", cluster.replica(id, group).await);
            }
            let r = record.lock().unwrap();
            panic!(
                "no hold succeeded within 15 s of killing the leader (unknown {}, held {})",
                r.unknown,
                r.held.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let recovery = recovered_at.duration_since(killed_at);
    eprintln!("holds succeeded again {} ms after the leader was killed", recovery.as_millis());
    assert!(recovery < Duration::from_secs(5), "holds took {recovery:?} to succeed again");

    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    drop(load);
    let record = Arc::try_unwrap(record).ok().unwrap().into_inner().unwrap();
    eprintln!("holds acknowledged {}, sales {}, unknown {}", record.held.len(), record.sold.len(), record.unknown);
    assert_eq!(record.conflicts, 0, "every ticket was tried once: a conflict means a lost or doubled hold");

    // While the victim is down, the others snapshot and purge their logs past where it stopped.
    let survivors = cluster.running();
    for &id in &survivors {
        let response = cluster
            .http
            .post(format!("{}/admin/groups/{group}/snapshot", cluster.url(id)))
            .bearer_auth(harness::ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "snapshot trigger: {}", response.status());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for &id in &survivors {
        loop {
            let purged = cluster.replica(id, group).await.unwrap()["purgedIndex"].as_u64().unwrap_or(0);
            if purged > index_at_kill {
                break;
            }
            assert!(Instant::now() < deadline, "node {id} did not purge its log past {index_at_kill} (at {purged})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // The target is what the survivors applied while the victim was down (the load has
    // stopped), read before the restart: the victim, back, first names the leader of its saved
    // vote, itself, and reports its own old index.
    let mut target = 0;
    for &id in &survivors {
        target = target.max(cluster.replica(id, group).await.unwrap()["appliedIndex"].as_u64().unwrap_or(0));
    }
    assert!(target > index_at_kill, "the survivors went on after the kill ({target} > {index_at_kill})");
    cluster.restart(victim).await.unwrap();
    for id in cluster.running() {
        wait_applied(&cluster, id, group, target).await;
    }
    let caught_up = cluster.replica(victim, group).await.unwrap();
    let snapshot_index = caught_up["snapshotIndex"].as_u64().unwrap_or(0);
    assert!(
        snapshot_index > index_at_kill,
        "the restarted node caught up from a snapshot ({snapshot_index} > {index_at_kill})"
    );

    // Nothing acknowledged is lost, on the restarted node as on the others.
    let sold: std::collections::HashSet<&String> = record.sold.iter().collect();
    let maybe_sold: std::collections::HashSet<&String> = record.paid_unknown.iter().collect();
    for id in cluster.running() {
        let statuses = ticket_statuses(&cluster.http, &cluster.url(id), event_id).await.unwrap();
        for (ticket, booking, _) in &record.held {
            let status = statuses[*ticket as usize].as_str();
            let fits = match (sold.contains(booking), maybe_sold.contains(booking)) {
                (true, _) => status == "sold",
                (false, true) => status == "sold" || status == "held",
                (false, false) => status == "held",
            };
            assert!(fits, "node {id}: ticket {ticket} of booking {booking} is {status}");
        }
    }
}

/// The node with the lowest id starts a new cluster's first elections; with it down from the
/// start, the others initialize the groups themselves after an election timeout, sell, and the
/// first node, started late, catches up with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_cluster_elects_without_its_first_node_and_takes_it_in_later() {
    let settings = Settings { not_started: vec![1], ..Settings::default() };
    let mut cluster = Cluster::start(settings).await.unwrap();
    assert_eq!(cluster.running(), vec![2, 3]);
    let event = cluster.seed_event(10).await.unwrap()["id"].as_u64().unwrap();
    let fan = cluster.fan(2, "early").await.unwrap();
    let held = fan.hold(&cluster.url(3), event, &[4]).await.unwrap();
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);

    cluster.restart(1).await.unwrap();
    cluster.wait_caught_up(1, 2, Duration::from_secs(30)).await.unwrap();
    let statuses = ticket_statuses(&cluster.http, &cluster.url(1), event).await.unwrap();
    assert_eq!(statuses[4], "held", "node 1 reads the hold made before it started");
}

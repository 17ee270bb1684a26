//! The benchmark's peers against real processes: PostgreSQL (alone and with two synchronous
//! standbys), Redis (both persistence modes), nginx and a three-member etcd start from nothing,
//! answer the hold and read operations as the benchmark expects, and go away when dropped.
//!
//! A missing binary fails the test with its install hint: a benchmark without its peers would
//! compare nothing, so nothing here is skipped.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bench::load::{Answer, Worker};
use bench::peers::etcd::{etcd_workers, Etcd, EtcdHold};
use bench::peers::nginx::Nginx;
use bench::peers::postgres::{PgHold, Postgres};
use bench::peers::redis::{Redis, RedisHold};
use bench::peers::Holder;

/// A fresh folder under /tmp (reachable by the postgres user), removed by the guard.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("boxoffice-peers-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a test body with a bound, so that a peer that hangs fails the test instead.
async fn bounded<F: Future<Output = anyhow::Result<()>>>(secs: u64, body: F) {
    match tokio::time::timeout(Duration::from_secs(secs), body).await {
        Ok(result) => result.unwrap(),
        Err(_) => panic!("test took longer than {secs} s"),
    }
}

fn event_json() -> String {
    let seats: Vec<String> = (0..60).map(|n| format!("{{\"ticket\":{n},\"price\":4500}}")).collect();
    format!("{{\"id\":1,\"name\":\"The Benchmarks\",\"seats\":[{}]}}", seats.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_alone_grants_one_hold_and_expired_holds_are_taken_over() {
    let dir = TempDir::new("pg");
    bounded(90, async {
        let pg = Postgres::start(&dir.0, 0).await?;
        let event = event_json();
        pg.load(100, &event).await?;
        let (a, b) = (PgHold::connect(&pg).await?, PgHold::connect(&pg).await?);
        assert!(a.hold(7, 1, None).await?, "the first hold of a free ticket is granted");
        assert!(!b.hold(7, 2, None).await?, "a held ticket is refused");
        assert!(!a.hold(7, 1, None).await?, "even to its holder: the hold is not re-entrant");
        assert!(a.hold(8, 1, Some(50)).await?);
        assert!(!b.hold(8, 2, Some(50)).await?, "a live hold with a ttl is refused too");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(b.hold(8, 2, Some(50)).await?, "an expired hold is taken over");
        assert!(!a.hold(100, 1, None).await?, "ticket ids are 0..tickets");
        assert!(a.hold(0, 1, None).await?);
        assert_eq!(a.read_event().await?, event.len());
        assert_eq!(a.reserved_count().await?, 3);
        pg.load(100, &event).await?;
        assert_eq!(a.reserved_count().await?, 0, "load starts over");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_two_standbys_waits_for_both() {
    let dir = TempDir::new("pg-sync");
    bounded(180, async {
        let started = Instant::now();
        let pg = Postgres::start(&dir.0, 2).await?;
        eprintln!("postgres with 2 standbys started in {:?}", started.elapsed());
        assert_eq!(pg.sync_standbys().await?, 2);
        assert_eq!(pg.standby_dsns.len(), 2);
        pg.load(10, &event_json()).await?;
        let hold = PgHold::connect(&pg).await?;
        assert!(hold.hold(3, 1, Some(60_000)).await?);
        assert!(!hold.hold(3, 2, Some(60_000)).await?);
        // Synchronous: the standbys have the hold once it is acknowledged (and replayed soon after).
        let (standby, connection) = tokio_postgres::connect(&pg.standby_dsns[0], tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let query = "SELECT count(*) FROM tickets WHERE status = 'reserved'";
            if standby.query_one(query, &[]).await.is_ok_and(|r| r.get::<_, i64>(0) == 1) {
                break;
            }
            assert!(Instant::now() < deadline, "the standby never showed the hold");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stops_when_dropped() {
    let dir = TempDir::new("pg-drop");
    bounded(90, async {
        let dsn = Postgres::start(&dir.0, 0).await?.dsn.clone();
        assert!(tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await.is_err(), "nothing answers after drop");
        Ok(())
    })
    .await;
}

async fn redis_holds(fsync_always: bool) -> anyhow::Result<()> {
    let dir = TempDir::new(if fsync_always { "redis-always" } else { "redis-default" });
    let redis = Redis::start(&dir.0, fsync_always).await?;
    let (mut a, mut b) = (RedisHold::connect(&redis.addr).await?, RedisHold::connect(&redis.addr).await?);
    assert!(a.hold(7, 1, None).await?);
    assert!(!b.hold(7, 2, None).await?);
    assert!(a.hold(8, 1, Some(50)).await?);
    assert!(!b.hold(8, 2, Some(50)).await?);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(b.hold(8, 2, Some(50)).await?, "an expired lock is taken over");
    assert!(a.count().await? >= 1);
    a.flush().await?;
    assert_eq!(a.count().await?, 0);
    assert!(b.hold(7, 2, None).await?, "flush frees everything");
    if fsync_always {
        assert!(dir.0.join("redis/appendonlydir").is_dir(), "appendonly is on");
    }
    let addr = redis.addr.clone();
    drop(redis);
    assert!(RedisHold::connect(&addr).await.is_err(), "nothing answers after drop");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_default_persistence_holds_with_set_nx() {
    bounded(30, redis_holds(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fsync_always_holds_with_set_nx() {
    bounded(30, redis_holds(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_the_body() {
    let dir = TempDir::new("nginx");
    bounded(30, async {
        let body = event_json();
        let nginx = Nginx::start(&dir.0, "/events/1", body.as_bytes()).await?;
        assert!(nginx.url.ends_with("/events/1"));
        let http = reqwest::Client::new();
        for _ in 0..3 {
            let response = http.get(&nginx.url).send().await?;
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["content-type"], "application/json");
            assert_eq!(response.text().await?, body);
        }
        let url = nginx.url.clone();
        drop(nginx);
        assert!(http.get(&url).send().await.is_err(), "nothing answers after drop");
        Ok(())
    })
    .await;
}

/// As root, the servers run as `postgres`: a folder that user cannot reach is refused up front,
/// with what to do about it (as anyone else, the folder is ours and PostgreSQL simply starts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_in_an_unreachable_folder_says_what_to_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("pg-locked");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let inner = dir.0.join("inner");
    std::fs::create_dir(&inner).unwrap();
    bounded(60, async {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        match Postgres::start(&inner, 0).await {
            Ok(_) => assert!(!root, "as root, the postgres user cannot walk into a 0700 folder of root's"),
            Err(e) => {
                assert!(root, "as ourselves it should start: {e:#}");
                assert!(e.to_string().contains("not reachable by the postgres user"), "{e:#}");
            }
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_holds_each_ticket_once_with_a_lease_and_one_transaction() {
    let dir = TempDir::new("etcd");
    bounded(120, async {
        let started = Instant::now();
        let etcd = Etcd::start(&dir.0, 3).await?;
        eprintln!("etcd with 3 members started in {:?}", started.elapsed());
        assert_eq!(etcd.urls.len(), 3);

        // 4 clients spread over the members, 75 holds each of one random ticket out of 100, with
        // a lease each (the holds outlast the test).
        let (clients, holds_each) = (4, 75);
        let workers = etcd_workers(&etcd, Holder::clients(clients, 100, Some(60_000)), 1);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for mut worker in workers {
            tasks.push(tokio::spawn(async move {
                let (mut granted, mut refused) = (0u64, 0u64);
                for _ in 0..holds_each {
                    match worker.next().await? {
                        Answer::Granted => granted += 1,
                        Answer::Refused => refused += 1,
                        other => anyhow::bail!("a hold answered {other:?}"),
                    }
                }
                Ok((granted, refused))
            }));
        }
        let (mut granted, mut refused) = (0, 0);
        for task in tasks {
            let (g, r) = task.await??;
            (granted, refused) = (granted + g, refused + r);
        }
        let elapsed = started.elapsed();
        let holds = (clients * holds_each) as u64;
        eprintln!(
            "etcd: {holds} holds in {elapsed:?} ({:.0} holds/s, {} ms each on average), {granted} granted",
            holds as f64 / elapsed.as_secs_f64(),
            (elapsed.as_millis() as u64 * clients as u64) / holds
        );
        assert_eq!(granted + refused, holds, "every hold is granted or refused");
        assert!(granted > 0 && granted <= 100 && refused > 0, "{granted} granted, {refused} refused");
        assert_eq!(etcd.held(1).await?, granted, "one key per granted hold: no ticket held twice");

        // All or none, and no re-entry, in event 2 (holds forever: no lease).
        let mut holders = Holder::clients(2, 10, None);
        let a = EtcdHold::new(&etcd, 0, holders.next().unwrap(), 2);
        let b = EtcdHold::new(&etcd, 1, holders.next().unwrap(), 2);
        assert!(a.hold(&[7]).await?, "the first hold of a free ticket is granted");
        assert!(!b.hold(&[7]).await?, "a held ticket is refused, through another member too");
        assert!(!a.hold(&[7]).await?, "even to its holder: the hold is not re-entrant");
        assert!(a.hold(&[3, 4]).await?);
        assert!(!b.hold(&[4, 5]).await?, "one held ticket refuses the whole hold");
        assert!(b.hold(&[5, 6]).await?, "and the refused hold took none of its tickets");
        assert_eq!(etcd.held(2).await?, 5);
        assert_eq!(etcd.held(1).await?, granted, "events are apart");

        // A hold of 1 s in event 3 expires and the ticket is free again. etcd raises a lease's TTL
        // to its minimum (2 s by default) and the leader revokes expired leases, so this takes a
        // few seconds.
        let mut holders = Holder::clients(2, 10, Some(1_000));
        let (a, b) =
            (EtcdHold::new(&etcd, 2, holders.next().unwrap(), 3), EtcdHold::new(&etcd, 0, holders.next().unwrap(), 3));
        let held_at = Instant::now();
        assert!(a.hold(&[9]).await?);
        assert!(!b.hold(&[9]).await?, "a live hold with a lease is refused");
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if b.hold(&[9]).await? {
                break;
            }
            assert!(held_at.elapsed() < Duration::from_secs(15), "the 1 s hold never expired");
        }
        eprintln!("etcd: a 1 s hold was taken over after {:?}", held_at.elapsed());
        assert!(held_at.elapsed() >= Duration::from_secs(1), "not before its ttl");
        assert_eq!(etcd.held(3).await?, 1);

        assert_eq!(etcd.clear(2).await?, 5);
        assert_eq!(etcd.held(2).await?, 0);
        let urls = etcd.urls.clone();
        drop(etcd);
        let http = reqwest::Client::new();
        for url in urls {
            assert!(
                http.post(format!("{url}/v3/maintenance/status")).body("{}").send().await.is_err(),
                "{url} is gone"
            );
        }
        Ok(())
    })
    .await;
}

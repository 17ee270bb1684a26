//! Holds end by time alone (design rule 3): nothing sweeps them, yet the ticket is free for the
//! next fan the moment the hold ends, and a late payment confirms only if nobody took the seats.

use std::time::Duration;

use harness::{Cluster, Settings, StatusCode};

const HOLD_TTL_MS: u64 = 1_500;

fn millis_until(expires_at: &str) -> u64 {
    let end = chrono_like_parse(expires_at);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    (end - now).max(0) as u64
}

/// Parses `YYYY-MM-DDTHH:MM:SS.mmmZ` into Unix milliseconds (enough for these tests).
fn chrono_like_parse(text: &str) -> i64 {
    let (date, time) = text.trim_end_matches('Z').split_once('T').expect("RFC 3339");
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * m + 2) / 5 + d[2] - 1 - 719_468;
    let ms: i64 = format!("{frac:0<3}")[..3].parse().unwrap();
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms
}

#[test]
fn rfc3339_parsing_for_the_test_is_right() {
    assert_eq!(chrono_like_parse("1970-01-01T00:00:01.500Z"), 1_500);
    assert_eq!(chrono_like_parse("2026-11-28T00:00:00.000Z"), 1_795_824_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ended_hold_frees_its_ticket_at_once_and_its_late_payment_fails_cleanly() {
    let cluster = Cluster::start(Settings { hold_ttl_ms: HOLD_TTL_MS, ..Settings::default() }).await.unwrap();
    let event = cluster.seed_event(10).await.unwrap();
    let event_id = event["id"].as_u64().unwrap();
    let base = cluster.url(1);
    let first = cluster.fan(1, "early").await.unwrap();
    let second = cluster.fan(2, "patient").await.unwrap();

    let held = first.hold(&base, event_id, &[3]).await.unwrap();
    assert_eq!(held.status, StatusCode::CREATED, "{held:?}");
    let booking = held.body["bookingId"].as_str().unwrap().to_string();
    let expires_at = held.body["expiresAt"].as_str().unwrap().to_string();
    let refused = second.hold(&cluster.url(2), event_id, &[3]).await.unwrap();
    assert_eq!(refused.status, StatusCode::CONFLICT, "the hold is still on");

    tokio::time::sleep(Duration::from_millis(millis_until(&expires_at) + 50)).await;
    let taken = second.hold(&cluster.url(2), event_id, &[3]).await.unwrap();
    assert_eq!(taken.status, StatusCode::CREATED, "the ticket is free the moment the hold ends: {taken:?}");

    let expired = first.booking(&base, &booking).await.unwrap();
    assert_eq!(expired.body["status"], "expired", "{expired:?}");
    let late = first.pay(&base, &booking, "4242424242424242").await.unwrap();
    assert_eq!(late.status, StatusCode::CONFLICT, "paying for an ended hold whose ticket is gone: {late:?}");
    assert!(late.is_problem());
    let after = first.booking(&base, &booking).await.unwrap();
    assert_eq!(after.body["status"], "expired", "a failed late payment changes nothing");
    let winner = second.booking(&base, taken.body["bookingId"].as_str().unwrap()).await.unwrap();
    assert_eq!(winner.body["status"], "held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_payment_confirms_when_nobody_took_the_tickets() {
    let cluster = Cluster::start(Settings { hold_ttl_ms: HOLD_TTL_MS, ..Settings::default() }).await.unwrap();
    let event = cluster.seed_event(10).await.unwrap();
    let event_id = event["id"].as_u64().unwrap();
    let base = cluster.url(3);
    let fan = cluster.fan(3, "slowpoke").await.unwrap();
    let held = fan.hold(&base, event_id, &[1, 2]).await.unwrap();
    assert_eq!(held.status, StatusCode::CREATED);
    let booking = held.body["bookingId"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(millis_until(held.body["expiresAt"].as_str().unwrap()) + 50)).await;
    let declined = fan.pay(&base, booking, "4000000000000002").await.unwrap();
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED, "{declined:?}");
    let paid = fan.pay(&base, booking, "4242424242424242").await.unwrap();
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert_eq!(paid.body["status"], "confirmed");
    let again = fan.pay(&base, booking, "4242424242424242").await.unwrap();
    assert_eq!(again.status, StatusCode::OK, "paying twice answers the same and charges once");
    let other = cluster.fan(1, "latecomer").await.unwrap();
    let refused = other.hold(&cluster.url(1), event_id, &[2]).await.unwrap();
    assert_eq!(refused.status, StatusCode::CONFLICT, "a sold ticket stays sold");
}

//! The booking workload: many fans racing for the tickets of one hot event and a few quiet ones,
//! through whichever gateways are up, each request and answer recorded into the history.
//!
//! A fan holds one to four seats, then pays (sometimes with a declined card first), releases,
//! abandons the hold, or comes back to pay after the hold ended; now and then it reads its
//! booking again. A request that timed out or lost its connection is recorded as unknown.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::history::{Booking, Entry, Op, Result as Outcome};

/// How long one fan request may take before it counts as unknown. Above the nodes'
/// `write_timeout_ms` (5 s), so a node's own 503 usually arrives first.
pub const REQUEST_TIMEOUT_MS: u64 = 7_000;
pub const GOOD_CARD: &str = "4242424242424242";
pub const DECLINED_CARD: &str = "4000000000000002";

/// The gateways requests may go to: nodes up and not paused. Updated by the fault loop.
pub type Targets = Arc<RwLock<Vec<(u64, String)>>>;

/// The events fans shop for: one hot, a few quiet, each with its seat count.
#[derive(Debug, Default)]
pub struct Events {
    pub hot: (u64, u32),
    pub quiet: Vec<(u64, u32)>,
}

/// The history being recorded: kept in memory for the checker and streamed to a file.
pub struct Recorder {
    origin: Instant,
    next_id: AtomicU64,
    entries: Mutex<Vec<Entry>>,
    file: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl Recorder {
    pub fn new(path: &std::path::Path) -> std::io::Result<Recorder> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        Ok(Recorder {
            origin: Instant::now(),
            next_id: AtomicU64::new(1),
            entries: Mutex::new(Vec::new()),
            file: Mutex::new(file),
        })
    }

    /// Real time of the run: milliseconds since it began, from one monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Records one request and its answer; returns the entry's id and the answer.
    pub fn record_entry(&self, fan: u64, op: Op, start_ms: u64, result: Outcome) -> (u64, Outcome) {
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            fan,
            op,
            start_ms,
            end_ms: self.now_ms(),
            result,
        };
        if let Ok(line) = serde_json::to_string(&entry) {
            let mut file = self.file.lock().expect("history file lock");
            let _ = writeln!(file, "{line}");
        }
        let answer = (entry.id, entry.result.clone());
        self.entries.lock().expect("history lock").push(entry);
        answer
    }

    pub fn flush(&self) {
        let _ = self.file.lock().expect("history file lock").flush();
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().expect("history lock").clone()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("history lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One signed-in fan.
#[derive(Clone)]
pub struct Fan {
    pub user: u64,
    pub token: String,
}

/// What every fan task shares.
#[derive(Clone)]
pub struct Shop {
    pub http: reqwest::Client,
    pub targets: Targets,
    pub events: Arc<RwLock<Events>>,
    pub recorder: Arc<Recorder>,
    pub stop: Arc<AtomicBool>,
    pub hold_ttl_ms: u64,
}

/// Reads an RFC 3339 time as Unix milliseconds.
fn millis(value: &Value) -> Option<u64> {
    let text = value.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis().max(0) as u64)
}

/// A booking as the API showed it.
pub fn booking_from_view(view: &Value, fan: u64) -> Option<Booking> {
    Some(Booking {
        id: view["bookingId"].as_str()?.to_string(),
        event: view["eventId"].as_u64()?,
        fan,
        tickets: view["tickets"].as_array()?.iter().filter_map(|t| t["id"].as_u64().map(|n| n as u32)).collect(),
        status: view["status"].as_str()?.to_string(),
        created_at_ms: millis(&view["createdAt"])?,
        held_until_ms: millis(&view["heldUntil"])?,
        confirmed_at_ms: millis(&view["confirmedAt"]),
        released_at_ms: millis(&view["releasedAt"]),
    })
}

impl Shop {
    fn target(&self, rng: &mut StdRng) -> Option<String> {
        let targets = self.targets.read().expect("targets lock");
        (!targets.is_empty()).then(|| targets[rng.gen_range(0..targets.len())].1.clone())
    }

    /// Sends one request for `fan` and records it.
    pub async fn request(&self, fan: &Fan, op: Op, rng: &mut StdRng) -> Outcome {
        self.request_admitted(fan, op, None, rng).await.1
    }

    /// Sends one request for `fan` through a gateway that is up, with an `Admission-Token` if
    /// given, and records it; returns the entry's id and the answer.
    pub async fn request_admitted(
        &self,
        fan: &Fan,
        op: Op,
        admission: Option<&str>,
        rng: &mut StdRng,
    ) -> (u64, Outcome) {
        let start_ms = self.recorder.now_ms();
        let result = match self.target(rng) {
            Some(base) => self.send(fan, &op, &base, admission).await,
            None => Outcome::Unknown { reason: "no node is up".into() },
        };
        self.recorder.record_entry(fan.user, op, start_ms, result)
    }

    async fn send(&self, fan: &Fan, op: &Op, base: &str, admission: Option<&str>) -> Outcome {
        let request = match op {
            Op::Hold { event, tickets } => {
                self.http.post(format!("{base}/events/{event}/bookings")).json(&json!({"ticketIds": tickets}))
            }
            Op::Release { booking } => self.http.delete(format!("{base}/bookings/{booking}")),
            Op::Pay { booking, card } => {
                self.http.post(format!("{base}/bookings/{booking}/payment")).json(&json!({"cardNumber": card}))
            }
            Op::ReadBooking { booking } => self.http.get(format!("{base}/bookings/{booking}")),
        };
        let request = match admission {
            Some(token) => request.header(harness::room::ADMISSION_TOKEN_HEADER, token),
            None => request,
        };
        let response = request.bearer_auth(&fan.token).timeout(Duration::from_millis(REQUEST_TIMEOUT_MS)).send().await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return Outcome::Unknown { reason: error.to_string() },
        };
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(error) => return Outcome::Unknown { reason: format!("{status}: {error}") },
        };
        if status.is_server_error() {
            return Outcome::Unknown { reason: format!("{status}: {}", body["detail"]) };
        }
        if !status.is_success() {
            let tickets = body["unavailableTicketIds"].as_array().into_iter().flatten();
            let tickets = tickets.filter_map(|t| t.as_u64().map(|n| n as u32)).collect();
            return Outcome::Fail { status: status.as_u16(), tickets };
        }
        match booking_from_view(&body, fan.user) {
            Some(booking) => Outcome::Ok { booking },
            None => Outcome::Unknown { reason: format!("{status} with an unreadable booking: {body}") },
        }
    }

    fn pick_tickets(&self, rng: &mut StdRng) -> (u64, Vec<u32>) {
        let events = self.events.read().expect("events lock");
        let (event, seats) = if events.quiet.is_empty() || rng.gen_bool(0.8) {
            events.hot
        } else {
            events.quiet[rng.gen_range(0..events.quiet.len())]
        };
        let count = rng.gen_range(1..=4u32).min(seats);
        // Neighbouring seats, as fans pick them: overlapping requests race for the same ones.
        let first = rng.gen_range(0..=seats - count);
        (event, (first..first + count).collect())
    }

    /// One fan shopping until told to stop.
    pub async fn fan(self, fan: Fan, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        while !self.stop.load(Ordering::Relaxed) {
            let (event, tickets) = self.pick_tickets(&mut rng);
            if let Outcome::Ok { booking } = self.request(&fan, Op::Hold { event, tickets }, &mut rng).await {
                self.after_hold(&fan, &booking.id, &mut rng).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..30))).await;
        }
    }

    async fn after_hold(&self, fan: &Fan, booking: &str, rng: &mut StdRng) {
        let pay = |card: &str| Op::Pay { booking: booking.into(), card: card.into() };
        match rng.gen_range(0..100) {
            0..40 => {
                self.request(fan, pay(GOOD_CARD), rng).await;
            }
            40..50 => {
                self.request(fan, pay(DECLINED_CARD), rng).await;
                if rng.gen_bool(0.5) {
                    self.request(fan, pay(GOOD_CARD), rng).await;
                }
            }
            50..65 => {
                self.request(fan, Op::Release { booking: booking.into() }, rng).await;
            }
            65..95 => {} // abandoned: the hold ends by itself
            _ => {
                // Comes back after the hold ended: confirms if nobody took the seats.
                tokio::time::sleep(Duration::from_millis(self.hold_ttl_ms + rng.gen_range(0..500))).await;
                self.request(fan, pay(GOOD_CARD), rng).await;
            }
        }
        if rng.gen_bool(0.3) {
            self.request(fan, Op::ReadBooking { booking: booking.into() }, rng).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booking_view_reads_into_the_history() {
        let view = json!({
            "bookingId": "3-00000000000000ab", "eventId": 3, "status": "confirmed",
            "tickets": [{"id": 4}, {"id": 5}], "createdAt": "2026-01-01T00:00:01.000Z",
            "heldUntil": "2026-01-01T00:00:04.000Z", "confirmedAt": "2026-01-01T00:00:02.500Z", "releasedAt": null
        });
        let booking = booking_from_view(&view, 9).unwrap();
        assert_eq!(booking.tickets, vec![4, 5]);
        assert_eq!(booking.held_until_ms - booking.created_at_ms, 3_000);
        assert_eq!(booking.confirmed_at_ms, Some(booking.created_at_ms + 1_500));
        assert_eq!(booking.released_at_ms, None);
        assert_eq!(booking_from_view(&json!({"bookingId": "x"}), 9), None);
    }
}

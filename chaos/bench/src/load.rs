//! The load engine: many clients sending one kind of request, in a closed loop (each client
//! sends its next request when the last one answered) or an open loop (requests start on a
//! fixed schedule, and latency counts from when each should have started, so a stall is not
//! hidden). Latencies go into an HdrHistogram; a line of progress prints every second.
//! [`Mixed`] makes one client of a reader and a writer.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A hold was granted.
    Granted,
    /// A hold was refused: the ticket is taken.
    Refused,
    /// A read answered.
    Read,
    /// A payment confirmed a held booking: one purchase done.
    Paid,
}

/// A client: sends one request each time it is asked.
pub trait Worker: Send + 'static {
    fn next(&mut self) -> impl Future<Output = anyhow::Result<Answer>> + Send;
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub label: String,
    /// Stop after this long…
    pub duration: Option<Duration>,
    /// …or once this many holds were granted (a sell-out), whichever comes first.
    pub granted_target: Option<u64>,
    /// Open loop: start this many requests per second in all, whatever the answers.
    pub rate_per_s: Option<u64>,
    /// Print a progress line every second.
    pub progress: bool,
}

/// Latencies are recorded in microseconds, up to a minute.
const LATENCY_MAX_US: u64 = 60_000_000;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadResult {
    pub label: String,
    pub clients: usize,
    pub elapsed_s: f64,
    pub requests: u64,
    pub granted: u64,
    pub refused: u64,
    pub reads: u64,
    /// Payments that confirmed a booking.
    pub paid: u64,
    pub errors: u64,
    /// Answered requests per second (granted, refused, reads and payments).
    pub per_s: f64,
    pub granted_per_s: f64,
    /// Purchases per second: payments that confirmed a booking.
    pub paid_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    granted: AtomicU64,
    refused: AtomicU64,
    reads: AtomicU64,
    paid: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn count(&self, answer: &anyhow::Result<Answer>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let counter = match answer {
            Ok(Answer::Granted) => &self.granted,
            Ok(Answer::Refused) => &self.refused,
            Ok(Answer::Read) => &self.reads,
            Ok(Answer::Paid) => &self.paid,
            Err(_) => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

/// Runs `workers` until the spec says stop; returns what they did.
pub async fn run<W: Worker>(spec: LoadSpec, workers: Vec<W>) -> LoadResult {
    assert!(!workers.is_empty(), "a load needs at least one client");
    assert!(spec.duration.is_some() || spec.granted_target.is_some(), "a load needs a way to end");
    let clients = workers.len();
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let merged = Arc::new(Mutex::new(histogram()));
    let started = Instant::now();
    let ticker = tokio::spawn(watch(spec.clone(), counters.clone(), stop.clone(), started));
    let interval = spec.rate_per_s.map(|rate| Duration::from_secs_f64(clients as f64 / rate.max(1) as f64));
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(n, worker)| {
            let (counters, stop, merged) = (counters.clone(), stop.clone(), merged.clone());
            // Open-loop clients start spread over one interval, so arrivals are even.
            let offset = interval.map(|i| i.mul_f64(n as f64 / clients as f64));
            tokio::spawn(client(worker, counters, stop, merged, interval, offset))
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let _ = ticker.await;
    let elapsed_s = started.elapsed().as_secs_f64();
    let hist = merged.lock().expect("histogram lock").clone();
    result(&spec, clients, elapsed_s, &counters, &hist)
}

async fn client<W: Worker>(
    mut worker: W,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    merged: Arc<Mutex<Histogram<u64>>>,
    interval: Option<Duration>,
    offset: Option<Duration>,
) {
    let mut hist = histogram();
    let mut due = Instant::now() + offset.unwrap_or_default();
    while !stop.load(Ordering::Relaxed) {
        if interval.is_some() {
            tokio::time::sleep_until(due.into()).await;
        }
        // Open loop measures from when the request was due, closed loop from when it was sent.
        let began = if interval.is_some() { due } else { Instant::now() };
        let answer = worker.next().await;
        let _ = hist.record((began.elapsed().as_micros() as u64).clamp(1, LATENCY_MAX_US));
        counters.count(&answer);
        if let Some(interval) = interval {
            due += interval;
        }
    }
    merged.lock().expect("histogram lock").add(&hist).expect("histograms share bounds");
}

/// Prints progress and raises `stop` when the time is up or the target is reached.
async fn watch(spec: LoadSpec, counters: Arc<Counters>, stop: Arc<AtomicBool>, started: Instant) {
    let mut last = (0u64, Instant::now());
    let mut next_line = Instant::now() + Duration::from_secs(1);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let granted = counters.granted.load(Ordering::Relaxed);
        let timed_out = spec.duration.is_some_and(|d| started.elapsed() >= d);
        let sold_out = spec.granted_target.is_some_and(|target| granted >= target);
        if timed_out || sold_out {
            stop.store(true, Ordering::Relaxed);
            return;
        }
        if spec.progress && Instant::now() >= next_line {
            next_line += Duration::from_secs(1);
            let requests = counters.requests.load(Ordering::Relaxed);
            let rate = (requests - last.0) as f64 / last.1.elapsed().as_secs_f64();
            last = (requests, Instant::now());
            let target = spec.granted_target.map(|t| format!("/{t}")).unwrap_or_default();
            println!(
                "  {}: {:>4.0}s {:>9} requests {:>8.0}/s granted {granted}{target} errors {}",
                spec.label,
                started.elapsed().as_secs_f64(),
                requests,
                rate,
                counters.errors.load(Ordering::Relaxed)
            );
        }
    }
}

fn result(spec: &LoadSpec, clients: usize, elapsed_s: f64, c: &Counters, hist: &Histogram<u64>) -> LoadResult {
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let (granted, refused, reads, paid) = (
        c.granted.load(Ordering::Relaxed),
        c.refused.load(Ordering::Relaxed),
        c.reads.load(Ordering::Relaxed),
        c.paid.load(Ordering::Relaxed),
    );
    LoadResult {
        label: spec.label.clone(),
        clients,
        elapsed_s,
        requests: c.requests.load(Ordering::Relaxed),
        granted,
        refused,
        reads,
        paid,
        errors: c.errors.load(Ordering::Relaxed),
        per_s: (granted + refused + reads + paid) as f64 / elapsed_s,
        granted_per_s: granted as f64 / elapsed_s,
        paid_per_s: paid as f64 / elapsed_s,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1000.0,
    }
}

/// A client of two kinds of request: `reads` reads for every write.
pub struct Mixed<R, W> {
    pub reads: u32,
    /// Where the client is in its round of reads; clients started at different counts spread
    /// their writes.
    pub done: u32,
    pub read: R,
    pub write: W,
}

impl<R: Worker, W: Worker> Worker for Mixed<R, W> {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        self.done = (self.done + 1) % (self.reads + 1);
        if self.done == 0 {
            self.write.next().await
        } else {
            self.read.next().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grants every third request after a short wait.
    struct Toy(u64);

    impl Worker for Toy {
        async fn next(&mut self) -> anyhow::Result<Answer> {
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.0 += 1;
            Ok(if self.0.is_multiple_of(3) { Answer::Granted } else { Answer::Refused })
        }
    }

    #[tokio::test]
    async fn a_sell_out_stops_at_its_target_and_counts_every_answer() {
        let spec = LoadSpec {
            label: "toy".into(),
            duration: None,
            granted_target: Some(30),
            rate_per_s: None,
            progress: false,
        };
        let result = run(spec, (0..4).map(|_| Toy(0)).collect()).await;
        assert!(result.granted >= 30 && result.granted < 60, "{result:?}");
        assert_eq!(result.requests, result.granted + result.refused);
        assert!(result.p50_ms >= 1.0 && result.p99_ms >= result.p50_ms);
    }

    /// Holds, then pays for what it held: a purchase every other request.
    struct Shopper(bool);

    impl Worker for Shopper {
        async fn next(&mut self) -> anyhow::Result<Answer> {
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.0 = !self.0;
            Ok(if self.0 { Answer::Granted } else { Answer::Paid })
        }
    }

    #[tokio::test]
    async fn payments_count_as_answers_and_as_purchases() {
        let spec = LoadSpec {
            label: "shop".into(),
            duration: None,
            granted_target: Some(20),
            rate_per_s: None,
            progress: false,
        };
        let result = run(spec, vec![Shopper(false)]).await;
        assert!(result.granted >= 20, "{result:?}");
        assert!(result.paid + 1 >= result.granted && result.paid <= result.granted, "one payment per hold: {result:?}");
        assert_eq!(result.requests, result.granted + result.paid);
        assert!(result.paid_per_s > 0.0 && result.per_s > result.paid_per_s, "{result:?}");
    }

    #[tokio::test]
    async fn an_open_loop_keeps_its_rate() {
        let spec = LoadSpec {
            label: "toy".into(),
            duration: Some(Duration::from_millis(500)),
            granted_target: None,
            rate_per_s: Some(200),
            progress: false,
        };
        let result = run(spec, (0..4).map(|_| Toy(0)).collect()).await;
        assert!((80..=120).contains(&result.requests), "about 100 requests in half a second at 200/s: {result:?}");
    }
}

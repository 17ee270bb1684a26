//! Counters in Prometheus text: HTTP responses by method, route and status, holds by outcome,
//! payments by outcome, payment webhooks by what they took, remembered records pruned.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// The media type of Prometheus' text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Default)]
pub struct Metrics {
    /// Keyed by (method, route, status). Routes are the router's patterns, not the paths asked
    /// for, so the number of keys stays bounded whatever clients send.
    responses: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    holds_granted: AtomicU64,
    holds_refused: AtomicU64,
    payments_charged: AtomicU64,
    payments_declined: AtomicU64,
    payments_refunded: AtomicU64,
    /// Success webhooks for a booking the payment had confirmed already: answered after a read.
    webhooks_settled_already: AtomicU64,
    /// Success webhooks that went to the state machine as a write.
    webhooks_written: AtomicU64,
    /// Idempotency records and webhook event ids this node's prunes forgot (while it led).
    records_pruned: AtomicU64,
}

/// What became of a payment attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    Charged,
    Declined,
    Refunded,
}

impl Metrics {
    pub fn count_response(&self, method: &'static str, route: String, status: u16) {
        let mut responses = self.responses.lock().unwrap_or_else(PoisonError::into_inner);
        *responses.entry((method, route, status)).or_default() += 1;
    }

    /// Counts a hold the cluster granted (`true`) or refused because tickets were taken.
    pub fn count_hold(&self, granted: bool) {
        let counter = if granted { &self.holds_granted } else { &self.holds_refused };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_payment(&self, outcome: PaymentOutcome) {
        let counter = match outcome {
            PaymentOutcome::Charged => &self.payments_charged,
            PaymentOutcome::Declined => &self.payments_declined,
            PaymentOutcome::Refunded => &self.payments_refunded,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a payment-success webhook: `written` when it went to the state machine, not when a
    /// read showed its payment had confirmed the booking already.
    pub fn count_success_webhook(&self, written: bool) {
        let counter = if written { &self.webhooks_written } else { &self.webhooks_settled_already };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts records a prune this node proposed forgot.
    pub fn count_pruned(&self, records: u32) {
        self.records_pruned.fetch_add(u64::from(records), Ordering::Relaxed);
    }

    /// Everything, in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP boxoffice_http_responses_total HTTP responses by method, route and status.\n");
        out.push_str("# TYPE boxoffice_http_responses_total counter\n");
        let responses = self.responses.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for ((method, route, status), count) in responses {
            let route = escape(&route);
            let _ = writeln!(
                out,
                "boxoffice_http_responses_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        let holds = [("granted", &self.holds_granted), ("refused", &self.holds_refused)];
        counter_family(&mut out, "boxoffice_holds_total", "Holds asked of the cluster, by outcome.", &holds);
        let payments = [
            ("charged", &self.payments_charged),
            ("declined", &self.payments_declined),
            ("refunded", &self.payments_refunded),
        ];
        counter_family(&mut out, "boxoffice_payments_total", "Payment attempts, by outcome.", &payments);
        let webhooks = [("settled_already", &self.webhooks_settled_already), ("written", &self.webhooks_written)];
        let help = "Payment-success webhooks: answered from a read (settled already) or written.";
        counter_family(&mut out, "boxoffice_success_webhooks_total", help, &webhooks);
        let name = "boxoffice_remembered_records_pruned_total";
        let help = "Idempotency records and webhook event ids forgotten by the prunes this node proposed.";
        let pruned = self.records_pruned.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {pruned}");
        out
    }
}

fn counter_family(out: &mut String, name: &str, help: &str, counters: &[(&str, &AtomicU64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (outcome, counter) in counters {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {}", counter.load(Ordering::Relaxed));
    }
}

/// Escapes a label value as the text format asks.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A bounded label for a method: anything unusual counts as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware counting every response. It runs inside the router (`Router::layer` wraps each
/// route), so the matched route is known; requests no route matched count as `unmatched`.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics.count_response(method, route.unwrap_or_else(|| "unmatched".into()), response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_their_labels() {
        let metrics = Metrics::default();
        metrics.count_response("GET", "/events/{eventId}".into(), 200);
        metrics.count_response("GET", "/events/{eventId}".into(), 200);
        metrics.count_response("POST", "unmatched".into(), 404);
        metrics.count_hold(true);
        metrics.count_hold(false);
        metrics.count_hold(false);
        metrics.count_payment(PaymentOutcome::Refunded);
        metrics.count_success_webhook(false);
        let text = metrics.render();
        assert!(text
            .contains("boxoffice_http_responses_total{method=\"GET\",route=\"/events/{eventId}\",status=\"200\"} 2\n"));
        assert!(text.contains("boxoffice_http_responses_total{method=\"POST\",route=\"unmatched\",status=\"404\"} 1\n"));
        assert!(text.contains("boxoffice_holds_total{outcome=\"granted\"} 1\n"));
        assert!(text.contains("boxoffice_holds_total{outcome=\"refused\"} 2\n"));
        assert!(text.contains("boxoffice_payments_total{outcome=\"refunded\"} 1\n"));
        assert!(text.contains("boxoffice_payments_total{outcome=\"charged\"} 0\n"));
        assert!(text.contains("boxoffice_success_webhooks_total{outcome=\"settled_already\"} 1\n"));
        assert!(text.contains("boxoffice_success_webhooks_total{outcome=\"written\"} 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
    }
}

//! The gateway's settings, a section of the node's TOML configuration.

use std::fmt;

use serde::Deserialize;

/// Limits and secrets of the gateway. Every field has a default, so a configuration names only
/// what it changes; an unknown name is an error, so a typo does not silently keep a default.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The bearer token of the admin endpoints. Empty disables them.
    pub admin_token: String,
    /// The HMAC key of fan tokens, the same on every node so that any node accepts a token
    /// another one issued. Empty makes each gateway pick a random key (tokens then only work on
    /// the node that issued them).
    pub cluster_secret: String,
    /// How long a hold keeps its tickets.
    pub hold_ttl_ms: u64,
    /// Most tickets in one booking (capped by `model::BOOKING_TICKETS_HARD_MAX`).
    pub tickets_per_booking_max: usize,
    /// Largest request body of the public endpoints.
    pub body_bytes_max: usize,
    /// Largest request body of the admin endpoints (a stadium's seat map is large).
    pub admin_body_bytes_max: usize,
    /// How long a fan token is valid.
    pub session_ttl_ms: u64,
    /// Largest page of `GET /events`.
    pub page_size_max: u32,
    /// How long an event's details stay cached.
    pub event_cache_ttl_ms: u64,
    /// Most events whose details stay cached.
    pub event_cache_entries_max: u64,
    /// Most event placements cached (they never change, and each is a few bytes).
    pub placement_cache_entries_max: u64,
    /// Most seats, over all cached seat maps (a seat costs some tens of bytes).
    pub seat_map_cache_seats_max: u64,
    /// Offers `PUT /admin/faults` (clock skew, slow or full disk) to the admin: for chaos tests
    /// only, never in production.
    pub fault_injection_enabled: bool,
    /// Most tickets of one event a fan may hold or own at once; 0 for no limit.
    pub tickets_per_fan_max: u32,
    /// The origins (`https://tickets.example.com`) fans reach this gateway at: a payment's
    /// `returnUrl` must lead back to one of them, so that the checkout page is no open redirect.
    /// Empty: the node's own HTTP address (and `localhost` for a loopback one).
    pub public_origins: Vec<String>,
    /// The payment provider's API (e.g. `boxoffice sandbox`); empty: payments are unavailable.
    pub payment_api_url: String,
    pub payment_api_key: String,
    /// The secret the provider signs webhooks with; empty: webhooks are refused.
    pub payment_webhook_secret: String,
    /// How far a hold may be extended while its payment is pending (once, from the first hold).
    pub payment_hold_extension_ms: u64,
    /// How old a webhook's signature may be.
    pub webhook_tolerance_s: i64,
    /// How often the reconciliation task asks the provider about payments left pending.
    pub reconcile_interval_ms: u64,
    /// A payment pending this long is asked about.
    pub reconcile_after_ms: u64,
    /// How long a search answer is reused; 0 turns the search cache off. It counts toward the
    /// promise that a new event is found within a second: an answer cached just before the
    /// index took the event in is served this long after (the index itself takes up to its
    /// 200 ms tick plus a commit), and another gateway's catalog change does not drop it.
    pub search_cache_ttl_ms: u64,
    pub search_cache_entries_max: u64,
    /// A payment pending this long after its hold ended is given up on (it is refunded if it is
    /// ever captured and the seats are gone).
    pub payment_abandon_after_ms: u64,
    /// Events whose seat maps this gateway follows live at once (one feed each).
    pub seat_feeds_max: usize,
    /// Seat map streams this gateway serves at once, over all events.
    pub seat_subscribers_max: usize,
    /// Bytes of event layouts (the immutable seat map documents) kept rendered.
    pub layout_cache_bytes_max: u64,
    /// How long an `Idempotency-Key`'s first answer (and a webhook's event id) is remembered:
    /// a retry within it gets that answer; after it (and within one `prune_interval_ms` more)
    /// the key is forgotten and its row removed, so that what fans send cannot grow a group
    /// without end. Group time, from the stamps of the group's log. The same on every node
    /// (the leader's is used); 1 s to 24 h.
    pub idempotency_window_ms: u64,
    /// How often the leader of each inventory group looks for records past their window and
    /// proposes a prune.
    pub prune_interval_ms: u64,
    /// Most records one prune (one command in the group's log) forgets; a larger backlog goes
    /// over several, one after another, so that no write batch is huge.
    pub prune_records_max: u32,
    /// Longest wait for a request's head (and for a TLS handshake), counted from when the
    /// connection is ready for the next request: a slow-loris client that sends a header a byte
    /// at a time, or an idle keep-alive connection, is closed after it.
    pub header_read_timeout_ms: u64,
    /// Longest time from a request's head to its response's head (the body read and the
    /// handler's work); past it the client gets a 503. A stream (server-sent events) is under it
    /// only until its head is sent, so it may then stay open for good.
    pub request_timeout_ms: u64,
    /// Most open HTTP connections (idle, mid-request and streaming). Past it a new connection is
    /// sent a short 503 and closed, so that file descriptors stay under the process's limit
    /// (`ulimit -n`, which must leave room above this for storage and raft).
    pub connections_max: usize,
    /// Most requests whose response head is not ready yet; past it a request gets a 503 with
    /// `Retry-After` at once rather than queuing without bound. Open streams do not count.
    pub requests_in_flight_max: usize,
    /// Certificate chain (PEM) for serving HTTPS; with `tls_key_path`. Both empty: plain HTTP
    /// (behind a TLS-terminating proxy, or on loopback).
    pub tls_cert_path: String,
    /// Private key (PEM) of `tls_cert_path`.
    pub tls_key_path: String,
    /// Sign-ups (`POST /users`) one client address may make per minute (0: no limit). Every
    /// per-minute rate below is a GCRA allowance: a burst of that many, refilled evenly over a
    /// minute. An address is an IPv4 address or an IPv6 /64, as the TCP peer (a proxy in front
    /// counts as one address).
    pub signups_per_address_per_min: u32,
    /// Sign-ins (`POST /sessions`) one client address may make per minute (0: no limit).
    pub signins_per_address_per_min: u32,
    /// Sign-ins to one account (by email) per minute, whoever tries (0: no limit): the bound on
    /// password guessing, which an address limit alone does not give against many addresses.
    pub signins_per_email_per_min: u32,
    /// Holds (`POST /events/{id}/bookings`) one client address may make per minute (0: no
    /// limit). Generous, as a crowd behind one NAT shares an address.
    pub holds_per_address_per_min: u32,
    /// Holds one fan may make per minute (0: no limit).
    pub holds_per_fan_per_min: u32,
    /// Payments (`POST /bookings/{id}/payment`) one client address may start per minute (0: no
    /// limit).
    pub payments_per_address_per_min: u32,
    /// Payments one fan may start per minute (0: no limit).
    pub payments_per_fan_per_min: u32,
    /// Password hashes (argon2id, 19 MiB and tens of milliseconds each, for sign-ups and
    /// sign-ins) computed at once; 0: one per core but one (at least one), so that a flood of
    /// sign-ins never takes every core from the holds. More wait, up to `password_hash_wait_ms`.
    pub password_hashes_in_flight_max: usize,
    /// Longest a sign-up or sign-in waits for a hashing slot before it gets a 503.
    pub password_hash_wait_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            admin_token: String::new(),
            cluster_secret: String::new(),
            hold_ttl_ms: 600_000,
            tickets_per_booking_max: 8,
            body_bytes_max: 65_536,
            admin_body_bytes_max: 33_554_432,
            session_ttl_ms: 86_400_000,
            page_size_max: 100,
            event_cache_ttl_ms: 60_000,
            event_cache_entries_max: 10_000,
            placement_cache_entries_max: 1_000_000,
            seat_map_cache_seats_max: 2_000_000,
            fault_injection_enabled: false,
            tickets_per_fan_max: 8,
            public_origins: Vec::new(),
            payment_api_url: String::new(),
            payment_api_key: String::new(),
            payment_webhook_secret: String::new(),
            payment_hold_extension_ms: 300_000,
            webhook_tolerance_s: 300,
            reconcile_interval_ms: 10_000,
            reconcile_after_ms: 30_000,
            payment_abandon_after_ms: 3_600_000,
            search_cache_ttl_ms: 200,
            search_cache_entries_max: 10_000,
            seat_feeds_max: 1_000,
            seat_subscribers_max: 100_000,
            layout_cache_bytes_max: 64 << 20,
            idempotency_window_ms: model::IDEMPOTENCY_WINDOW_HARD_MAX_MS,
            prune_interval_ms: 60_000,
            prune_records_max: 1_000,
            header_read_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            connections_max: 10_000,
            requests_in_flight_max: 4_096,
            tls_cert_path: String::new(),
            tls_key_path: String::new(),
            signups_per_address_per_min: 30,
            signins_per_address_per_min: 60,
            signins_per_email_per_min: 10,
            holds_per_address_per_min: 600,
            holds_per_fan_per_min: 60,
            payments_per_address_per_min: 120,
            payments_per_fan_per_min: 20,
            password_hashes_in_flight_max: 0,
            password_hash_wait_ms: 1_000,
        }
    }
}

/// Secrets shorter than this are refused: a guessable admin token or cluster secret hands the
/// cluster to whoever guesses it.
pub const SECRET_CHARS_MIN: usize = 16;

/// Values that appear as examples in the documentation: refused as secrets, since everyone who
/// read it knows them.
const EXAMPLE_SECRETS: &[&str] = &["change-me", "at-least-16-chars", "changeme", "secret", "password", "admin"];

impl GatewayConfig {
    /// What is wrong with the secrets, in words an operator can act on: one that is too short or
    /// copied from the documentation.
    pub fn secrets_problem(&self) -> Option<String> {
        let secrets = [
            ("admin_token", &self.admin_token, true),
            ("cluster_secret", &self.cluster_secret, false),
            ("payment_webhook_secret", &self.payment_webhook_secret, true),
        ];
        for (name, value, may_be_empty) in secrets {
            if value.is_empty() && may_be_empty {
                continue;
            }
            if EXAMPLE_SECRETS.iter().any(|example| value.eq_ignore_ascii_case(example)) {
                return Some(format!(
                    "{name} is an example value from the documentation; make a secret one, e.g. `openssl rand -hex 24`"
                ));
            }
            if value.chars().count() < SECRET_CHARS_MIN {
                return Some(format!(
                    "{name} must be at least {SECRET_CHARS_MIN} characters; make one, e.g. `openssl rand -hex 24`"
                ));
            }
        }
        None
    }
}

/// Shows every field but the two secrets, so that the configuration can be logged.
impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &str| {
            if s.is_empty() {
                "<empty>"
            } else {
                "<redacted>"
            }
        };
        f.debug_struct("GatewayConfig")
            .field("admin_token", &redact(&self.admin_token))
            .field("cluster_secret", &redact(&self.cluster_secret))
            .field("hold_ttl_ms", &self.hold_ttl_ms)
            .field("tickets_per_booking_max", &self.tickets_per_booking_max)
            .field("body_bytes_max", &self.body_bytes_max)
            .field("admin_body_bytes_max", &self.admin_body_bytes_max)
            .field("session_ttl_ms", &self.session_ttl_ms)
            .field("page_size_max", &self.page_size_max)
            .field("event_cache_ttl_ms", &self.event_cache_ttl_ms)
            .field("event_cache_entries_max", &self.event_cache_entries_max)
            .field("placement_cache_entries_max", &self.placement_cache_entries_max)
            .field("seat_map_cache_seats_max", &self.seat_map_cache_seats_max)
            .field("fault_injection_enabled", &self.fault_injection_enabled)
            .field("tickets_per_fan_max", &self.tickets_per_fan_max)
            .field("public_origins", &self.public_origins)
            .field("payment_api_url", &self.payment_api_url)
            .field("payment_api_key", &redact(&self.payment_api_key))
            .field("payment_webhook_secret", &redact(&self.payment_webhook_secret))
            .field("payment_hold_extension_ms", &self.payment_hold_extension_ms)
            .field("webhook_tolerance_s", &self.webhook_tolerance_s)
            .field("reconcile_interval_ms", &self.reconcile_interval_ms)
            .field("reconcile_after_ms", &self.reconcile_after_ms)
            .field("payment_abandon_after_ms", &self.payment_abandon_after_ms)
            .field("search_cache_ttl_ms", &self.search_cache_ttl_ms)
            .field("search_cache_entries_max", &self.search_cache_entries_max)
            .field("seat_feeds_max", &self.seat_feeds_max)
            .field("seat_subscribers_max", &self.seat_subscribers_max)
            .field("layout_cache_bytes_max", &self.layout_cache_bytes_max)
            .field("idempotency_window_ms", &self.idempotency_window_ms)
            .field("prune_interval_ms", &self.prune_interval_ms)
            .field("prune_records_max", &self.prune_records_max)
            .field("header_read_timeout_ms", &self.header_read_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("connections_max", &self.connections_max)
            .field("requests_in_flight_max", &self.requests_in_flight_max)
            .field("tls_cert_path", &self.tls_cert_path)
            .field("tls_key_path", &self.tls_key_path)
            .field("signups_per_address_per_min", &self.signups_per_address_per_min)
            .field("signins_per_address_per_min", &self.signins_per_address_per_min)
            .field("signins_per_email_per_min", &self.signins_per_email_per_min)
            .field("holds_per_address_per_min", &self.holds_per_address_per_min)
            .field("holds_per_fan_per_min", &self.holds_per_fan_per_min)
            .field("payments_per_address_per_min", &self.payments_per_address_per_min)
            .field("payments_per_fan_per_min", &self.payments_per_fan_per_min)
            .field("password_hashes_in_flight_max", &self.password_hashes_in_flight_max)
            .field("password_hash_wait_ms", &self.password_hash_wait_ms)
            .finish()
    }
}

/// The shortest `prune_interval_ms`: a prune is a write to every inventory group with records
/// due.
pub const PRUNE_INTERVAL_MIN_MS: u64 = 100;

impl GatewayConfig {
    /// What is wrong with these settings, in words an operator can act on.
    pub fn problem(&self) -> Option<String> {
        let (min, max) = (model::IDEMPOTENCY_WINDOW_MIN_MS, model::IDEMPOTENCY_WINDOW_HARD_MAX_MS);
        if !(min..=max).contains(&self.idempotency_window_ms) {
            return Some(format!("idempotency_window_ms must be {min} to {max}, not {}", self.idempotency_window_ms));
        }
        if self.prune_interval_ms < PRUNE_INTERVAL_MIN_MS {
            return Some(format!("prune_interval_ms must be at least {PRUNE_INTERVAL_MIN_MS}"));
        }
        let records_max = model::PRUNE_RECORDS_HARD_MAX;
        if self.prune_records_max == 0 || self.prune_records_max > records_max {
            return Some(format!("prune_records_max must be 1 to {records_max}, not {}", self.prune_records_max));
        }
        // A payment provider reached over plain http off this machine, or half a TLS setting.
        if self.tls_cert_path.is_empty() != self.tls_key_path.is_empty() {
            return Some("set both tls_cert_path and tls_key_path to serve HTTPS, or neither".into());
        }
        if self.payment_api_url.is_empty() {
            return None;
        }
        crate::payment::provider_url_problem(&self.payment_api_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_keep_their_defaults() {
        let config: GatewayConfig = serde_json::from_str(r#"{"hold_ttl_ms": 5}"#).unwrap();
        assert_eq!(config.hold_ttl_ms, 5);
        assert_eq!(config.tickets_per_booking_max, 8);
        assert_eq!(config.page_size_max, 100);
    }

    #[test]
    fn prune_settings_out_of_their_limits_are_named() {
        assert_eq!(GatewayConfig::default().problem(), None);
        let short = GatewayConfig { idempotency_window_ms: 999, ..GatewayConfig::default() };
        assert!(short.problem().unwrap().contains("idempotency_window_ms"));
        let long = GatewayConfig { idempotency_window_ms: 2 * 86_400_000, ..GatewayConfig::default() };
        assert!(long.problem().unwrap().contains("idempotency_window_ms"));
        let busy = GatewayConfig { prune_interval_ms: 10, ..GatewayConfig::default() };
        assert!(busy.problem().unwrap().contains("prune_interval_ms"));
        for records_max in [0, model::PRUNE_RECORDS_HARD_MAX + 1] {
            let config = GatewayConfig { prune_records_max: records_max, ..GatewayConfig::default() };
            assert!(config.problem().unwrap().contains("prune_records_max"));
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<GatewayConfig>(r#"{"hold_ttl": 5}"#).is_err());
    }

    #[test]
    fn example_and_short_secrets_are_refused() {
        let good = GatewayConfig {
            admin_token: "a".repeat(SECRET_CHARS_MIN),
            cluster_secret: "c".repeat(24),
            ..GatewayConfig::default()
        };
        assert_eq!(good.secrets_problem(), None, "an empty webhook secret turns webhooks off");
        let example = GatewayConfig { cluster_secret: "at-least-16-chars".into(), ..good.clone() };
        assert!(example.secrets_problem().unwrap().contains("cluster_secret is an example value"));
        let example = GatewayConfig { admin_token: "Change-Me".into(), ..good.clone() };
        assert!(example.secrets_problem().unwrap().contains("admin_token is an example value"));
        let short = GatewayConfig { payment_webhook_secret: "whsec".into(), ..good.clone() };
        assert!(short.secrets_problem().unwrap().contains("payment_webhook_secret must be at least 16"));
        let none = GatewayConfig { cluster_secret: String::new(), ..good };
        assert!(none.secrets_problem().unwrap().contains("cluster_secret must be at least 16"));
    }

    #[test]
    fn a_provider_off_this_machine_needs_https() {
        let plain = GatewayConfig { payment_api_url: "http://pay.example".into(), ..GatewayConfig::default() };
        assert!(plain.problem().unwrap().contains("https"));
        let sandbox = GatewayConfig { payment_api_url: "http://127.0.0.1:7000".into(), ..GatewayConfig::default() };
        assert_eq!(sandbox.problem(), None);
        assert_eq!(GatewayConfig::default().problem(), None);
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let config = GatewayConfig { admin_token: "hunter2".into(), ..GatewayConfig::default() };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("<redacted>"));
    }
}

//! The loader: sends the demo catalog to a gateway through the admin API, venues, then
//! performers, then events, each request with a timeout and a bounded retry while the cluster is
//! still electing leaders. If the cluster already lists an event, it loads nothing: the data
//! survived a restart.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use tracing::{info, warn};

use crate::catalog::generate;

/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one request keeps being retried on a refused connection or a 503.
pub const RETRY_BUDGET: Duration = Duration::from_secs(30);

/// What [`load`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DemoSummary {
    pub venues: usize,
    pub performers: usize,
    pub events: usize,
    /// True when the cluster already had events and nothing was loaded.
    pub skipped: bool,
}

/// Limits of [`load_with`]; [`load`] uses the defaults ([`REQUEST_TIMEOUT`], [`RETRY_BUDGET`]).
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    pub request_timeout: Duration,
    /// How long one request keeps being retried on a refused connection or a 503.
    pub retry_budget: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { request_timeout: REQUEST_TIMEOUT, retry_budget: RETRY_BUDGET }
    }
}

/// Why [`load`] stopped. Each message names what the loader was doing (`what`, e.g. ``create
/// venue `The Lantern Room` ``); the underlying error, if any, is the [`source`](std::error::Error::source).
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot build the http client of the demo loader")]
    Client(#[source] reqwest::Error),
    #[error("cannot encode a request body")]
    Encode(#[source] serde_json::Error),
    /// The gateway refused the request: retrying would not help.
    #[error("{what}: {method} {url} answered {status}: {detail}")]
    Refused { what: String, method: Method, url: String, status: StatusCode, detail: String },
    #[error("{what}: {method} {url} got no answer within {request_timeout_s} s")]
    Timeout { what: String, method: Method, url: String, request_timeout_s: f32 },
    #[error("{what}: {method} {url} failed")]
    Request {
        what: String,
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: reading the answer of {url} failed")]
    Read {
        what: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: {url} answered something that is not JSON: {body}")]
    NotJson {
        what: String,
        url: String,
        body: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: the gateway answered without a numeric `id`: {answer}")]
    NoId { what: String, answer: String },
    /// The cluster stayed unavailable for the whole retry budget; the source is its last answer.
    #[error(
        "{what}: gave up after {attempts} attempts in {elapsed_s:.1} s (is the cluster up and has it elected its leaders?)"
    )]
    GaveUp {
        what: String,
        attempts: u32,
        elapsed_s: f32,
        #[source]
        last: Unavailable,
    },
}

/// Why one attempt found the cluster not ready to answer, and nothing was done: worth another
/// try within the retry budget.
#[derive(Debug, Error)]
pub enum Unavailable {
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// A 503 or a 429.
    #[error("{method} {url} answered {status}: {detail}")]
    Busy { method: Method, url: String, status: StatusCode, detail: String },
}

/// Fills an empty cluster with the demo catalog through the admin API at `base_url` (e.g.
/// `http://127.0.0.1:8080`), or loads nothing if it already lists an event.
pub async fn load(base_url: &str, admin_token: &str, now_ms: u64) -> Result<DemoSummary, LoadError> {
    load_with(base_url, admin_token, now_ms, LoadOptions::default()).await
}

/// [`load`] with chosen limits.
pub async fn load_with(
    base_url: &str,
    admin_token: &str,
    now_ms: u64,
    options: LoadOptions,
) -> Result<DemoSummary, LoadError> {
    let client = reqwest::Client::builder().timeout(options.request_timeout).build().map_err(LoadError::Client)?;
    let api = Api { client, base: base_url.trim_end_matches('/').to_string(), token: admin_token.to_string(), options };

    let existing = api.call(Method::GET, "/events?page=1&pageSize=1", None, "list events").await?;
    let listed = existing.get("events").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    if listed > 0 {
        info!(base_url = %api.base, "the cluster already has events, demo catalog not loaded");
        return Ok(DemoSummary { skipped: true, ..DemoSummary::default() });
    }

    let catalog = generate(now_ms);
    info!(
        base_url = %api.base,
        venues = catalog.venues.len(),
        performers = catalog.performers.len(),
        events = catalog.events.len(),
        "loading the demo catalog"
    );

    let mut venue_ids = Vec::with_capacity(catalog.venues.len());
    for (i, venue) in catalog.venues.iter().enumerate() {
        let what = format!("create venue `{}`", venue.name);
        let created = api.post("/admin/venues", &venue.body(), &what).await?;
        venue_ids.push(id_of(&created, &what)?);
        info!(
            loaded = i + 1,
            total = catalog.venues.len(),
            venue = %venue.name,
            seats = venue.seat_map.seat_count(),
            "loaded {}/{} venues",
            i + 1,
            catalog.venues.len()
        );
    }

    let mut performer_ids = Vec::with_capacity(catalog.performers.len());
    for (i, performer) in catalog.performers.iter().enumerate() {
        let what = format!("create performer `{}`", performer.name);
        let created = api.post("/admin/performers", &performer.body(), &what).await?;
        performer_ids.push(id_of(&created, &what)?);
        let loaded = i + 1;
        if loaded % 10 == 0 || loaded == catalog.performers.len() {
            info!(
                loaded,
                total = catalog.performers.len(),
                "loaded {}/{} performers",
                loaded,
                catalog.performers.len()
            );
        }
    }

    for (i, event) in catalog.events.iter().enumerate() {
        let what = format!("create event `{}` at {}", event.name, catalog.venues[event.venue].name);
        let performers: Vec<u64> = event.performers.iter().map(|&p| performer_ids[p]).collect();
        let body = event.body(venue_ids[event.venue], &performers);
        api.post("/admin/events", &body, &what).await?;
        let loaded = i + 1;
        if loaded % 10 == 0 || loaded == catalog.events.len() {
            info!(loaded, total = catalog.events.len(), "loaded {}/{} events", loaded, catalog.events.len());
        }
    }

    let summary = DemoSummary {
        venues: venue_ids.len(),
        performers: performer_ids.len(),
        events: catalog.events.len(),
        skipped: false,
    };
    info!(venues = summary.venues, performers = summary.performers, events = summary.events, "demo catalog loaded");
    Ok(summary)
}

/// The demo event that sells through the waiting room.
pub const ROOM_EVENT: u64 = 1;

/// Puts [`ROOM_EVENT`] behind the waiting room, on sale now, 60 fans a minute, 20 shopping at
/// once (a room already there is left as it is, so a restart keeps the line).
pub async fn open_room(base_url: &str, admin_token: &str) -> Result<(), LoadError> {
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().map_err(LoadError::Client)?;
    let options = LoadOptions::default();
    let api = Api { client, base: base_url.trim_end_matches('/').to_string(), token: admin_token.to_string(), options };
    let path = format!("/admin/events/{ROOM_EVENT}/waiting-room");
    let settings = serde_json::json!({
        "enabled": true,
        "ratePerMinute": 60,
        "shoppingMax": 20,
        "admissionMs": 600_000,
        "powBits": 12,
        "abandonMs": 60_000,
    });
    match api.call(Method::GET, &path, None, "read the demo's waiting room").await {
        Ok(_) => Ok(()),
        Err(LoadError::Refused { status: StatusCode::NOT_FOUND, .. }) => {
            let body = serde_json::to_vec(&settings).map_err(LoadError::Encode)?;
            api.call(Method::PUT, &path, Some(body), "open the demo's waiting room").await.map(|_| ())
        }
        Err(error) => Err(error),
    }
}

fn id_of(created: &Value, what: &str) -> Result<u64, LoadError> {
    created
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| LoadError::NoId { what: what.to_string(), answer: truncate(&created.to_string(), 200) })
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
    options: LoadOptions,
}

impl Api {
    /// POSTs `body` as JSON; see [`Api::call`].
    async fn post(&self, path: &str, body: &impl Serialize, what: &str) -> Result<Value, LoadError> {
        let body = serde_json::to_vec(body).map_err(LoadError::Encode)?;
        self.call(Method::POST, path, Some(body), what).await
    }

    /// Sends one request and returns its JSON answer. Retries, with backoff and within the
    /// retry budget, when the connection is refused or the gateway answers 503 or 429 (nothing
    /// was done); fails at once on a timeout or any other error, naming what it was doing.
    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>, what: &str) -> Result<Value, LoadError> {
        let url = format!("{}{}", self.base, path);
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut request = self.client.request(method.clone(), &url).bearer_auth(&self.token);
            if let Some(body) = &body {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
            }
            let unavailable = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    let text = response.text().await.map_err(|source| LoadError::Read {
                        what: what.to_string(),
                        url: url.clone(),
                        source,
                    })?;
                    return serde_json::from_str(&text).map_err(|source| LoadError::NotJson {
                        what: what.to_string(),
                        url,
                        body: truncate(&text, 200),
                        source,
                    });
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let detail = problem_detail(&response.text().await.unwrap_or_default());
                    if status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::TOO_MANY_REQUESTS {
                        return Err(LoadError::Refused { what: what.to_string(), method, url, status, detail });
                    }
                    if let Some(wait) = retry_after {
                        delay = delay.max(wait.min(Duration::from_secs(5)));
                    }
                    Unavailable::Busy { method: method.clone(), url: url.clone(), status, detail }
                }
                Err(source) if source.is_connect() => Unavailable::Connect { url: url.clone(), source },
                Err(e) if e.is_timeout() => {
                    return Err(LoadError::Timeout {
                        what: what.to_string(),
                        method,
                        url,
                        request_timeout_s: self.options.request_timeout.as_secs_f32(),
                    })
                }
                Err(source) => return Err(LoadError::Request { what: what.to_string(), method, url, source }),
            };
            if started.elapsed() + delay > self.options.retry_budget {
                return Err(LoadError::GaveUp {
                    what: what.to_string(),
                    attempts: attempt,
                    elapsed_s: started.elapsed().as_secs_f32(),
                    last: unavailable,
                });
            }
            warn!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                reason = &unavailable as &(dyn std::error::Error + 'static),
                "demo loader retrying"
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(4));
        }
    }
}

/// The `detail` (or `title`) of a problem+json body, or the start of whatever else it is.
fn problem_detail(body: &str) -> String {
    if let Ok(problem) = serde_json::from_str::<Value>(body) {
        for field in ["detail", "title"] {
            if let Some(text) = problem.get(field).and_then(Value::as_str) {
                return text.to_string();
            }
        }
    }
    if body.trim().is_empty() {
        "(empty body)".into()
    } else {
        truncate(body.trim(), 300)
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::NOW;
    use serde_json::json;
    use std::error::Error as _;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn problem_details_are_read_from_problem_json() {
        assert_eq!(
            problem_detail(r#"{"type":"about:blank","title":"Conflict","status":409,"detail":"taken"}"#),
            "taken"
        );
        assert_eq!(problem_detail(r#"{"title":"Service Unavailable"}"#), "Service Unavailable");
        assert_eq!(problem_detail(""), "(empty body)");
        assert_eq!(problem_detail("oops"), "oops");
    }

    // --- The loader against a small fake gateway.

    #[derive(Default)]
    struct Fake {
        /// Answer this many requests with 503 first.
        unavailable: usize,
        /// What `GET /events` lists.
        events_listed: usize,
        /// Answer POSTs to this path with a 422 problem.
        refuse: Option<&'static str>,
        requests: Vec<(String, String, Value)>,
        next_id: u64,
    }

    async fn serve(fake: Arc<Mutex<Fake>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let fake = fake.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 65536];
                    loop {
                        // One request per connection is enough for these tests: read the head,
                        // then the body by Content-Length.
                        let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n");
                        if let Some(end) = head_end {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap())
                                })
                                .unwrap_or(0);
                            if buffer.len() >= end + 4 + length {
                                let body = &buffer[end + 4..end + 4 + length];
                                let mut words = head.split_whitespace();
                                let (method, path) =
                                    (words.next().unwrap().to_string(), words.next().unwrap().to_string());
                                let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                                let (status, answer) = {
                                    let mut fake = fake.lock().unwrap();
                                    if fake.unavailable > 0 {
                                        fake.unavailable -= 1;
                                        (
                                            503,
                                            json!({"title": "Service Unavailable", "status": 503, "detail": "no leader yet"}),
                                        )
                                    } else if fake.refuse == Some(path.as_str()) {
                                        fake.requests.push((method, path, json));
                                        (
                                            422,
                                            json!({"title": "Unprocessable Content", "status": 422, "detail": "a seat map needs at least one seat"}),
                                        )
                                    } else if method == "GET" {
                                        let events: Vec<Value> =
                                            (0..fake.events_listed).map(|i| json!({"id": i})).collect();
                                        (200, json!({"events": events, "page": 1, "pageSize": 1, "hasMore": false}))
                                    } else {
                                        fake.next_id += 1;
                                        let id = fake.next_id;
                                        fake.requests.push((method, path, json));
                                        (201, json!({"id": id}))
                                    }
                                };
                                let text = answer.to_string();
                                let reply = format!(
                                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                                    text.len()
                                );
                                let _ = socket.write_all(reply.as_bytes()).await;
                                return;
                            }
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn loads_everything_into_an_empty_cluster_after_waiting_for_it() {
        let fake = Arc::new(Mutex::new(Fake { unavailable: 2, ..Fake::default() }));
        let base = serve(fake.clone()).await;
        let summary = load(&base, "secret", NOW).await.unwrap();
        let catalog = generate(NOW);
        assert_eq!(
            summary,
            DemoSummary {
                venues: catalog.venues.len(),
                performers: catalog.performers.len(),
                events: catalog.events.len(),
                skipped: false
            }
        );
        let fake = fake.lock().unwrap();
        let count = |path: &str| fake.requests.iter().filter(|r| r.0 == "POST" && r.1 == path).count();
        assert_eq!(count("/admin/venues"), catalog.venues.len());
        assert_eq!(count("/admin/performers"), catalog.performers.len());
        assert_eq!(count("/admin/events"), catalog.events.len());
        // Ids 1..=venues went to venues, the next ones to performers.
        let first_event = &fake.requests.iter().find(|r| r.1 == "/admin/events").unwrap().2;
        let venue_id = first_event["venueId"].as_u64().unwrap();
        assert!((1..=catalog.venues.len() as u64).contains(&venue_id));
        for id in first_event["performerIds"].as_array().unwrap() {
            assert!(id.as_u64().unwrap() > catalog.venues.len() as u64);
        }
    }

    #[tokio::test]
    async fn loads_nothing_when_events_exist() {
        let fake = Arc::new(Mutex::new(Fake { events_listed: 1, ..Fake::default() }));
        let base = serve(fake.clone()).await;
        let summary = load(&base, "secret", NOW).await.unwrap();
        assert_eq!(summary, DemoSummary { skipped: true, ..DemoSummary::default() });
        assert!(fake.lock().unwrap().requests.is_empty());
    }

    #[tokio::test]
    async fn gives_up_with_a_clear_message_when_nothing_answers() {
        // Bind and drop a listener to find a port nobody listens on.
        let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let options = LoadOptions { request_timeout: Duration::from_secs(2), retry_budget: Duration::from_millis(600) };
        let started = Instant::now();
        let error = load_with(&format!("http://127.0.0.1:{port}"), "t", NOW, options).await.unwrap_err();
        assert!(matches!(error, LoadError::GaveUp { last: Unavailable::Connect { .. }, .. }), "{error:?}");
        // The message and the last attempt's, as `{:#}` prints them.
        let error = format!("{error}: {}", error.source().unwrap());
        assert!(error.contains("list events") && error.contains("cannot connect"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_refusal_fails_at_once_with_the_problem_detail() {
        let fake = Arc::new(Mutex::new(Fake { refuse: Some("/admin/venues"), ..Fake::default() }));
        let base = serve(fake.clone()).await;
        let error = load(&base, "t", NOW).await.unwrap_err().to_string();
        assert!(error.contains("create venue `The Lantern Room`"), "{error}");
        assert!(error.contains("422") && error.contains("a seat map needs at least one seat"), "{error}");
        assert_eq!(fake.lock().unwrap().requests.len(), 1, "no retry after a refusal");
    }

    #[tokio::test]
    async fn unavailability_longer_than_the_budget_fails_naming_the_last_answer() {
        let fake = Arc::new(Mutex::new(Fake { unavailable: 1000, ..Fake::default() }));
        let base = serve(fake).await;
        let options = LoadOptions { request_timeout: Duration::from_secs(2), retry_budget: Duration::from_millis(700) };
        let started = Instant::now();
        let error = load_with(&base, "t", NOW, options).await.unwrap_err();
        let error = format!("{error}: {}", error.source().unwrap());
        assert!(error.contains("gave up") && error.contains("503") && error.contains("no leader yet"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

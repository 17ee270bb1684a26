//! The search benchmark: one generated catalog loaded into a Boxoffice cluster (through the bulk
//! admin API, indexed by every node's search shard) and into PostgreSQL (a `tsvector` with a GIN
//! index, and the `ILIKE '%keyword%'` query a PostgreSQL user would write first), then the same
//! mix of fan searches against each.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::SinkExt;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;

use demo::bodies::{rfc3339, EventBody};
use demo::{DemoEvent, DemoPerformer};
use harness::ADMIN_TOKEN;
use serde::Serialize;

use crate::boxoffice::Boxoffice;
use crate::catalog::{event_body, progress, venue_body, Catalog};
use crate::http::Conn;
use crate::load::{Answer, Worker};

/// Events per bulk request, and bulk requests in flight.
const BULK_EVENTS: usize = 5_000;
const BULK_IN_FLIGHT: usize = 2;
/// Catalog requests (venues, performers) in flight.
const CATALOG_IN_FLIGHT: usize = 16;

/// The catalog's shape for `events` events.
pub fn catalog(seed: u64, events: usize, from_ms: u64) -> Catalog {
    let venues = (events / 200).clamp(50, 5_000);
    let performers = (events / 50).clamp(200, 20_000);
    Catalog::new(seed, venues, performers, from_ms)
}

/// One search of the mix.
#[derive(Debug, Clone, Default)]
pub struct MixQuery {
    pub keyword: Option<String>,
    /// The keyword's last word is a prefix (PostgreSQL: `word:*`).
    pub prefix: bool,
    pub city: Option<String>,
    pub category: Option<String>,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

impl MixQuery {
    /// The gateway's path for this search.
    pub fn path(&self) -> String {
        let mut query = vec!["pageSize=20".to_string()];
        let fields = [
            ("keyword", self.keyword.clone()),
            ("city", self.city.clone()),
            ("category", self.category.clone()),
            ("start", self.start_ms.map(rfc3339)),
            ("end", self.end_ms.map(rfc3339)),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                query.push(format!("{name}={}", encode(&value)));
            }
        }
        format!("/events/search?{}", query.join("&"))
    }

    /// PostgreSQL's SQL and parameters: full-text search, or a plain `ILIKE '%keyword%'`.
    pub fn sql(&self, like: bool) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut clauses = Vec::new();
        let mut order = "starts_at".to_string();
        if let Some(keyword) = &self.keyword {
            if like {
                params.push(Box::new(format!("%{keyword}%")));
                clauses.push(format!(
                    "(name ILIKE ${n} OR description ILIKE ${n} OR performers ILIKE ${n})",
                    n = params.len()
                ));
            } else {
                let words: Vec<String> =
                    keyword.split_whitespace().map(|w| w.to_lowercase().replace('\'', "")).collect();
                let mut terms = words.join(" & ");
                if self.prefix {
                    terms.push_str(":*");
                }
                params.push(Box::new(terms));
                clauses.push(format!("tsv @@ to_tsquery('simple', ${})", params.len()));
                order = format!("ts_rank(tsv, to_tsquery('simple', ${})) DESC", params.len());
            }
        }
        let filters = [("city", &self.city), ("category", &self.category)];
        for (column, value) in filters {
            if let Some(value) = value {
                params.push(Box::new(value.clone()));
                clauses.push(format!("{column} = ${}", params.len()));
            }
        }
        if let Some(start) = self.start_ms {
            params.push(Box::new(start as i64));
            clauses.push(format!("starts_at >= ${}", params.len()));
        }
        if let Some(end) = self.end_ms {
            params.push(Box::new(end as i64));
            clauses.push(format!("starts_at < ${}", params.len()));
        }
        let filter = if clauses.is_empty() { "true".to_string() } else { clauses.join(" AND ") };
        (format!("SELECT id FROM events WHERE {filter} ORDER BY {order} LIMIT 20"), params)
    }
}

/// A word with one letter changed: the typo a fan makes.
fn typo(word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() > 3 {
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'e' { 'a' } else { 'e' };
    }
    chars.into_iter().collect()
}

/// The fixed mix: exact names, names with a typo, prefixes, keywords with a city or a category,
/// and browsing by category and dates.
pub fn mix(catalog: &Catalog, from_ms: u64) -> Vec<MixQuery> {
    let day = 24 * 3_600_000;
    let mut queries = Vec::new();
    for n in 0..6 {
        let name = catalog.performers[n * 7 % catalog.performers.len()].name.clone();
        queries.push(MixQuery { keyword: Some(name), ..Default::default() });
    }
    for n in 0..4 {
        let name = &catalog.performers[(n * 11 + 3) % catalog.performers.len()].name;
        let misspelt = name.split_whitespace().map(typo).collect::<Vec<_>>().join(" ");
        queries.push(MixQuery { keyword: Some(misspelt), ..Default::default() });
    }
    for word in ["lante", "midni", "festi", "champ"] {
        queries.push(MixQuery { keyword: Some(word.into()), prefix: true, ..Default::default() });
    }
    for (word, city) in [("jazz", "Berlin"), ("tour", "Chicago"), ("live", "Tokyo"), ("rock", "Madrid")] {
        queries.push(MixQuery { keyword: Some(word.into()), city: Some(city.into()), ..Default::default() });
    }
    for (n, category) in ["comedy", "theater", "family"].into_iter().enumerate() {
        let start = from_ms + (30 + 60 * n as u64) * day;
        queries.push(MixQuery {
            category: Some(category.into()),
            start_ms: Some(start),
            end_ms: Some(start + 30 * day),
            ..Default::default()
        });
    }
    for (word, category) in [("final", "sports"), ("musical", "theater"), ("special", "comedy")] {
        queries.push(MixQuery { keyword: Some(word.into()), category: Some(category.into()), ..Default::default() });
    }
    queries
}

/// Times a POST the cluster answered 503 (no leader right now, say after an election under the
/// import's load) is tried again, a second apart, before the benchmark gives up.
const UNAVAILABLE_RETRIES_MAX: u32 = 30;

/// Posts `body` as the admin; a 503 is tried again. (A 503 can, rarely, follow a command that
/// did commit as its leader was lost: a retried import then adds its events twice, which only
/// makes the catalog a little bigger than asked.)
async fn admin_post(conn: &mut Conn, path: &str, body: &impl Serialize) -> anyhow::Result<Value> {
    let body = serde_json::to_string(body)?;
    let mut attempts = 0;
    loop {
        let (status, answer) = conn.send(Method::POST, path, Some(ADMIN_TOKEN), Some(body.clone())).await?;
        attempts += 1;
        if status == StatusCode::SERVICE_UNAVAILABLE && attempts <= UNAVAILABLE_RETRIES_MAX {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if !status.is_success() {
            bail!("POST {path}: {status} {}", String::from_utf8_lossy(&answer));
        }
        return Ok(serde_json::from_slice(&answer)?);
    }
}

/// Posts `bodies` to `path`, `CATALOG_IN_FLIGHT` at a time; returns the ids in order.
async fn create_all<B>(base: &str, path: &'static str, bodies: Vec<B>, label: &str) -> anyhow::Result<Vec<u64>>
where
    B: Serialize + Clone + Send + Sync + 'static,
{
    let started = Instant::now();
    let total = bodies.len();
    let mut ids = vec![0u64; total];
    let chunks: Vec<Vec<(usize, B)>> = bodies
        .into_iter()
        .enumerate()
        .collect::<Vec<_>>()
        .chunks(total.div_ceil(CATALOG_IN_FLIGHT))
        .map(|c| c.to_vec())
        .collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let base = base.to_string();
            tokio::spawn(async move {
                let mut conn = Conn::new(&base);
                let mut made = Vec::new();
                for (n, body) in chunk {
                    let answer = admin_post(&mut conn, path, &body).await?;
                    made.push((n, answer["id"].as_u64().context("no id")?));
                }
                anyhow::Ok(made)
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        for (n, id) in task.await?? {
            ids[n] = id;
            done += 1;
        }
        progress(label, done, total, started);
    }
    Ok(ids)
}

/// Loads the catalog's venues, performers and `events` events into the cluster.
pub async fn load_boxoffice(bo: &Boxoffice, seed: u64, events: usize, from_ms: u64) -> anyhow::Result<()> {
    let base = bo.cluster.url(1);
    let mut catalog = catalog(seed, events, from_ms);
    let venues = create_all(&base, "/admin/venues", catalog.venues.iter().map(venue_body).collect(), "venues").await?;
    let performers = create_all(
        &base,
        "/admin/performers",
        catalog.performers.iter().map(DemoPerformer::body).collect(),
        "performers",
    )
    .await?;
    let started = Instant::now();
    let mut sent = 0;
    let mut in_flight = Vec::new();
    while sent < events {
        let batch: Vec<EventBody> = (sent..(sent + BULK_EVENTS).min(events))
            .map(|_| event_body(&catalog.event(), &venues, &performers))
            .collect();
        sent += batch.len();
        let url = bo.bases()[in_flight.len() % bo.bases().len()].clone();
        in_flight.push(tokio::spawn(async move {
            let mut conn = Conn::new(&url);
            admin_post(&mut conn, "/admin/events/bulk", &json!({"events": batch})).await
        }));
        if in_flight.len() >= BULK_IN_FLIGHT || sent >= events {
            for task in in_flight.drain(..) {
                task.await??;
            }
            progress("events", sent, events, started);
        }
    }
    Ok(())
}

/// Waits until every node's search finds all `events` events, with a progress line.
/// Longest the benchmark waits for the nodes to merge their search segments.
const MERGE_WAIT_MS: u64 = 15 * 60_000;

pub async fn wait_indexed(bo: &Boxoffice, events: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    for base in bo.bases() {
        let mut conn = Conn::new(&base);
        loop {
            let (status, body) = conn.send(Method::GET, "/events/search?pageSize=1", None, None).await?;
            let total = if status.is_success() {
                serde_json::from_slice::<Value>(&body)?["total"].as_u64().unwrap_or(0) as usize
            } else {
                0
            };
            progress(&format!("indexed on {base}"), total.min(events), events, started);
            if total >= events {
                break;
            }
            if started.elapsed() > Duration::from_secs(1_800) {
                bail!("search on {base} found {total} of {events} events after 30 minutes");
            }
            tokio::time::sleep(Duration::from_millis(1_000)).await;
        }
    }
    Ok(())
}

/// Waits until every node has merged its search index into one segment (each node does once its
/// indexer is idle), so that the run measures the index a settled catalog has. Gives up after
/// `MERGE_WAIT_MS`, saying so.
pub async fn wait_merged(bo: &Boxoffice) -> anyhow::Result<()> {
    let started = Instant::now();
    for base in bo.bases() {
        let mut conn = Conn::new(&base);
        loop {
            let (_, body) = conn.send(Method::GET, "/metrics", Some(ADMIN_TOKEN), None).await?;
            let text = String::from_utf8_lossy(&body);
            let segments = text
                .lines()
                .find_map(|l| l.strip_prefix("boxoffice_search_segments ")?.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            if segments <= 1 {
                break;
            }
            if started.elapsed() > Duration::from_millis(MERGE_WAIT_MS) {
                println!("search index on {base} still has {segments} segments; measuring anyway");
                break;
            }
            println!("search index on {base}: {segments} segments, merging ({:.0} s)", started.elapsed().as_secs_f64());
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
    Ok(())
}

/// Writes one text-format COPY field.
fn field(value: &str) -> String {
    value.replace('\\', "\\\\").replace(['\t', '\n'], " ")
}

/// Loads the same catalog into PostgreSQL and builds its full-text index.
pub async fn load_postgres(
    client: &tokio_postgres::Client,
    seed: u64,
    events: usize,
    from_ms: u64,
) -> anyhow::Result<()> {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS events; CREATE TABLE events (id bigint PRIMARY KEY, name text NOT NULL, \
             description text NOT NULL, category text NOT NULL, starts_at bigint NOT NULL, city text NOT NULL, \
             venue text NOT NULL, performers text NOT NULL)",
        )
        .await?;
    let mut catalog = catalog(seed, events, from_ms);
    let sink = client.copy_in("COPY events FROM STDIN").await?;
    futures::pin_mut!(sink);
    let started = Instant::now();
    let mut rows = String::new();
    for n in 0..events {
        let e: DemoEvent = catalog.event();
        let venue = &catalog.venues[e.venue];
        let performers: Vec<&str> = e.performers.iter().map(|p| catalog.performers[*p].name.as_str()).collect();
        let row = [
            n.to_string(),
            field(&e.name),
            field(&e.description),
            e.category.clone(),
            e.starts_at_ms.to_string(),
            field(&venue.city),
            field(&venue.name),
            field(&performers.join(", ")),
        ];
        rows.push_str(&row.join("\t"));
        rows.push('\n');
        if rows.len() > 1 << 20 || n + 1 == events {
            sink.send(Bytes::from(std::mem::take(&mut rows))).await?;
            progress("postgres rows", n + 1, events, started);
        }
    }
    sink.finish().await?;
    println!("  postgres: building the full-text index (tsvector, GIN)");
    client
        .batch_execute(
            "ALTER TABLE events ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', \
             name || ' ' || performers || ' ' || venue || ' ' || description)) STORED; \
             CREATE INDEX events_tsv ON events USING gin (tsv); CREATE INDEX events_starts ON events (starts_at); \
             CREATE INDEX events_city ON events (city); CREATE INDEX events_category ON events (category); ANALYZE events",
        )
        .await?;
    Ok(())
}

/// A fan searching through a gateway, going through the mix.
pub struct GatewaySearch {
    pub conn: Conn,
    pub paths: Vec<String>,
    pub turn: usize,
}

impl Worker for GatewaySearch {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        self.turn = (self.turn + 1) % self.paths.len();
        let (status, _) = self.conn.send(Method::GET, &self.paths[self.turn], None, None).await?;
        if !status.is_success() {
            bail!("search answered {status}");
        }
        Ok(Answer::Read)
    }
}

/// The same mix against PostgreSQL.
pub struct PostgresSearch {
    pub client: tokio_postgres::Client,
    pub queries: Vec<(tokio_postgres::Statement, Vec<Box<dyn ToSql + Sync + Send>>)>,
    pub turn: usize,
}

impl PostgresSearch {
    pub async fn connect(dsn: &str, mix: &[MixQuery], like: bool, turn: usize) -> anyhow::Result<PostgresSearch> {
        let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let mut queries = Vec::new();
        for query in mix {
            let (sql, params) = query.sql(like);
            queries.push((client.prepare(&sql).await?, params));
        }
        Ok(PostgresSearch { client, queries, turn })
    }
}

impl Worker for PostgresSearch {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        self.turn = (self.turn + 1) % self.queries.len();
        let (statement, params) = &self.queries[self.turn];
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        self.client.query(statement, &params).await?;
        Ok(Answer::Read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_reads_as_paths_and_as_sql() {
        let catalog = catalog(1, 10_000, 0);
        let mix = mix(&catalog, 0);
        assert_eq!(mix.len(), 24);
        let prefix = mix.iter().find(|q| q.prefix).unwrap();
        assert_eq!(prefix.sql(false).0, "SELECT id FROM events WHERE tsv @@ to_tsquery('simple', $1) ORDER BY ts_rank(tsv, to_tsquery('simple', $1)) DESC LIMIT 20");
        assert!(prefix.sql(true).0.contains("ILIKE $1"));
        let browse = mix.iter().find(|q| q.keyword.is_none()).unwrap();
        assert!(
            browse.path().contains("category=")
                && browse.path().contains("start=")
                && browse.path().contains("pageSize=20")
        );
        assert_eq!(encode("Tayler Swift"), "Tayler%20Swift");
        assert_eq!(typo("Swift"), "Sweft");
    }
}

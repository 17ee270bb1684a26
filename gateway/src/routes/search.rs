//! `GET /events/search`: a search by keyword, date range and filters, with facets.
//!
//! `keyword` (typos forgiven, the last word a prefix), `start`/`end` (RFC 3339 or a date),
//! `city`, `category`, `performer`, `venue`, `available`, `sort` (`relevance` or `date`),
//! `page`, `pageSize`. The answer has the page of events, the total, and facet counts by category
//! and city. Results are cached for `search_cache_ttl_ms`, keyed by the normalized query and the
//! number of events this node's shard holds (so a new event is never hidden behind an answer
//! cached before it was indexed, whichever gateway created it), and the cache is dropped
//! whenever this gateway changes the catalog.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use model::{Event, SearchQuery, SearchSort};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use utoipa::{IntoParams, ToSchema};

use crate::cluster::Cluster;
use crate::extract::QueryParams;
use crate::problem::Problem;
use crate::routes::events::PAGE_SIZE_DEFAULT;
use crate::state::AppState;
use crate::validate::Page;
use crate::views::{parse_rfc3339, EventSummary};

/// Longest keyword accepted.
pub const KEYWORD_CHARS_MAX: usize = 200;

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    #[param(max_length = 200)]
    keyword: Option<String>,
    start: Option<String>,
    end: Option<String>,
    city: Option<String>,
    category: Option<String>,
    performer: Option<String>,
    venue: Option<String>,
    available: Option<bool>,
    /// `relevance` (the default) or `date`.
    #[param(pattern = "^(relevance|date)$")]
    sort: Option<String>,
    #[param(minimum = 1)]
    page: Option<u32>,
    /// At most `page_size_max` (100 by default).
    #[param(minimum = 1)]
    page_size: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Facet {
    value: String,
    count: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Facets {
    categories: Vec<Facet>,
    cities: Vec<Facet>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SearchPage {
    events: Vec<SearchedEvent>,
    total: u64,
    page: u32,
    page_size: u32,
    facets: Facets,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SearchedEvent {
    #[serde(flatten)]
    event: EventSummary,
    score: f32,
}

/// A date (`2026-12-01`, from its midnight UTC) or an RFC 3339 time.
fn instant(name: &str, value: &str) -> Result<u64, Problem> {
    let value = value.trim();
    let day = (value.len() == 10).then(|| parse_rfc3339(&format!("{value}T00:00:00Z"))).flatten();
    day.or_else(|| parse_rfc3339(value))
        .ok_or_else(|| Problem::invalid(format!("{name} is a date (2026-12-01) or a time (2026-12-01T20:00:00Z)")))
}

fn clean(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The query the shards answer, with the page it asks for.
fn search_query(params: SearchParams, size_max: u32) -> Result<(SearchQuery, Page), Problem> {
    let page =
        Page::new(params.page.unwrap_or(1), params.page_size.unwrap_or(PAGE_SIZE_DEFAULT.min(size_max)), size_max)?;
    let keyword = clean(params.keyword);
    if keyword.as_ref().is_some_and(|k| k.chars().count() > KEYWORD_CHARS_MAX) {
        return Err(Problem::invalid(format!("a keyword has at most {KEYWORD_CHARS_MAX} characters")));
    }
    let sort = match params.sort.as_deref() {
        None | Some("relevance") => SearchSort::Relevance,
        Some("date") => SearchSort::Date,
        Some(other) => return Err(Problem::invalid(format!("sort is `relevance` or `date`, not `{other}`"))),
    };
    let query = SearchQuery {
        keyword,
        start: params.start.as_deref().map(|v| instant("start", v)).transpose()?,
        end: params.end.as_deref().map(|v| instant("end", v)).transpose()?,
        city: clean(params.city),
        category: clean(params.category),
        performer: clean(params.performer),
        venue: clean(params.venue),
        available: params.available,
        sort,
        offset: page.start() as u32,
        limit: page.size,
    };
    Ok((query, page))
}

/// The cache key: the query in a canonical form.
fn cache_key(query: &SearchQuery) -> String {
    let keyword = query.keyword.as_deref().map(|k| k.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" "));
    let lower = |v: &Option<String>| v.as_deref().map(str::to_lowercase);
    format!(
        "{keyword:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}",
        query.start,
        query.end,
        lower(&query.city),
        lower(&query.category),
        lower(&query.performer),
        lower(&query.venue),
        query.available,
        query.sort,
        query.offset,
        query.limit
    )
}

#[utoipa::path(get, path = "/events/search", tag = "events", params(SearchParams),
    responses((status = 200, description = "A page of matching events, the total and facets", body = SearchPage)))]
pub async fn search<C: Cluster>(
    State(state): State<AppState<C>>,
    QueryParams(params): QueryParams<SearchParams>,
) -> Result<Response, Problem> {
    let (query, page) = search_query(params, state.config.page_size_max)?;
    let key = format!("{}|{}", state.cluster.searchable_events(), cache_key(&query));
    let caching = state.config.search_cache_ttl_ms > 0;
    if caching {
        if let Some(body) = state.caches.searches.get(&key).await {
            return Ok(respond(body));
        }
    }
    let body = Bytes::from(run(&state, query, page).await?);
    if caching {
        state.caches.searches.insert(key, body.clone()).await;
    }
    Ok(respond(body))
}

fn respond(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "public, max-age=2")], body).into_response()
}

async fn run<C: Cluster>(state: &AppState<C>, query: SearchQuery, page: Page) -> Result<Vec<u8>, Problem> {
    let result = state.cluster.search(query.clone()).await?;
    let hits: Vec<_> = result.hits.into_iter().skip(query.offset as usize).take(query.limit as usize).collect();
    // The page's events, read from this node's replicas at once.
    let mut reads = JoinSet::new();
    for (n, hit) in hits.iter().enumerate() {
        let (state, hit) = (state.clone(), hit.clone());
        reads.spawn(async move { (n, state.event(hit.event, hit.group).await, hit.score) });
    }
    let mut events: Vec<Option<SearchedEvent>> = (0..hits.len()).map(|_| None).collect();
    while let Some(read) = reads.join_next().await {
        let (n, event, score) = read.map_err(|_| Problem::internal())?;
        // An event the index knows is in its group: a miss would be a bug, a page one short.
        if let Ok(event) = event {
            let event: Event = event;
            events[n] = Some(SearchedEvent { event: EventSummary::from(&event), score });
        }
    }
    let facet = |values: Vec<(String, u64)>| values.into_iter().map(|(value, count)| Facet { value, count }).collect();
    let body = SearchPage {
        events: events.into_iter().flatten().collect(),
        total: result.total,
        page: page.number,
        page_size: page.size,
        facets: Facets { categories: facet(result.categories), cities: facet(result.cities) },
    };
    serde_json::to_vec(&body).map_err(|_| Problem::internal())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(keyword: &str) -> SearchParams {
        SearchParams {
            keyword: Some(keyword.into()),
            start: Some("2026-12-01".into()),
            end: None,
            city: Some(" Oslo ".into()),
            category: None,
            performer: None,
            venue: None,
            available: Some(true),
            sort: Some("date".into()),
            page: Some(2),
            page_size: Some(10),
        }
    }

    #[test]
    fn parameters_become_a_query_and_a_page() {
        let (query, page) = search_query(params("Tayler Swift"), 100).unwrap();
        assert_eq!(query.keyword.as_deref(), Some("Tayler Swift"));
        assert_eq!(query.start, parse_rfc3339("2026-12-01T00:00:00Z"));
        assert_eq!(query.city.as_deref(), Some("Oslo"));
        assert_eq!((query.offset, query.limit, query.sort), (10, 10, SearchSort::Date));
        assert_eq!(page.number, 2);
    }

    #[test]
    fn bad_parameters_are_named() {
        let mut bad = params("x");
        bad.sort = Some("price".into());
        assert!(search_query(bad, 100).unwrap_err().detail().contains("sort"));
        let mut bad = params("x");
        bad.start = Some("next tuesday".into());
        assert!(search_query(bad, 100).unwrap_err().detail().contains("start"));
        assert!(search_query(params(&"x".repeat(500)), 100).is_err());
    }

    #[test]
    fn equal_queries_share_a_cache_key() {
        let (a, _) = search_query(params("Tayler  Swift"), 100).unwrap();
        let (b, _) = search_query(params("tayler swift"), 100).unwrap();
        assert_eq!(cache_key(&a), cache_key(&b));
        let (c, _) = search_query(params("taylor swift"), 100).unwrap();
        assert_ne!(cache_key(&a), cache_key(&c));
    }
}

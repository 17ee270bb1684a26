//! Browsing events: the list, an event's page and its tickets.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use model::{Consistency, Event, EventId, EventParts, Millis, Query, QueryResult, SeatMap, UPCOMING_EVENTS_MAX};
use serde::Deserialize;
use tokio::task::JoinSet;
use utoipa::IntoParams;

use crate::cache::{tagged_answer, CachedBody};
use crate::cluster::Cluster;
use crate::extract::{PathParams, QueryParams};
use crate::problem::Problem;
use crate::state::{unexpected, AppState, Shared};
use crate::validate::Page;
use crate::views::{json_bytes, EventList, EventSummary, EventView, TicketsView};

/// The page size of `GET /events` when the client names none.
pub const PAGE_SIZE_DEFAULT: u32 = 20;

/// How long a CDN or browser may reuse an event's page.
const EVENT_CACHE_CONTROL: &str = "public, max-age=10";

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// From 1.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// At most `page_size_max` (100 by default).
    #[param(minimum = 1)]
    page_size: Option<u32>,
}

/// `GET /events`: upcoming events, earliest first, merged from every inventory group.
#[utoipa::path(get, path = "/events", tag = "events", params(Paging),
    responses((status = 200, description = "A page of upcoming events", body = EventList)))]
pub async fn list<C: Cluster>(
    State(state): State<AppState<C>>,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Json<EventList>, Problem> {
    let size_max = state.config.page_size_max;
    let size = paging.page_size.unwrap_or(PAGE_SIZE_DEFAULT.min(size_max));
    let page = Page::new(paging.page.unwrap_or(1), size, size_max)?;
    let now = state.now();
    // One more than the page needs tells whether there is a next page.
    let wanted = page.end() as u64 + 1;
    let limit = wanted.min(u64::from(UPCOMING_EVENTS_MAX)) as u32;
    let lists = upcoming(&state, now, limit).await?;
    // A group cut short by the query's own ceiling may have more than it said.
    let cut_short = u64::from(limit) < wanted && lists.iter().any(|l| l.len() >= limit as usize);
    let mut events: Vec<Event> = lists.into_iter().flatten().filter(|e| e.starts_at >= now).collect();
    events.sort_by_key(|e| (e.starts_at, e.id));
    events.dedup_by_key(|e| e.id);
    let has_more = events.len() > page.end() || cut_short;
    let shown = events.get(page.start()..page.end().min(events.len())).unwrap_or_default();
    let events = shown.iter().map(EventSummary::from).collect();
    Ok(Json(EventList { events, page: page.number, page_size: page.size, has_more }))
}

/// Asks every inventory group at once. Any group that cannot answer fails the whole list: a
/// list with one group's events silently missing would look complete and be wrong.
async fn upcoming<C: Cluster>(state: &Shared<C>, from: Millis, limit: u32) -> Result<Vec<Vec<Event>>, Problem> {
    let mut tasks = JoinSet::new();
    for group in 1..=state.cluster.inventory_groups() {
        let cluster = state.cluster.clone();
        tasks.spawn(async move {
            let query = Query::UpcomingEvents { from, limit };
            cluster.read(group, query, Consistency::Stale).await
        });
    }
    let mut lists = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|error| {
            tracing::error!(%error, "upcoming events task failed");
            Problem::internal()
        })?;
        match result? {
            QueryResult::Events(events) => lists.push(events),
            other => return Err(unexpected("upcoming events", &other)),
        }
    }
    Ok(lists)
}

/// `GET /events/{eventId}`: the event's page, cached, with an entity tag.
#[utoipa::path(get, path = "/events/{eventId}", tag = "events", params(("eventId" = u64, Path, description = "The event")),
    responses((status = 200, description = "The event's page", body = EventView,
        headers(("ETag" = String, description = "Send it back as `If-None-Match`"))),
        (status = 304, description = "Unchanged since the entity tag sent")))]
pub async fn get_event<C: Cluster>(
    State(state): State<AppState<C>>,
    PathParams(id): PathParams<EventId>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let cached = event_page(&state, id).await?;
    Ok(tagged_answer(&headers, &cached.etag, EVENT_CACHE_CONTROL, "application/json", cached.body.clone()))
}

/// The serialized page of an event, from the cache or built from the event's group.
async fn event_page<C: Cluster>(state: &Shared<C>, id: EventId) -> Result<Arc<CachedBody>, Problem> {
    let build = async {
        let parts = state.parts_of(id).await?;
        let group = parts.home();
        let (event, map) = tokio::try_join!(state.event(id, group), state.seat_map(id, group))?;
        page_body(&event, &map, &parts)
    };
    state.caches.events.try_get_with(id, build).await.map_err(|e| Problem::clone(&e))
}

/// The body of an event's page.
pub(crate) fn page_body(event: &Event, map: &SeatMap, parts: &EventParts) -> Result<Arc<CachedBody>, Problem> {
    Ok(Arc::new(CachedBody::new(json_bytes(&EventView::new(event, map, parts))?)))
}

/// `GET /events/{eventId}/tickets`: every ticket, where it is, and whether it can be had now.
#[utoipa::path(get, path = "/events/{eventId}/tickets", tag = "events", params(("eventId" = u64, Path, description = "The event")),
    responses((status = 200, description = "Every ticket and its status now", body = TicketsView)))]
pub async fn tickets<C: Cluster>(
    State(state): State<AppState<C>>,
    PathParams(id): PathParams<EventId>,
) -> Result<Response, Problem> {
    let group = state.group_of(id).await?;
    // An event in parts: each part's group has the rows of its own tickets.
    let rows = async {
        let mut rows = Vec::new();
        for answer in state.read_parts(id, Query::Tickets(id), Consistency::Stale).await? {
            match answer {
                QueryResult::Tickets(part) => rows.extend(part),
                other => return Err(unexpected("tickets", &other)),
            }
        }
        Ok(rows)
    };
    let (map, rows) = tokio::try_join!(state.seat_map(id, group), rows)?;
    let body = json_bytes(&TicketsView::new(id, &map, &rows, state.now()))?;
    // Availability changes by the second: clients must revalidate every time.
    Ok(([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-cache")], body).into_response())
}

//! The seat map in two parts: the layout, which never changes (cached by browsers and proxies
//! for good), and availability, as a snapshot or a live stream of deltas (see [`crate::seats`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use model::{EventId, SeatMap};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use crate::cache::{tagged_answer, CachedBody};
use crate::cluster::Cluster;
use crate::extract::PathParams;
use crate::problem::Problem;
use crate::seats::feed::{Feed, Step, Subscribed};
use crate::seats::wire::{SnapshotView, Version};
use crate::state::{AppState, Shared};
use crate::views::json_bytes;

/// A layout never changes: a year, and `immutable` so that browsers do not even revalidate.
const LAYOUT_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// A comment line this often keeps proxies from closing a quiet stream.
const STREAM_KEEP_ALIVE_MS: u64 = 15_000;

/// The layout of an event: every seat in ticket order, each as `[number, x, y]`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LayoutView<'a> {
    event_id: EventId,
    seats: usize,
    sections: Vec<SectionLayout<'a>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SectionLayout<'a> {
    name: &'a str,
    price_cents: u64,
    rows: Vec<RowLayout<'a>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RowLayout<'a> {
    name: &'a str,
    /// Each seat as `[number, x, y]`.
    #[schema(value_type = Vec<Vec<SeatCell>>)]
    seats: Vec<(&'a str, f32, f32)>,
}

/// One cell of a seat's `[number, x, y]`: its number (text), then its place (numbers).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum SeatCell {
    Number(String),
    Coordinate(f32),
}

/// One event of the seat stream as it travels (the schema of each event of a
/// `text/event-stream`, as OpenAPI 3.2 reads it): `snapshot`, whose data is a `SnapshotView`, or
/// `delta`, whose data is a `DeltaView`, with its version as the id.
#[derive(ToSchema)]
#[allow(dead_code)]
struct SeatStreamEvent {
    #[schema(pattern = "^(snapshot|delta)$")]
    event: String,
    /// JSON: a `SnapshotView` or a `DeltaView`.
    #[schema(content_media_type = "application/json")]
    data: String,
    /// The version the event brings the map to.
    id: String,
}

fn layout_body(event: EventId, map: &SeatMap) -> Result<Arc<CachedBody>, Problem> {
    let sections = map
        .sections
        .iter()
        .map(|section| SectionLayout {
            name: &section.name,
            price_cents: section.price_cents,
            rows: section
                .rows
                .iter()
                .map(|row| RowLayout {
                    name: &row.name,
                    seats: row.seats.iter().map(|seat| (seat.number.as_str(), seat.x, seat.y)).collect(),
                })
                .collect(),
        })
        .collect();
    let view = LayoutView { event_id: event, seats: map.seat_count(), sections };
    Ok(Arc::new(CachedBody::new(json_bytes(&view)?)))
}

/// `GET /events/{eventId}/layout`: sections, rows and seats with their places and prices, in
/// ticket order (a seat's index is its ticket id); immutable.
#[utoipa::path(get, path = "/events/{eventId}/layout", tag = "seats", params(("eventId" = u64, Path, description = "The event")),
    responses((status = 200, description = "Every seat in ticket order; immutable", body = LayoutView,
        headers(("ETag" = String, description = "Send it back as `If-None-Match`"))),
        (status = 304, description = "Unchanged since the entity tag sent")))]
pub async fn layout<C: Cluster>(
    State(state): State<AppState<C>>,
    PathParams(id): PathParams<EventId>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let build = async {
        let group = state.group_of(id).await?;
        layout_body(id, &*state.seat_map(id, group).await?)
    };
    let cached = state.caches.layouts.try_get_with(id, build).await.map_err(|e| Problem::clone(&e))?;
    Ok(tagged_answer(&headers, &cached.etag, LAYOUT_CACHE_CONTROL, "application/json", cached.body.clone()))
}

/// The running feed of an event.
async fn feed_of<C: Cluster>(state: &Shared<C>, id: EventId) -> Result<Arc<Feed>, Problem> {
    let parts = state.parts_of(id).await?;
    let seats = state.seat_map(id, parts.home()).await?.seat_count();
    state.seat_feeds.feed(&state.cluster, id, &parts.groups, seats).await
}

/// `GET /events/{eventId}/seats`: every seat's status now, with the version to follow it from.
#[utoipa::path(get, path = "/events/{eventId}/seats", tag = "seats", params(("eventId" = u64, Path, description = "The event")),
    responses((status = 200, description = "Every seat's status now", body = SnapshotView)))]
pub async fn snapshot<C: Cluster>(
    State(state): State<AppState<C>>,
    PathParams(id): PathParams<EventId>,
) -> Result<Response, Problem> {
    let feed = feed_of(&state, id).await?;
    let body = json_bytes(&feed.lock().snapshot(id))?;
    Ok(([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-cache")], body).into_response())
}

/// `GET /events/{eventId}/seats/stream`: server-sent events: a `snapshot` first, then a `delta`
/// per change, each with its version as the event id. With `Last-Event-ID`, the deltas after it
/// instead of the snapshot when the feed still has them all.
#[utoipa::path(get, path = "/events/{eventId}/seats/stream", tag = "seats",
    params(("eventId" = u64, Path, description = "The event"), ("Last-Event-ID" = Option<String>, Header, description = "The last version received: resume after it")),
    responses((status = 200, content_type = "text/event-stream", body = SeatStreamEvent,
        description = "Server-sent events: `snapshot` (a `SnapshotView`) first, then a `delta` (a `DeltaView`) per change, \
            each with its version as the event id")))]
pub async fn stream<C: Cluster>(
    State(state): State<AppState<C>>,
    PathParams(id): PathParams<EventId>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let last = match headers.get("last-event-id").map(|v| v.to_str().unwrap_or("")) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<Version>().map_err(|e| Problem::bad_request(format!("Last-Event-ID: {e}")))?),
    };
    state.seat_feeds.admit()?;
    let feed = feed_of(&state, id).await?;
    // Subscribed before the state is read: a step after the read is received, one before it
    // is skipped by its version.
    let (subscribed, steps) = feed.subscribe(&state.seat_feeds.subscribers);
    let (first, sent) = {
        let feed_state = feed.lock();
        match last.and_then(|after| Some((after, feed_state.since(after)?))) {
            // Up to the last delta sent: the state's own version may include changes that wait
            // for the next delta, which the subscriber has not had.
            Some((after, deltas)) => {
                let sent = deltas.last().map_or(after, |(version, _)| *version);
                (deltas.iter().map(|(version, json)| delta_event(*version, json)).collect(), sent)
            }
            // A snapshot has every change, sent or waiting.
            None => (vec![snapshot_sse(id, &feed_state.snapshot(id))], feed_state.version),
        }
    };
    let live = Live { feed, steps, sent, _subscribed: subscribed };
    let events = stream::iter(first).chain(stream::unfold(live, Live::next)).map(Ok::<_, Infallible>);
    let keep_alive = KeepAlive::new().interval(Duration::from_millis(STREAM_KEEP_ALIVE_MS));
    Ok(([(CACHE_CONTROL, "no-cache")], Sse::new(events).keep_alive(keep_alive)).into_response())
}

/// A subscriber's end of the feed.
struct Live {
    feed: Arc<Feed>,
    steps: broadcast::Receiver<Arc<Step>>,
    /// The version the subscriber has: steps at or before it are not sent again.
    sent: Version,
    _subscribed: Subscribed,
}

/// What a subscriber is sent next.
#[derive(Debug)]
enum Out {
    Snapshot(SnapshotView),
    Delta(Version, Bytes),
}

impl Live {
    async fn next(mut self) -> Option<(SseEvent, Live)> {
        let out = self.next_out().await?;
        Some((sse_event(self.feed.event, out), self))
    }

    async fn next_out(&mut self) -> Option<Out> {
        loop {
            return Some(match self.steps.recv().await {
                Ok(step) => match &*step {
                    Step::Delta { version, .. } if *version <= self.sent => continue,
                    Step::Delta { version, json } => {
                        self.sent = *version;
                        Out::Delta(*version, json.clone())
                    }
                    Step::Reset => self.snapshot(),
                },
                // Fell behind by more than the channel holds: a fresh snapshot replaces what it
                // missed, so that a slow fan costs its place in the shared channel, not a queue.
                Err(RecvError::Lagged(_)) => self.snapshot(),
                Err(RecvError::Closed) => return None,
            });
        }
    }

    fn snapshot(&mut self) -> Out {
        let state = self.feed.lock();
        // What the channel still holds is in the snapshot: start again from its newest step
        // (under the feed's lock, so that no step falls between the two).
        self.steps = self.steps.resubscribe();
        self.sent = state.version;
        Out::Snapshot(state.snapshot(self.feed.event))
    }
}

fn sse_event(event: EventId, out: Out) -> SseEvent {
    match out {
        Out::Snapshot(view) => snapshot_sse(event, &view),
        Out::Delta(version, json) => delta_event(version, &json),
    }
}

fn snapshot_sse(event: EventId, view: &SnapshotView) -> SseEvent {
    let data = serde_json::to_string(view).unwrap_or_else(|error| {
        tracing::error!(event, %error, "a seat snapshot could not be rendered");
        String::from("{}")
    });
    SseEvent::default().event("snapshot").id(view.version.clone()).data(data)
}

fn delta_event(version: Version, json: &Bytes) -> SseEvent {
    // Rendered by the feed from a `DeltaView`: UTF-8 by construction.
    let text = std::str::from_utf8(json).unwrap_or("{}");
    SseEvent::default().event("delta").id(version.to_string()).data(text)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use model::{BookingId, TicketState};

    use super::*;
    use crate::seats::feed::{FeedState, SUBSCRIBER_LAG_DELTAS_MAX};

    fn hold(feed: &Feed, applied: u64, ticket: u32) {
        let row = Some(TicketState::Held { booking: BookingId { event: 1, nonce: applied }, until: u64::MAX });
        let mut state = feed.lock();
        state.apply(1, 0, applied, &[(1, ticket, row)], 0);
        let delta = state.flush().expect("a new hold changes a seat");
        feed.publish(&mut state, &delta);
    }

    #[tokio::test]
    async fn a_subscriber_that_keeps_up_gets_every_delta_once() {
        let feed = Feed::new(1, vec![1], FeedState::new(10, vec![1], &[], 0, 0));
        let (subscribed, steps) = feed.subscribe(&Arc::new(AtomicUsize::new(0)));
        let mut live = Live { feed: feed.clone(), steps, sent: feed.lock().version, _subscribed: subscribed };
        hold(&feed, 2, 4);
        hold(&feed, 3, 5);
        for want in [2, 3] {
            match live.next_out().await {
                Some(Out::Delta(version, _)) => assert_eq!(version.applied, want),
                other => panic!("expected the delta at {want}, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_stops_reading_costs_a_bounded_buffer_and_catches_up_by_snapshot() {
        let seats = 4 * SUBSCRIBER_LAG_DELTAS_MAX + 1;
        let feed = Feed::new(1, vec![1], FeedState::new(seats, vec![1], &[], 0, 0));
        let total = Arc::new(AtomicUsize::new(0));
        let (subscribed, steps) = feed.subscribe(&total);
        assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 1);
        let mut live = Live { feed: feed.clone(), steps, sent: feed.lock().version, _subscribed: subscribed };
        let last = seats as u32 - 1;
        for ticket in 0..last {
            hold(&feed, 2 + u64::from(ticket), ticket);
        }
        // The channel keeps the last SUBSCRIBER_LAG_DELTAS_MAX steps for every subscriber
        // together; the one that stopped reading has no queue of its own to grow.
        match live.next_out().await {
            Some(Out::Snapshot(view)) => {
                assert_eq!(view.available_count, 1, "the snapshot has every hold it missed");
                assert_eq!(view.version, feed.lock().version.to_string());
            }
            other => panic!("a subscriber that fell behind gets a snapshot, got {other:?}"),
        }
        hold(&feed, 2 + u64::from(last), last);
        match live.next_out().await {
            Some(Out::Delta(version, _)) => assert_eq!(version.applied, 2 + u64::from(last)),
            other => panic!("after the snapshot, deltas again, got {other:?}"),
        }
        assert_eq!(feed.subscribers(), 1);
        drop(live);
        assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 0, "a dropped subscriber is no longer counted");
    }
}

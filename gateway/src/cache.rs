//! The gateway's caches (moka). Reads may be stale (design rule 8); what is cached here either
//! never changes (placements, seat maps) or changes rarely and expires (event pages, waiting
//! rooms).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use model::room::RoomState;
use model::{EventId, EventParts, SeatMap};
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::config::GatewayConfig;

pub struct Caches {
    /// Which group owns an event: fixed when the event is placed.
    pub placements: Cache<EventId, Arc<EventParts>>,
    /// An event's seat map: copied from its venue when the event is created, never changed.
    pub seat_maps: Cache<EventId, Arc<SeatMap>>,
    /// The serialized body of `GET /events/{id}`.
    pub events: Cache<EventId, Arc<CachedBody>>,
    /// Search answers by normalized query, briefly (`search_cache_ttl_ms`).
    pub searches: Cache<String, bytes::Bytes>,
    /// An event's waiting room (`None`: it has none), for a second: every hold on a hot event
    /// asks whether it needs an admission, and the group should not hear that question per hold.
    pub rooms: Cache<EventId, Option<Arc<RoomState>>>,
    /// The body of `GET /events/{id}/layout`: derived from the seat map, never changed.
    pub layouts: Cache<EventId, Arc<CachedBody>>,
}

/// How long a waiting room's state is reused.
pub const ROOM_CACHE_TTL_MS: u64 = 1_000;
/// Most items (places, passes, buckets and reports, some tens of bytes each) over all cached
/// waiting rooms: a room with many nodes reporting long fronts weighs more than an idle one.
pub const ROOM_CACHE_ITEMS_MAX: u64 = 2_000_000;

/// A room's weight in [`ROOM_CACHE_ITEMS_MAX`] items.
fn room_items(room: &Option<Arc<RoomState>>) -> u32 {
    let Some(room) = room else { return 1 };
    let reported: usize = room.reports.iter().map(|(_, _, r)| 1 + r.front.len() + r.quantiles.len()).sum();
    let items = 1 + reported + room.passes.len() + room.ends.len() + room.used.len() + room.late.len();
    u32::try_from(items).unwrap_or(u32::MAX)
}

impl Caches {
    pub fn new(config: &GatewayConfig) -> Self {
        Caches {
            placements: Cache::builder().max_capacity(config.placement_cache_entries_max).build(),
            // Weighed by seats, so that one stadium counts as much as a thousand clubs.
            seat_maps: Cache::builder()
                .max_capacity(config.seat_map_cache_seats_max)
                .weigher(|_, map: &Arc<SeatMap>| u32::try_from(map.seat_count()).unwrap_or(u32::MAX).max(1))
                .build(),
            events: Cache::builder()
                .max_capacity(config.event_cache_entries_max)
                .time_to_live(Duration::from_millis(config.event_cache_ttl_ms))
                .build(),
            searches: Cache::builder()
                .max_capacity(config.search_cache_entries_max)
                .time_to_live(Duration::from_millis(config.search_cache_ttl_ms.max(1)))
                .build(),
            rooms: Cache::builder()
                .max_capacity(ROOM_CACHE_ITEMS_MAX)
                .weigher(|_, room: &Option<Arc<RoomState>>| room_items(room))
                .time_to_live(Duration::from_millis(ROOM_CACHE_TTL_MS))
                .build(),
            // Weighed by bytes: a stadium's layout is a megabyte, a club's a few kilobytes.
            layouts: Cache::builder()
                .max_capacity(config.layout_cache_bytes_max)
                .weigher(|_, body: &Arc<CachedBody>| u32::try_from(body.body.len()).unwrap_or(u32::MAX).max(1))
                .build(),
        }
    }
}

/// A response body kept with its entity tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedBody {
    pub body: Bytes,
    pub etag: String,
}

impl CachedBody {
    pub fn new(body: Vec<u8>) -> Self {
        let etag = etag_of(&body);
        CachedBody { body: Bytes::from(body), etag }
    }
}

/// A strong entity tag: the quoted hex of the first 16 bytes of the body's SHA-256.
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// `body` with its entity tag and `cache_control`; or, when the request's `If-None-Match` names
/// the tag, 304 with the same validators and no body.
pub fn tagged_answer(
    headers: &HeaderMap,
    etag: &str,
    cache_control: &str,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response {
    let validators = [(ETAG, etag.to_owned()), (CACHE_CONTROL, cache_control.to_owned())];
    let unchanged = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if unchanged.is_some_and(|tags| none_match_hits(tags, etag)) {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    (validators, [(CONTENT_TYPE, content_type)], body.into()).into_response()
}

/// Whether an `If-None-Match` header names `etag` (weak comparison, as RFC 9110 asks for this
/// header: a `W/` prefix is ignored).
pub fn none_match_hits(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_hex_of_sixteen_bytes_and_follow_the_body() {
        let tag = etag_of(b"{}");
        assert_eq!(tag.len(), 34);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_ne!(tag, etag_of(b"{ }"));
        assert_eq!(CachedBody::new(b"{}".to_vec()).etag, tag);
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let tag = etag_of(b"x");
        assert!(none_match_hits(&tag, &tag));
        assert!(none_match_hits(&format!("\"other\", W/{tag}"), &tag));
        assert!(none_match_hits("*", &tag));
        assert!(!none_match_hits("\"other\"", &tag));
        assert!(!none_match_hits("", &tag));
    }
}

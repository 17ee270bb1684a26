//! What every handler shares, and the reads most routes start with.

use std::fmt::Debug;
use std::ops::Deref;
use std::sync::Arc;

use model::room::RoomState;
use model::{
    Booking, BookingId, Command, Consistency, Event, EventId, EventParts, GroupId, Millis, Outcome, Query, QueryResult,
    SeatMap, BOOKING_TICKETS_HARD_MAX, PLACEMENT_GROUP,
};

use crate::admission::AdmissionSigner;
use crate::cache::{CachedBody, Caches};
use crate::cluster::Cluster;
use crate::config::GatewayConfig;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::payment::PaymentProvider;
use crate::problem::Problem;
use crate::seats::SeatFeeds;
use crate::tokens::TokenSigner;

/// The router's state: cheap to clone (one `Arc`), whatever the cluster type.
pub struct AppState<C>(Arc<Shared<C>>);

pub struct Shared<C> {
    pub cluster: Arc<C>,
    pub config: GatewayConfig,
    pub tokens: TokenSigner,
    /// Checks the admission tokens the waiting room gives fans (holds on a queued event).
    pub admissions: AdmissionSigner,
    pub caches: Caches,
    pub payments: Arc<dyn PaymentProvider>,
    pub metrics: Arc<Metrics>,
    /// The live seat maps this gateway serves.
    pub seat_feeds: Arc<SeatFeeds>,
    /// Rate limits, and the slots of password hashing.
    pub limits: Arc<Limits>,
}

impl<C> Clone for AppState<C> {
    fn clone(&self) -> Self {
        AppState(self.0.clone())
    }
}

impl<C> Deref for AppState<C> {
    type Target = Shared<C>;

    fn deref(&self) -> &Shared<C> {
        &self.0
    }
}

impl<C> AppState<C> {
    /// A handle that does not keep the gateway alive (for background tasks).
    pub fn downgrade(&self) -> std::sync::Weak<Shared<C>> {
        Arc::downgrade(&self.0)
    }
}

impl<C: Cluster> AppState<C> {
    pub fn new(cluster: Arc<C>, mut config: GatewayConfig, payments: Arc<dyn PaymentProvider>) -> Self {
        // Apply refuses larger holds anyway; refusing them here gives the client a clear 422.
        config.tickets_per_booking_max = config.tickets_per_booking_max.min(BOOKING_TICKETS_HARD_MAX);
        config.page_size_max = config.page_size_max.max(1);
        let tokens = if config.cluster_secret.is_empty() {
            tracing::warn!("no cluster secret configured: fan tokens will only work on this node");
            TokenSigner::random()
        } else {
            TokenSigner::new(config.cluster_secret.as_bytes())
        };
        if config.admin_token.is_empty() {
            tracing::info!("no admin token configured: admin endpoints are disabled");
        }
        let admissions = AdmissionSigner::for_cluster(&config.cluster_secret);
        let caches = Caches::new(&config);
        let metrics = Arc::new(Metrics::default());
        let seat_feeds = Arc::new(SeatFeeds::new(config.seat_feeds_max, config.seat_subscribers_max));
        let limits = Arc::new(Limits::new(&config));
        let shared = Shared { cluster, config, tokens, admissions, caches, payments, metrics, seat_feeds, limits };
        AppState(Arc::new(shared))
    }
}

impl<C: Cluster> Shared<C> {
    pub fn now(&self) -> Millis {
        self.cluster.now_ms()
    }

    pub async fn read(&self, group: GroupId, query: Query, consistency: Consistency) -> Result<QueryResult, Problem> {
        Ok(self.cluster.read(group, query, consistency).await?)
    }

    pub async fn write(&self, group: GroupId, command: Command) -> Result<Outcome, Problem> {
        let kind = command.kind();
        let outcome = self.cluster.write(group, command).await?;
        tracing::debug!(group, command = kind, "command applied");
        Ok(outcome)
    }

    /// Reads a record from any replica, and from the leader only when the replica has not got it
    /// (yet): a record just created may not have reached a follower, but a record never vanishes.
    async fn read_existing<T>(
        &self,
        group: GroupId,
        query: Query,
        pick: fn(QueryResult) -> Result<Option<T>, Problem>,
    ) -> Result<Option<T>, Problem> {
        let stale = pick(self.read(group, query.clone(), Consistency::Stale).await?)?;
        if stale.is_some() {
            return Ok(stale);
        }
        pick(self.read(group, query, Consistency::Linearizable).await?)
    }

    /// The inventory group that keeps `event` (its record, listing and room: part 0's); 404 if
    /// there is no such event.
    pub async fn group_of(&self, event: EventId) -> Result<GroupId, Problem> {
        Ok(self.parts_of(event).await?.home())
    }

    /// The parts of `event` and each one's group (one part for an event placed whole); 404 if
    /// there is no such event. They never change, so they are cached for good.
    pub async fn parts_of(&self, event: EventId) -> Result<Arc<EventParts>, Problem> {
        if let Some(parts) = self.caches.placements.get(&event).await {
            return Ok(parts);
        }
        let parts = self.read_existing(PLACEMENT_GROUP, Query::Parts(event), pick_parts).await?;
        let parts = Arc::new(parts.ok_or_else(|| no_event(event))?);
        self.caches.placements.insert(event, parts.clone()).await;
        Ok(parts)
    }

    /// `query` read from the group of every part of `event`, part 0's answer first.
    pub async fn read_parts(
        &self,
        event: EventId,
        query: Query,
        consistency: Consistency,
    ) -> Result<Vec<QueryResult>, Problem> {
        let parts = self.parts_of(event).await?;
        let reads = parts.groups.iter().map(|&group| self.read(group, query.clone(), consistency));
        futures::future::try_join_all(reads).await
    }

    /// The group that keeps booking `id` (its event's part); 404 if there is no such event.
    pub async fn group_of_booking(&self, id: BookingId) -> Result<GroupId, Problem> {
        let parts = self.parts_of(id.event).await.map_err(|p| if_not_found(p, || no_booking(id)))?;
        Ok(parts.group_of_booking(id))
    }

    /// Remembers what the gateway just created for an event, so that the first reads of it
    /// (the admin usually opens the page next) skip group 0 and the event's group.
    pub async fn remember_new_event(&self, parts: EventParts, map: SeatMap, page: Arc<CachedBody>) {
        // The catalog changed: cached searches may now be missing this event.
        self.caches.searches.invalidate_all();
        let event = parts.event;
        self.caches.placements.insert(event, Arc::new(parts)).await;
        self.caches.seat_maps.insert(event, Arc::new(map)).await;
        self.caches.events.insert(event, page).await;
    }

    /// The seat map of `event`, owned by `group`; 404 if there is no such event. Concurrent
    /// misses share one read, which matters when a stadium's map is wanted by a crowd at once.
    pub async fn seat_map(&self, event: EventId, group: GroupId) -> Result<Arc<SeatMap>, Problem> {
        let load = async {
            let map = self.read_existing(group, Query::SeatMap(event), pick_seat_map).await?;
            map.map(Arc::new).ok_or_else(|| no_event(event))
        };
        self.caches.seat_maps.try_get_with(event, load).await.map_err(|e| Problem::clone(&e))
    }

    /// The record of `event`, owned by `group`; 404 if there is no such event.
    pub async fn event(&self, event: EventId, group: GroupId) -> Result<Event, Problem> {
        let found = self.read_existing(group, Query::Event(event), pick_event).await?;
        found.ok_or_else(|| no_event(event))
    }

    /// The waiting room of `event`, owned by `group`, if it has one: read from any replica and
    /// reused for a second (apply checks admissions again, so a stale answer only delays when a
    /// hold is told it needs one).
    pub async fn room(&self, event: EventId, group: GroupId) -> Result<Option<Arc<RoomState>>, Problem> {
        let load = async {
            match self.read(group, Query::Room(event), Consistency::Stale).await? {
                QueryResult::Room(room) => Ok(room.map(Arc::new)),
                other => Err(unexpected("room", &other)),
            }
        };
        self.caches.rooms.try_get_with(event, load).await.map_err(|e| Problem::clone(&e))
    }

    /// The waiting room of `event` as its group's leader has it now (and so this gateway's
    /// holds see it from now on).
    pub async fn room_now(&self, event: EventId, group: GroupId) -> Result<Option<RoomState>, Problem> {
        let room = match self.read(group, Query::Room(event), Consistency::Linearizable).await? {
            QueryResult::Room(room) => room,
            other => return Err(unexpected("room", &other)),
        };
        self.remember_room(event, room.clone()).await;
        Ok(room)
    }

    /// Caches what the gateway just read or wrote of a room.
    pub async fn remember_room(&self, event: EventId, room: Option<RoomState>) {
        self.caches.rooms.insert(event, room.map(Arc::new)).await;
    }

    /// A booking and its group, read from the leader: a fan who just paid must see it paid.
    pub async fn booking(&self, id: BookingId) -> Result<(GroupId, Booking), Problem> {
        let group = self.group_of_booking(id).await?;
        let result = self.read(group, Query::Booking(id), Consistency::Linearizable).await?;
        let QueryResult::Booking(booking) = result else {
            return Err(unexpected("booking", &result));
        };
        booking.map(|b| (group, b)).ok_or_else(|| no_booking(id))
    }
}

pub fn no_event(event: EventId) -> Problem {
    Problem::not_found(format!("there is no event {event}"))
}

pub fn no_booking(id: BookingId) -> Problem {
    Problem::not_found(format!("there is no booking {id}"))
}

/// Replaces a 404 by a more telling one, and keeps any other problem.
pub fn if_not_found(problem: Problem, replace: impl FnOnce() -> Problem) -> Problem {
    if problem.status() == axum::http::StatusCode::NOT_FOUND {
        replace()
    } else {
        problem
    }
}

/// An answer of the cluster that does not fit the question: a bug on our side, never the
/// client's, so it is logged and answered with a 500.
pub fn unexpected(asked: &str, got: &impl Debug) -> Problem {
    let mut got = format!("{got:?}");
    // Cut on a character boundary: the answer may hold any name an admin typed.
    let cut = (0..=got.len().min(300)).rev().find(|&i| got.is_char_boundary(i)).unwrap_or(0);
    got.truncate(cut);
    tracing::error!(asked, %got, "unexpected answer from the cluster");
    Problem::internal()
}

fn pick_parts(result: QueryResult) -> Result<Option<EventParts>, Problem> {
    match result {
        QueryResult::Parts(parts) => Ok(parts),
        other => Err(unexpected("parts", &other)),
    }
}

fn pick_seat_map(result: QueryResult) -> Result<Option<SeatMap>, Problem> {
    match result {
        QueryResult::SeatMap(map) => Ok(map),
        other => Err(unexpected("seat map", &other)),
    }
}

fn pick_event(result: QueryResult) -> Result<Option<Event>, Problem> {
    match result {
        QueryResult::Event(event) => Ok(event),
        other => Err(unexpected("event", &other)),
    }
}

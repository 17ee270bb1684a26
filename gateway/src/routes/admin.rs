//! The operators' API: catalog entries, cluster status, snapshots. Every route needs the admin
//! token.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use model::{
    split_rows, ClusterError, ClusterStatus, Command, Consistency, Event, EventId, EventParts, GroupId, Millis,
    Outcome, Performer, PerformerId, Query, QueryResult, SeatMap, TicketId, Venue, VenueId, VenueSummary,
    EVENT_PARTS_MAX, PLACEMENT_GROUP,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::cluster::Cluster;
use crate::extract::{JsonBody, PathParams};
use crate::problem::Problem;
use crate::routes::events::page_body;
use crate::state::{unexpected, AppState, Shared};
use crate::validate::{fields_problem, FieldError};
use crate::views::{parse_rfc3339, BookingRecord};

/// Longest name of a venue, performer or event, and of the other short texts.
pub const CATALOG_TEXT_CHARS_MAX: usize = 200;
/// Longest description of a performer or an event.
pub const DESCRIPTION_CHARS_MAX: usize = 10_000;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewVenue {
    name: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    city: String,
    seat_map: SeatMap,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewPerformer {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    genre: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewEvent {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    category: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    starts_at: String,
    venue_id: VenueId,
    #[serde(default)]
    performer_ids: Vec<PerformerId>,
    /// Prices by section name, replacing the venue's.
    #[serde(default)]
    price_cents: BTreeMap<String, u64>,
    /// Inventory groups the event's tickets are spread over, 1 by default: each group sells a
    /// run of whole rows (`ticketGroups` on the event's page) with a leader of its own, so that
    /// a hot on-sale uses several. A hold takes tickets of one group. Not for bulk imports.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 16)]
    groups: Option<u32>,
}

/// The errors of one text field: required or not, and how long it may be.
fn text_errors(errors: &mut Vec<FieldError>, field: &'static str, value: &str, required: bool, chars_max: usize) {
    if required && value.trim().is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if value.chars().count() > chars_max {
        errors.push(FieldError::new(field, format!("has at most {chars_max} characters")));
    }
}

/// `POST /admin/venues`.
#[utoipa::path(post, path = "/admin/venues", tag = "admin", security(("admin" = [])), request_body = NewVenue,
    responses((status = 201, description = "The venue, without its seat map", body = VenueSummary)))]
pub async fn create_venue<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    JsonBody(body): JsonBody<NewVenue>,
) -> Result<(StatusCode, Json<VenueSummary>), Problem> {
    let mut errors = Vec::new();
    text_errors(&mut errors, "name", &body.name, true, CATALOG_TEXT_CHARS_MAX);
    text_errors(&mut errors, "address", &body.address, false, CATALOG_TEXT_CHARS_MAX);
    text_errors(&mut errors, "city", &body.city, false, CATALOG_TEXT_CHARS_MAX);
    if let Some(problem) = body.seat_map.problem() {
        errors.push(FieldError::new("seatMap", problem));
    }
    fields_problem(errors)?;
    let (name, address, city) =
        (body.name.trim().to_owned(), body.address.trim().to_owned(), body.city.trim().to_owned());
    let capacity = body.seat_map.seat_count() as u32;
    let command = Command::CreateVenue {
        request: rand::random(),
        name: name.clone(),
        address: address.clone(),
        city: city.clone(),
        seat_map: body.seat_map,
    };
    match state.write(PLACEMENT_GROUP, command).await? {
        Outcome::VenueCreated(id) => {
            tracing::info!(venue = id, capacity, "venue created");
            Ok((StatusCode::CREATED, Json(VenueSummary { id, name, address, city, capacity })))
        }
        Outcome::Rejected(reason) => Err(Problem::invalid(reason)),
        other => Err(unexpected("create venue", &other)),
    }
}

/// `POST /admin/performers`.
#[utoipa::path(post, path = "/admin/performers", tag = "admin", security(("admin" = [])), request_body = NewPerformer,
    responses((status = 201, description = "The performer", body = Performer)))]
pub async fn create_performer<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    JsonBody(body): JsonBody<NewPerformer>,
) -> Result<(StatusCode, Json<Performer>), Problem> {
    let mut errors = Vec::new();
    text_errors(&mut errors, "name", &body.name, true, CATALOG_TEXT_CHARS_MAX);
    text_errors(&mut errors, "description", &body.description, false, DESCRIPTION_CHARS_MAX);
    text_errors(&mut errors, "genre", &body.genre, false, CATALOG_TEXT_CHARS_MAX);
    fields_problem(errors)?;
    let command = Command::CreatePerformer {
        request: rand::random(),
        name: body.name.trim().to_owned(),
        description: body.description.trim().to_owned(),
        genre: body.genre.trim().to_owned(),
    };
    match state.write(PLACEMENT_GROUP, command).await? {
        Outcome::PerformerCreated(performer) => {
            tracing::info!(performer = performer.id, "performer created");
            Ok((StatusCode::CREATED, Json(performer)))
        }
        Outcome::Rejected(reason) => Err(Problem::invalid(reason)),
        other => Err(unexpected("create performer", &other)),
    }
}

/// `POST /admin/events`: place a new event in an inventory group and create it there with a
/// copy of its venue's seat map.
#[utoipa::path(post, path = "/admin/events", tag = "admin", security(("admin" = [])), request_body = NewEvent,
    responses((status = 201, description = "The event's page", body = crate::views::EventView,
        headers(("Location" = String, description = "The event's URL")))))]
pub async fn create_event<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    JsonBody(body): JsonBody<NewEvent>,
) -> Result<Response, Problem> {
    let starts_at = check_new_event(&body)?;
    let venue = venue(&state, body.venue_id).await?;
    let performers = performers(&state, &body.performer_ids).await?;
    let unknown = unknown_sections(&body, &venue);
    if !unknown.is_empty() {
        let detail = format!("the venue has no sections named {unknown:?}");
        return Err(Problem::invalid(detail).with("unknownSections", unknown));
    }
    let groups = state.cluster.inventory_groups();
    if groups == 0 {
        tracing::error!("the cluster has no inventory groups to place events in");
        return Err(Problem::internal());
    }
    let seat_map = venue.seat_map.with_prices(&body.price_cents);
    let bounds = part_bounds(body.groups, groups, &seat_map)?;
    let parts = place(&state, groups, bounds).await?;
    let (event, seat_map) = new_event(&body, parts.event, starts_at, &venue, performers, state.now());
    let event = create_parts(&state, &parts, event, &seat_map).await?;
    tracing::info!(event = event.id, groups = ?parts.groups, tickets = event.ticket_count, "event created");
    let page = page_body(&event, &seat_map, &parts)?;
    state.remember_new_event(parts, seat_map, page.clone()).await;
    let location = format!("/events/{}", event.id);
    let headers = [(LOCATION, location), (CONTENT_TYPE, "application/json".to_owned())];
    Ok((StatusCode::CREATED, headers, page.body.clone()).into_response())
}

/// Where each part of a new event of `asked` groups starts, over `map`'s rows; `None` for an
/// event placed whole. 422 for more groups than the cluster has, or than the venue has rows.
fn part_bounds(asked: Option<u32>, groups: u32, map: &SeatMap) -> Result<Option<Vec<TicketId>>, Problem> {
    let asked = asked.unwrap_or(1);
    let most = groups.min(EVENT_PARTS_MAX);
    if asked == 0 || asked > most {
        let detail = format!("an event is spread over 1 to {most} groups (the cluster has {groups}), not {asked}");
        return Err(Problem::invalid(detail).with("maxGroups", most));
    }
    if asked == 1 {
        return Ok(None);
    }
    let rows: usize = map.sections.iter().map(|s| s.rows.len()).sum();
    let bounds = split_rows(map, asked).ok_or_else(|| {
        Problem::invalid(format!("each group sells whole rows: the venue has {rows}, fewer than {asked} groups"))
    })?;
    Ok(Some(bounds))
}

/// Gives the new event its id and its parts' groups in the placement group.
async fn place<C: Cluster>(
    state: &Shared<C>,
    groups: u32,
    bounds: Option<Vec<TicketId>>,
) -> Result<EventParts, Problem> {
    let Some(bounds) = bounds else {
        return match state.write(PLACEMENT_GROUP, Command::PlaceEvent { groups }).await? {
            Outcome::EventPlaced(placement) => Ok(EventParts::single(placement.event, placement.group)),
            other => Err(unexpected("place event", &other)),
        };
    };
    match state.write(PLACEMENT_GROUP, Command::PlaceEventParts { groups, bounds }).await? {
        Outcome::PartsPlaced(parts) => Ok(parts),
        Outcome::Rejected(reason) => Err(Problem::invalid(reason)),
        other => Err(unexpected("place event parts", &other)),
    }
}

/// Creates the event in the group of each of its parts: the others first, part 0 (its listing)
/// last, so that an event is never listed while a part of it is missing.
async fn create_parts<C: Cluster>(
    state: &Shared<C>,
    parts: &EventParts,
    event: Event,
    seat_map: &SeatMap,
) -> Result<Event, Problem> {
    let create = |part: u32| {
        let command = if parts.count() == 1 {
            Command::CreateEvent { event: event.clone(), seat_map: seat_map.clone() }
        } else {
            let tickets = parts.tickets(part);
            let (first, end) = (tickets.start, tickets.end);
            Command::CreateEventPart { event: event.clone(), seat_map: seat_map.clone(), part, first, end }
        };
        async move {
            match state.write(parts.groups[part as usize], command).await? {
                Outcome::EventCreated(event) | Outcome::EventExists(event) => Ok(event),
                Outcome::Rejected(reason) => Err(Problem::invalid(reason)),
                other => Err(unexpected("create event", &other)),
            }
        }
    };
    futures::future::try_join_all((1..parts.count()).map(create)).await?;
    create(0).await
}

/// The sections `body` prices that its venue does not have.
fn unknown_sections<'a>(body: &'a NewEvent, venue: &Venue) -> Vec<&'a String> {
    body.price_cents.keys().filter(|name| !venue.seat_map.sections.iter().any(|s| &s.name == *name)).collect()
}

/// The event `body` asks for, with id `id`, and its seat map: the venue's, priced.
fn new_event(
    body: &NewEvent,
    id: EventId,
    starts_at: u64,
    venue: &Venue,
    performers: Vec<Performer>,
    now: Millis,
) -> (Event, SeatMap) {
    let seat_map = venue.seat_map.with_prices(&body.price_cents);
    let event = Event {
        id,
        name: body.name.trim().to_owned(),
        description: body.description.trim().to_owned(),
        category: body.category.trim().to_owned(),
        starts_at,
        venue: venue.summary(),
        performers,
        ticket_count: seat_map.seat_count() as u32,
        created_at: now,
    };
    (event, seat_map)
}

/// Checks the fields of a new event that need no reads; returns its start time.
fn check_new_event(body: &NewEvent) -> Result<u64, Problem> {
    let mut errors = Vec::new();
    text_errors(&mut errors, "name", &body.name, true, CATALOG_TEXT_CHARS_MAX);
    text_errors(&mut errors, "description", &body.description, false, DESCRIPTION_CHARS_MAX);
    text_errors(&mut errors, "category", &body.category, false, CATALOG_TEXT_CHARS_MAX);
    let starts_at = parse_rfc3339(&body.starts_at);
    if starts_at.is_none() {
        errors.push(FieldError::new("startsAt", "an RFC 3339 time after 1970, e.g. `2026-12-01T20:00:00Z`"));
    }
    fields_problem(errors)?;
    Ok(starts_at.unwrap_or_default())
}

async fn venue<C: Cluster>(state: &Shared<C>, id: VenueId) -> Result<Venue, Problem> {
    match state.read(PLACEMENT_GROUP, Query::Venue(id), Consistency::Linearizable).await? {
        QueryResult::Venue(Some(venue)) => Ok(venue),
        QueryResult::Venue(None) => Err(Problem::invalid(format!("there is no venue {id}")).with("unknownVenueId", id)),
        other => Err(unexpected("venue", &other)),
    }
}

/// The performers named, each once, in the order first named; 422 naming any unknown.
async fn performers<C: Cluster>(state: &Shared<C>, ids: &[PerformerId]) -> Result<Vec<Performer>, Problem> {
    let mut distinct: Vec<PerformerId> = Vec::with_capacity(ids.len());
    for id in ids {
        if !distinct.contains(id) {
            distinct.push(*id);
        }
    }
    let (mut found, mut unknown) = (Vec::new(), Vec::new());
    for id in distinct {
        match state.read(PLACEMENT_GROUP, Query::Performer(id), Consistency::Linearizable).await? {
            QueryResult::Performer(Some(performer)) => found.push(performer),
            QueryResult::Performer(None) => unknown.push(id),
            other => return Err(unexpected("performer", &other)),
        }
    }
    if !unknown.is_empty() {
        let detail = format!("there are no performers {unknown:?}");
        return Err(Problem::invalid(detail).with("unknownPerformerIds", unknown));
    }
    Ok(found)
}

/// `GET /admin/cluster`: every node, group and replica.
#[utoipa::path(get, path = "/admin/cluster", tag = "admin", security(("admin" = [])),
    responses((status = 200, description = "Every node, group and replica", body = ClusterStatus)))]
pub async fn cluster_status<C: Cluster>(_: Admin, State(state): State<AppState<C>>) -> Json<ClusterStatus> {
    Json(state.cluster.status().await)
}

/// The group whose snapshot was requested.
#[derive(Serialize, ToSchema)]
pub struct SnapshotRequested {
    pub group: GroupId,
}

/// `POST /admin/groups/{group}/snapshot`: snapshot this node's replicas of a group now.
#[utoipa::path(post, path = "/admin/groups/{group}/snapshot", tag = "admin", security(("admin" = [])),
    params(("group" = u32, Path, description = "A raft group: 0 is placement, 1 and up inventory")),
    responses((status = 202, description = "The snapshot is under way", body = SnapshotRequested)))]
pub async fn snapshot<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    PathParams(group): PathParams<GroupId>,
) -> Result<(StatusCode, Json<SnapshotRequested>), Problem> {
    match state.cluster.snapshot(group).await {
        Ok(()) => {
            tracing::info!(group, "snapshot requested");
            Ok((StatusCode::ACCEPTED, Json(SnapshotRequested { group })))
        }
        Err(ClusterError::NoSuchGroup(_)) => Err(Problem::not_found(format!("there is no group {group}"))),
        Err(error) => Err(error.into()),
    }
}

/// Where a backup goes: a folder on the node's own disk.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupRequest {
    /// An absolute path that does not exist yet, whose parent does.
    dir: String,
}

/// `POST /admin/backup {dir}`: a backup of this node's database into `dir`, holding every write
/// acknowledged before the request.
#[utoipa::path(post, path = "/admin/backup", tag = "admin", security(("admin" = [])), request_body = BackupRequest,
    responses((status = 201, description = "The backup was written", body = model::Backup)))]
pub async fn backup<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    JsonBody(body): JsonBody<BackupRequest>,
) -> Result<(StatusCode, Json<model::Backup>), Problem> {
    let dir = std::path::PathBuf::from(&body.dir);
    if !dir.is_absolute() {
        return Err(Problem::invalid(format!("dir {:?} must be an absolute path on the node", body.dir)));
    }
    if dir.exists() {
        return Err(Problem::invalid(format!("{} exists: a backup goes into a new folder", body.dir)));
    }
    if !dir.parent().is_some_and(|parent| parent.is_dir()) {
        return Err(Problem::invalid(format!("the parent of {} is not a folder on the node", body.dir)));
    }
    match state.cluster.backup(dir).await {
        Ok(backup) => {
            tracing::info!(dir = %backup.dir, took_ms = backup.took_ms, "backup written");
            Ok((StatusCode::CREATED, Json(backup)))
        }
        Err(model::BackupError::Refused(detail)) => Err(Problem::invalid(detail)),
        Err(model::BackupError::Cluster(error)) => Err(error.into()),
        Err(model::BackupError::Failed(detail)) => {
            tracing::error!(%detail, "backup failed");
            Err(Problem::unavailable(detail))
        }
    }
}

/// `GET /admin/groups/{group}/digest`: this node's replica of a group, digested at its applied
/// index, so that replicas can be compared.
#[utoipa::path(get, path = "/admin/groups/{group}/digest", tag = "admin", security(("admin" = [])),
    params(("group" = u32, Path, description = "A raft group: 0 is placement, 1 and up inventory")),
    responses((status = 200, description = "This node's replica, digested", body = DigestView)))]
pub async fn digest<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    PathParams(group): PathParams<GroupId>,
) -> Result<Json<DigestView>, Problem> {
    match state.cluster.read(group, Query::Digest, Consistency::Stale).await {
        Ok(QueryResult::Digest { applied_index, digest }) => {
            Ok(Json(DigestView { group, node: state.cluster.node_id(), applied_index, digest }))
        }
        Ok(other) => Err(unexpected("digest", &other)),
        Err(ClusterError::NoSuchGroup(_)) => Err(Problem::not_found(format!("there is no group {group}"))),
        Err(error) => Err(error.into()),
    }
}

/// A replica's state, digested at its applied index.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DigestView {
    pub group: GroupId,
    pub node: model::NodeId,
    pub applied_index: Option<u64>,
    pub digest: String,
}

/// A ticket row: held (until `untilMs`) or sold.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketRecord {
    pub id: model::TicketId,
    /// `held` or `sold`.
    pub state: &'static str,
    pub booking: String,
    pub until_ms: Option<Millis>,
}

/// Every ticket row and booking of an event.
#[derive(Serialize, ToSchema)]
pub struct EventStateView {
    pub event: EventId,
    /// The group of each of the event's parts, part 0 first (one for most events).
    pub groups: Vec<GroupId>,
    pub tickets: Vec<TicketRecord>,
    pub bookings: Vec<BookingRecord>,
}

/// `GET /admin/events/{eventId}/state`: every ticket row and booking of an event, read from the
/// leader of each of its groups, times in the groups' milliseconds.
#[utoipa::path(get, path = "/admin/events/{eventId}/state", tag = "admin", security(("admin" = [])),
    params(("eventId" = u64, Path, description = "The event")),
    responses((status = 200, description = "Every ticket row and booking", body = EventStateView)))]
pub async fn event_state<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    PathParams(event): PathParams<model::EventId>,
) -> Result<Json<EventStateView>, Problem> {
    let groups = state.parts_of(event).await?.groups.clone();
    let (mut tickets, mut bookings) = (Vec::new(), Vec::new());
    for answer in state.read_parts(event, Query::EventState(event), Consistency::Linearizable).await? {
        match answer {
            QueryResult::EventState { tickets: part_tickets, bookings: part_bookings } => {
                tickets.extend(part_tickets);
                bookings.extend(part_bookings);
            }
            other => return Err(unexpected("event state", &other)),
        }
    }
    let now = state.now();
    let tickets = tickets
        .iter()
        .map(|(id, ticket)| match ticket {
            model::TicketState::Held { booking, until } => {
                TicketRecord { id: *id, state: "held", booking: booking.to_string(), until_ms: Some(*until) }
            }
            model::TicketState::Sold { booking } => {
                TicketRecord { id: *id, state: "sold", booking: booking.to_string(), until_ms: None }
            }
        })
        .collect();
    let bookings = bookings.iter().map(|b| BookingRecord::new(b, now)).collect();
    Ok(Json(EventStateView { event, groups, tickets, bookings }))
}

/// `PUT /admin/faults`: inject faults into this node. Only when `fault_injection_enabled`.
#[utoipa::path(put, path = "/admin/faults", tag = "admin", security(("admin" = [])), request_body = model::Faults,
    responses((status = 204, description = "The faults are in effect on this node"),
        (status = 404, description = "Fault injection is not enabled on this node", body = crate::problem::ProblemBody,
            content_type = "application/problem+json")))]
pub async fn inject_faults<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    JsonBody(faults): JsonBody<model::Faults>,
) -> Result<StatusCode, Problem> {
    if !state.config.fault_injection_enabled {
        return Err(Problem::not_found("fault injection is not enabled on this node"));
    }
    state.cluster.inject_faults(faults);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkEvents {
    events: Vec<NewEvent>,
}

/// `POST /admin/events/bulk {events: [...]}`: a bulk import of up to `BULK_EVENTS_MAX` events
/// (the catalog generator uses it): placed at once, then created with one command per group.
#[utoipa::path(post, path = "/admin/events/bulk", tag = "admin", security(("admin" = [])), request_body = BulkEvents,
    responses((status = 201, description = "The events created, and their ids in the order given", body = BulkCreated)))]
pub async fn create_events<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    JsonBody(body): JsonBody<BulkEvents>,
) -> Result<(StatusCode, Json<BulkCreated>), Problem> {
    let count = body.events.len();
    if count == 0 || count > model::BULK_EVENTS_MAX as usize {
        return Err(Problem::invalid(format!("a bulk import has 1 to {} events", model::BULK_EVENTS_MAX)));
    }
    let mut starts = Vec::with_capacity(count);
    for event in &body.events {
        starts.push(check_new_event(event)?);
    }
    // Venues and performers are read once each, however many events name them.
    let mut venues: BTreeMap<VenueId, Venue> = BTreeMap::new();
    let mut known: BTreeMap<PerformerId, Performer> = BTreeMap::new();
    for event in &body.events {
        if let std::collections::btree_map::Entry::Vacant(slot) = venues.entry(event.venue_id) {
            slot.insert(existing_venue(&state, event.venue_id).await?);
        }
        for &id in &event.performer_ids {
            if let std::collections::btree_map::Entry::Vacant(slot) = known.entry(id) {
                slot.insert(existing_performer(&state, id).await?);
            }
        }
    }
    let seats: usize = body.events.iter().map(|event| venues[&event.venue_id].seat_map.seat_count()).sum();
    if seats > model::BULK_SEATS_MAX {
        let detail = format!(
            "a bulk import copies at most {} seats over all its events, this one {seats}: split it",
            model::BULK_SEATS_MAX
        );
        return Err(Problem::invalid(detail).with("seats", seats));
    }
    for (n, event) in body.events.iter().enumerate() {
        if event.groups.is_some_and(|groups| groups != 1) {
            let detail = format!("event {n}: a bulk import places each event in one group; create it alone");
            return Err(Problem::invalid(detail).with("eventIndex", n));
        }
        let unknown = unknown_sections(event, &venues[&event.venue_id]);
        if !unknown.is_empty() {
            let detail = format!("event {n}: the venue has no sections named {unknown:?}");
            return Err(Problem::invalid(detail).with("unknownSections", unknown).with("eventIndex", n));
        }
    }
    let groups = state.cluster.inventory_groups();
    let placements = match state.write(PLACEMENT_GROUP, Command::PlaceEvents { groups, count: count as u32 }).await? {
        Outcome::EventsPlaced(placements) => placements,
        Outcome::Rejected(reason) => return Err(Problem::invalid(reason)),
        other => return Err(unexpected("place events", &other)),
    };
    let now = state.now();
    let mut by_group: BTreeMap<GroupId, Vec<(Event, SeatMap)>> = BTreeMap::new();
    for ((body, starts_at), placement) in body.events.iter().zip(starts).zip(&placements) {
        let performers = body.performer_ids.iter().filter_map(|p| known.get(p).cloned()).collect();
        let made = new_event(body, placement.event, starts_at, &venues[&body.venue_id], performers, now);
        by_group.entry(placement.group).or_default().push(made);
    }
    let mut created = 0;
    for (group, events) in by_group {
        match state.write(group, Command::CreateEvents { events }).await? {
            Outcome::EventsCreated(n) => created += n,
            Outcome::Rejected(reason) => return Err(Problem::invalid(reason)),
            other => return Err(unexpected("create events", &other)),
        }
    }
    state.caches.searches.invalidate_all();
    let ids: Vec<u64> = placements.iter().map(|p| p.event).collect();
    tracing::info!(created, "events imported");
    Ok((StatusCode::CREATED, Json(BulkCreated { created, ids })))
}

/// A bulk import's outcome.
#[derive(Serialize, ToSchema)]
pub struct BulkCreated {
    /// How many events the groups created.
    pub created: u32,
    pub ids: Vec<EventId>,
}

/// A venue for a bulk import: from this node's replica when it has it (venues never change), from
/// the leader otherwise.
async fn existing_venue<C: Cluster>(state: &Shared<C>, id: VenueId) -> Result<Venue, Problem> {
    if let QueryResult::Venue(Some(venue)) = state.read(PLACEMENT_GROUP, Query::Venue(id), Consistency::Stale).await? {
        return Ok(venue);
    }
    venue(state, id).await
}

async fn existing_performer<C: Cluster>(state: &Shared<C>, id: PerformerId) -> Result<Performer, Problem> {
    if let QueryResult::Performer(Some(p)) =
        state.read(PLACEMENT_GROUP, Query::Performer(id), Consistency::Stale).await?
    {
        return Ok(p);
    }
    performers(state, &[id]).await?.pop().ok_or_else(|| Problem::invalid(format!("there is no performer {id}")))
}

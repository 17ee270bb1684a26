//! `GET /me/bookings`: a fan's bookings across every event, newest first.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use model::{Booking, Consistency, EventId, Query, QueryResult};
use serde::Serialize;
use tokio::task::JoinSet;
use utoipa::ToSchema;

use crate::auth::Fan;
use crate::cluster::Cluster;
use crate::problem::Problem;
use crate::state::{unexpected, AppState};
use crate::views::{rfc3339, BookingView};

/// Most bookings the list shows.
pub const MY_BOOKINGS_MAX: usize = 500;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyBooking {
    #[serde(flatten)]
    pub booking: BookingView,
    pub event: MyEvent,
}

#[derive(Serialize, Clone, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyEvent {
    pub id: EventId,
    pub name: String,
    pub starts_at: String,
    pub venue: String,
    pub city: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyBookings {
    pub bookings: Vec<MyBooking>,
}

#[utoipa::path(get, path = "/me/bookings", tag = "bookings", security(("fan" = [])),
    responses((status = 200, description = "The fan's bookings, newest first", body = MyBookings)))]
pub async fn my_bookings<C: Cluster>(
    Fan(user): Fan,
    State(state): State<AppState<C>>,
) -> Result<Json<MyBookings>, Problem> {
    // A fan's bookings live in the groups of their events: ask them all at once, from their
    // leaders, so that a booking just made is in the list.
    let mut tasks = JoinSet::new();
    for group in 1..=state.cluster.inventory_groups() {
        let cluster = state.cluster.clone();
        tasks.spawn(
            async move { (group, cluster.read(group, Query::FanBookings(user), Consistency::Linearizable).await) },
        );
    }
    let mut found: Vec<(u32, Booking)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (group, result) = joined.map_err(|_| Problem::internal())?;
        match result? {
            QueryResult::Bookings(bookings) => found.extend(bookings.into_iter().map(|b| (group, b))),
            other => return Err(unexpected("fan bookings", &other)),
        }
    }
    found.sort_by_key(|(_, b)| std::cmp::Reverse((b.created_at, b.id)));
    found.truncate(MY_BOOKINGS_MAX);
    let now = state.now();
    let mut events: HashMap<EventId, MyEvent> = HashMap::new();
    let mut bookings = Vec::with_capacity(found.len());
    for (group, booking) in found {
        let event = match events.get(&booking.event) {
            Some(event) => event.clone(),
            None => {
                let event = state.event(booking.event, group).await?;
                let summary = MyEvent {
                    id: event.id,
                    name: event.name,
                    starts_at: rfc3339(event.starts_at),
                    venue: event.venue.name,
                    city: event.venue.city,
                };
                events.insert(booking.event, summary.clone());
                summary
            }
        };
        let map = state.seat_map(booking.event, group).await?;
        bookings.push(MyBooking { booking: BookingView::new(&booking, &map, now), event });
    }
    Ok(Json(MyBookings { bookings }))
}

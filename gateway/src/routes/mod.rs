//! The routes, one module per area, and the router that ties them together.
//!
//! Answers are compressed (gzip or brotli) when the client accepts it. Public routes accept bodies up to `body_bytes_max`, admin routes up to `admin_body_bytes_max`.
//! Sign-ups, sign-ins, holds and payments are rate limited per client address and per fan
//! ([`crate::limits`]).
//! Unknown paths and wrong methods answer with problems too, and every response is counted,
//! including those of the extra routes the node merges in (the waiting room's HTTP endpoints).

pub mod admin;
pub mod bookings;
pub mod events;
pub mod limited;
pub mod me;
pub mod room;
pub mod search;
pub mod seats;
pub mod users;
pub mod web;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use axum::Router;
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::cluster::Cluster;
use crate::limits::Action;
use crate::state::AppState;
use crate::{headers, metrics, problem};

/// The gateway's routes with `extra` merged in (routes of their own state, without a fallback:
/// the gateway's answers for unknown routes and wrong methods cover them too).
pub fn build<C: Cluster>(state: AppState<C>, extra: Router) -> Router {
    // Rate limits per client address and per fan, checked before the body is read (`limits`).
    let limited = |action| from_fn_with_state((state.clone(), action), limited::limit::<C>);
    let public = Router::new()
        .route("/", get(web::index))
        .route("/app/{file}", get(web::asset))
        .route("/healthz", get(web::healthz::<C>))
        .route("/metrics", get(web::metrics::<C>))
        .route("/users", post(users::create_user::<C>).route_layer(limited(Action::SignUp)))
        .route("/sessions", post(users::create_session::<C>).route_layer(limited(Action::SignIn)))
        .route("/events", get(events::list::<C>))
        .route("/events/search", get(search::search::<C>))
        .route("/events/{eventId}", get(events::get_event::<C>))
        .route("/events/{eventId}/tickets", get(events::tickets::<C>))
        .route("/events/{eventId}/layout", get(seats::layout::<C>))
        .route("/events/{eventId}/seats", get(seats::snapshot::<C>))
        .route("/events/{eventId}/seats/stream", get(seats::stream::<C>))
        .route("/events/{eventId}/waiting-room", get(room::public_room::<C>))
        .route("/events/{eventId}/bookings", post(bookings::create::<C>).route_layer(limited(Action::Hold)))
        .route("/bookings/{bookingId}", get(bookings::get_booking::<C>).delete(bookings::release::<C>))
        .route("/bookings/{bookingId}/payment", post(bookings::pay::<C>).route_layer(limited(Action::Payment)))
        .route("/me/bookings", get(me::my_bookings::<C>))
        .route("/webhooks/payments", post(webhooks::payment_event::<C>))
        .layer(DefaultBodyLimit::max(state.config.body_bytes_max));
    let admin = Router::new()
        .route("/admin/venues", post(admin::create_venue::<C>))
        .route("/admin/performers", post(admin::create_performer::<C>))
        .route("/admin/events", post(admin::create_event::<C>))
        .route("/admin/events/bulk", post(admin::create_events::<C>))
        .route("/admin/cluster", get(admin::cluster_status::<C>))
        .route("/admin/groups/{group}/snapshot", post(admin::snapshot::<C>))
        .route("/admin/backup", post(admin::backup::<C>))
        .route("/admin/groups/{group}/digest", get(admin::digest::<C>))
        .route("/admin/events/{eventId}/state", get(admin::event_state::<C>))
        .route("/admin/events/{eventId}/waiting-room", get(room::get_room::<C>).put(room::configure::<C>))
        .route("/admin/faults", put(admin::inject_faults::<C>))
        .layer(DefaultBodyLimit::max(state.config.admin_body_bytes_max));
    let counters = state.metrics.clone();
    public
        .merge(admin)
        .with_state(state)
        .merge(extra)
        .fallback(problem::no_route)
        // After every route is added: it only reaches the routes that exist when it is called.
        .method_not_allowed_fallback(problem::wrong_method)
        .layer(from_fn_with_state(counters, metrics::track))
        .layer(axum::middleware::from_fn(headers::secure))
        // Outermost but for the counters' view of statuses: every large answer (the layout, the
        // tickets list, pages) is compressed as the client accepts; event streams are not (the
        // predicate leaves `text/event-stream` alone, so that each event leaves at once).
        .layer(CompressionLayer::new().quality(CompressionLevel::Precise(COMPRESSION_LEVEL)))
}

/// Compression effort (gzip 1-9, brotli 0-11): brotli 5 packs a stadium's layout within a few
/// percent of its best at a fraction of the time, and answers are compressed per request.
const COMPRESSION_LEVEL: i32 = 5;

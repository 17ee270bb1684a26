//! An event's waiting room as the gateway serves it: operators configure and watch it
//! (`/admin/events/{eventId}/waiting-room`), and fans learn where to join it
//! (`/events/{eventId}/waiting-room`). Joining, places and positions are the room's own
//! endpoints, merged into the router by the node.

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use axum::Json;
use model::room::{Place, RoomReport, RoomSettings, RoomState};
use model::{Command, EventId, Millis, NodeId, Outcome};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::cluster::Cluster;
use crate::extract::{JsonBody, PathParams};
use crate::problem::Problem;
use crate::state::{no_event, unexpected, AppState};
use crate::validate::FieldError;
use crate::views::{parse_rfc3339, rfc3339};

/// A node's report counts (and the node is offered to fans) while it is younger than this.
pub const REPORT_SHOWN_MS: Millis = 5_000;

/// How long a CDN or browser may reuse the public view of a room.
const ROOM_CACHE_CONTROL: &str = "public, max-age=1";

/// The settings of a new room, before the operator's changes.
pub fn default_settings(now: Millis) -> RoomSettings {
    RoomSettings {
        enabled: true,
        on_sale_at: now,
        rate_per_min: 600,
        shopping_max: 1_000,
        admission_ms: 600_000,
        pow_bits: 16,
        paused: false,
        abandon_ms: 60_000,
    }
}

/// A change to a room's settings: what is named changes, the rest stays (or takes its default
/// for a new room).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoomUpdate {
    enabled: Option<bool>,
    /// RFC 3339.
    on_sale_at: Option<String>,
    rate_per_minute: Option<u32>,
    shopping_max: Option<u32>,
    admission_ms: Option<u64>,
    pow_bits: Option<u8>,
    paused: Option<bool>,
    abandon_ms: Option<u64>,
}

impl RoomUpdate {
    /// `base` with this update's changes, checked.
    pub fn over(self, base: RoomSettings) -> Result<RoomSettings, Problem> {
        let on_sale_at = match self.on_sale_at.as_deref() {
            None => base.on_sale_at,
            Some(text) => parse_rfc3339(text).ok_or_else(|| {
                let message = "an RFC 3339 time after 1970, e.g. `2026-12-01T20:00:00Z`";
                Problem::invalid(format!("onSaleAt is {message}"))
                    .with("errors", [FieldError::new("onSaleAt", message)])
            })?,
        };
        let settings = RoomSettings {
            enabled: self.enabled.unwrap_or(base.enabled),
            on_sale_at,
            rate_per_min: self.rate_per_minute.unwrap_or(base.rate_per_min),
            shopping_max: self.shopping_max.unwrap_or(base.shopping_max),
            admission_ms: self.admission_ms.unwrap_or(base.admission_ms),
            pow_bits: self.pow_bits.unwrap_or(base.pow_bits),
            paused: self.paused.unwrap_or(base.paused),
            abandon_ms: self.abandon_ms.unwrap_or(base.abandon_ms),
        };
        match settings.problem() {
            Some(problem) => Err(Problem::invalid(problem)),
            None => Ok(settings),
        }
    }
}

/// A room's settings as the API writes them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    pub enabled: bool,
    pub on_sale_at: String,
    pub rate_per_minute: u32,
    pub shopping_max: u32,
    pub admission_ms: u64,
    pub pow_bits: u8,
    pub paused: bool,
    pub abandon_ms: u64,
}

impl From<&RoomSettings> for SettingsView {
    fn from(s: &RoomSettings) -> Self {
        SettingsView {
            enabled: s.enabled,
            on_sale_at: rfc3339(s.on_sale_at),
            rate_per_minute: s.rate_per_min,
            shopping_max: s.shopping_max,
            admission_ms: s.admission_ms,
            pow_bits: s.pow_bits,
            paused: s.paused,
            abandon_ms: s.abandon_ms,
        }
    }
}

/// How many fans are where: waiting and connected by the fresh reports, the rest by the
/// group's counters.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomCounts {
    pub waiting: u64,
    pub connected: u64,
    pub admitted: u64,
    pub shopping: u64,
    pub done: u64,
    pub abandoned: u64,
    pub late: u64,
}

/// A node's last report, as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeReportView {
    pub node: NodeId,
    pub endpoint: String,
    pub cert_sha256: String,
    pub live: u64,
    pub connected: u64,
    pub report_age_ms: u64,
    pub uncertainty_ms: u64,
}

/// A room as operators watch it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    pub event: EventId,
    pub settings: SettingsView,
    pub step: u64,
    pub watermark: Option<Place>,
    pub counts: RoomCounts,
    pub rate_achieved_per_minute: Option<f64>,
    /// How old the freshest report is: the waiting counts are at least this old.
    pub counts_age_ms: Option<u64>,
    /// Published before the on-sale, so that fans can check afterwards that the pre-sale draw
    /// used the key revealed at the on-sale.
    pub draw_key_sha256: String,
    /// Only from the on-sale: before, it would let anyone compute the pre-sale order.
    pub draw_key: Option<String>,
    pub nodes: Vec<NodeReportView>,
}

/// The reports of `room` younger than [`REPORT_SHOWN_MS`] at `now`.
fn fresh_reports(room: &RoomState, now: Millis) -> impl Iterator<Item = &(NodeId, Millis, RoomReport)> {
    room.reports.iter().filter(move |(_, stamp, _)| now.saturating_sub(*stamp) < REPORT_SHOWN_MS)
}

impl RoomView {
    pub fn new(room: &RoomState, now: Millis) -> Self {
        let fresh = || fresh_reports(room, now).map(|(_, _, report)| report);
        let counts = RoomCounts {
            waiting: fresh().map(|r| r.live).sum(),
            connected: fresh().map(|r| r.connected).sum(),
            admitted: room.admitted_total,
            // At the group's time at least: a node whose clock is behind would count admissions
            // whose shopping the group has ended, and show more fans shopping than the maximum.
            shopping: room.shopping(now.max(room.last_tick_at)),
            done: room.done_total,
            abandoned: room.abandoned_total,
            late: room.late_total,
        };
        let freshest = room.reports.iter().map(|(_, stamp, _)| *stamp).max();
        let nodes = room
            .reports
            .iter()
            .map(|(node, stamp, report)| NodeReportView {
                node: *node,
                endpoint: report.endpoint.clone(),
                cert_sha256: report.cert_sha256.clone(),
                live: report.live,
                connected: report.connected,
                report_age_ms: now.saturating_sub(*stamp),
                uncertainty_ms: report.uncertainty_ms,
            })
            .collect();
        RoomView {
            event: room.event,
            settings: SettingsView::from(&room.settings),
            step: room.step,
            watermark: room.watermark,
            counts,
            rate_achieved_per_minute: room.rate_achieved_per_min(now),
            counts_age_ms: freshest.map(|stamp| now.saturating_sub(stamp)),
            draw_key_sha256: hex::encode(Sha256::digest(room.draw_key)),
            draw_key: (now >= room.settings.on_sale_at).then(|| hex::encode(room.draw_key)),
            nodes,
        }
    }
}

/// A node fans may join the room at.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomNodeView {
    pub node: NodeId,
    /// `host:port` of its QUIC endpoint.
    pub endpoint: String,
    /// The SHA-256 of its certificate, hex, for browsers to pin.
    pub cert_sha256: String,
    /// The WebTransport URL of its room.
    pub webtransport: String,
}

/// The HTTP fallback's endpoints, for fans without QUIC.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RoomHttpView {
    pub hello: String,
    pub join: String,
    pub stream: String,
}

/// What a fan needs to join a room.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicRoomView {
    pub event: EventId,
    pub enabled: bool,
    pub on_sale_at: String,
    pub paused: bool,
    pub pow_bits: u8,
    /// Only the nodes that reported lately: the others may be gone.
    pub nodes: Vec<RoomNodeView>,
    pub http: RoomHttpView,
}

impl PublicRoomView {
    pub fn new(room: &RoomState, now: Millis) -> Self {
        let nodes = fresh_reports(room, now)
            .map(|(node, _, report)| RoomNodeView {
                node: *node,
                endpoint: report.endpoint.clone(),
                cert_sha256: report.cert_sha256.clone(),
                webtransport: format!("https://{}/room", report.endpoint),
            })
            .collect();
        let base = format!("/events/{}/waiting-room", room.event);
        PublicRoomView {
            event: room.event,
            enabled: room.settings.enabled,
            on_sale_at: rfc3339(room.settings.on_sale_at),
            paused: room.settings.paused,
            pow_bits: room.settings.pow_bits,
            nodes,
            http: RoomHttpView {
                hello: format!("{base}/hello"),
                join: format!("{base}/join"),
                stream: format!("{base}/stream"),
            },
        }
    }
}

fn no_room(event: EventId) -> Problem {
    Problem::not_found(format!("event {event} has no waiting room"))
}

/// `PUT /admin/events/{eventId}/waiting-room`: create or change an event's room. Apply keeps the
/// first draw key, and the on-sale time once the on-sale has passed.
#[utoipa::path(put, path = "/admin/events/{eventId}/waiting-room", tag = "admin", security(("admin" = [])),
    params(("eventId" = u64, Path, description = "The event")), request_body = RoomUpdate,
    responses((status = 200, description = "The room, configured", body = RoomView)))]
pub async fn configure<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    PathParams(event): PathParams<EventId>,
    JsonBody(update): JsonBody<RoomUpdate>,
) -> Result<Json<RoomView>, Problem> {
    let parts = state.parts_of(event).await?;
    let group = parts.home();
    let current = state.room_now(event, group).await?;
    let base = current.map_or_else(|| default_settings(state.now()), |room| room.settings);
    let settings = update.over(base)?;
    let draw_key: [u8; 16] = rand::random();
    // The other groups of an event in parts first: each refuses holds without an admission once
    // it has the settings, so when the event's own group opens the line, every group is closed.
    for &other in &parts.groups[1..] {
        let command = Command::RoomConfigure { event, settings: settings.clone(), draw_key };
        match state.write(other, command).await? {
            Outcome::RoomConfigured(_) => {}
            Outcome::Rejected(reason) => return Err(Problem::invalid(reason)),
            other => return Err(unexpected("room configure", &other)),
        }
    }
    match state.write(group, Command::RoomConfigure { event, settings, draw_key }).await? {
        Outcome::RoomConfigured(room) => {
            tracing::info!(event, enabled = room.settings.enabled, paused = room.settings.paused, "room configured");
            let view = RoomView::new(&room, state.now());
            state.remember_room(event, Some(room)).await;
            Ok(Json(view))
        }
        Outcome::NoSuchEvent => Err(no_event(event)),
        Outcome::Rejected(reason) => Err(Problem::invalid(reason)),
        other => Err(unexpected("room configure", &other)),
    }
}

/// `GET /admin/events/{eventId}/waiting-room`: the room as its group's leader has it.
#[utoipa::path(get, path = "/admin/events/{eventId}/waiting-room", tag = "admin", security(("admin" = [])),
    params(("eventId" = u64, Path, description = "The event")), responses((status = 200, description = "The room and its counts", body = RoomView)))]
pub async fn get_room<C: Cluster>(
    _: Admin,
    State(state): State<AppState<C>>,
    PathParams(event): PathParams<EventId>,
) -> Result<Json<RoomView>, Problem> {
    let group = state.group_of(event).await?;
    let room = state.room_now(event, group).await?.ok_or_else(|| no_room(event))?;
    Ok(Json(RoomView::new(&room, state.now())))
}

/// `GET /events/{eventId}/waiting-room`: where a fan joins the room (a second stale at most).
#[utoipa::path(get, path = "/events/{eventId}/waiting-room", tag = "waiting room", params(("eventId" = u64, Path, description = "The event")),
    responses((status = 200, description = "Where and how to join the room", body = PublicRoomView)))]
pub async fn public_room<C: Cluster>(
    State(state): State<AppState<C>>,
    PathParams(event): PathParams<EventId>,
) -> Result<Response, Problem> {
    let group = state.group_of(event).await?;
    let room = state.room(event, group).await?.ok_or_else(|| no_room(event))?;
    let view = PublicRoomView::new(&room, state.now());
    Ok(([(CACHE_CONTROL, ROOM_CACHE_CONTROL)], Json(view)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use model::room::{Pass, CLASS_ONSALE};

    const NOW: Millis = 1_800_000_000_000;

    fn update(json: &str) -> Result<RoomUpdate, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn report(live: u64, connected: u64, endpoint: &str) -> RoomReport {
        let place = Place::onsale_floor(NOW);
        RoomReport {
            boot: 1,
            seq: 1,
            clock_ms: NOW,
            live,
            connected,
            complete_to: place,
            front: vec![place],
            quantiles: vec![],
            abandoned: 0,
            endpoint: endpoint.into(),
            cert_sha256: "ab".into(),
            uncertainty_ms: 3,
        }
    }

    fn room() -> RoomState {
        let watermark = Place { class: CLASS_ONSALE, primary: NOW - 10_000, node: 1, seq: 2 };
        RoomState {
            event: 42,
            settings: RoomSettings { on_sale_at: NOW, ..default_settings(NOW) },
            draw_key: [7; 16],
            step: 12,
            watermark: Some(watermark),
            segment_since: NOW - 60_000,
            segment_admitted: 5,
            admitted_total: 5,
            late_total: 1,
            done_total: 2,
            abandoned_total: 3,
            ends: vec![],
            passes: vec![Pass { at: NOW - 20_000, watermark, admitted_total: 5 }],
            reports: vec![
                (1, NOW - 1_000, report(10, 8, "10.0.0.1:4433")),
                (2, NOW - 4_999, report(20, 15, "10.0.0.2:4433")),
                (3, NOW - 5_000, report(40, 40, "10.0.0.3:4433")),
            ],
            used: vec![],
            last_tick_at: NOW - 1_000,
            late: vec![],
        }
    }

    #[test]
    fn a_new_room_takes_the_defaults_under_the_changes() {
        let settings = update(r#"{"ratePerMinute": 60, "onSaleAt": "2027-01-15T10:00:00+01:00"}"#)
            .unwrap()
            .over(default_settings(NOW))
            .unwrap();
        assert_eq!(settings.rate_per_min, 60);
        assert_eq!(rfc3339(settings.on_sale_at), "2027-01-15T09:00:00.000Z");
        assert_eq!(
            settings,
            RoomSettings { rate_per_min: 60, on_sale_at: settings.on_sale_at, ..default_settings(NOW) }
        );
        assert_eq!(default_settings(NOW).problem(), None, "the defaults are valid");
    }

    #[test]
    fn an_update_keeps_what_it_does_not_name() {
        let base = RoomSettings { paused: true, pow_bits: 20, ..default_settings(NOW) };
        let settings = update(r#"{"paused": false}"#).unwrap().over(base.clone()).unwrap();
        assert_eq!(settings, RoomSettings { paused: false, ..base });
    }

    #[test]
    fn bad_settings_are_refused() {
        let problem = update(r#"{"ratePerMinute": 0}"#).unwrap().over(default_settings(NOW)).unwrap_err();
        assert_eq!(problem.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(problem.detail().contains("ratePerMinute"), "{}", problem.detail());
        let problem = update(r#"{"onSaleAt": "soon"}"#).unwrap().over(default_settings(NOW)).unwrap_err();
        assert_eq!(problem.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem.extension("errors").unwrap()[0]["field"], "onSaleAt");
        assert!(update(r#"{"rate": 5}"#).is_err(), "unknown fields are refused");
        assert!(update(r#"{"powBits": 300}"#).is_err());
    }

    #[test]
    fn the_admin_view_counts_fresh_reports_only() {
        let json = serde_json::to_value(RoomView::new(&room(), NOW)).unwrap();
        assert_eq!(json["counts"]["waiting"], 30);
        assert_eq!(json["counts"]["connected"], 23);
        assert_eq!(json["counts"]["admitted"], 5);
        assert_eq!(json["counts"]["late"], 1);
        assert_eq!(json["countsAgeMs"], 1_000);
        assert_eq!(json["step"], 12);
        assert_eq!(json["watermark"]["seq"], 2);
        assert_eq!(json["settings"]["ratePerMinute"], 600);
        assert_eq!(json["settings"]["onSaleAt"], rfc3339(NOW));
        assert_eq!(json["nodes"].as_array().unwrap().len(), 3, "operators see every report");
        assert_eq!(json["nodes"][2]["reportAgeMs"], 5_000);
        assert_eq!(json["nodes"][0]["certSha256"], "ab");
        assert!(json["rateAchievedPerMinute"].is_number());
    }

    #[test]
    fn the_draw_key_is_revealed_at_the_on_sale_and_committed_before() {
        let before = RoomView::new(&room(), NOW - 1);
        assert_eq!(before.draw_key, None);
        assert_eq!(before.draw_key_sha256, hex::encode(Sha256::digest([7u8; 16])));
        let at = RoomView::new(&room(), NOW);
        assert_eq!(at.draw_key.as_deref(), Some("07070707070707070707070707070707"));
        let empty = RoomState { reports: vec![], ..room() };
        assert_eq!(RoomView::new(&empty, NOW).counts_age_ms, None);
    }

    #[test]
    fn the_public_view_offers_fresh_nodes_and_the_http_fallback() {
        let json = serde_json::to_value(PublicRoomView::new(&room(), NOW)).unwrap();
        let nodes = json["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0]["webtransport"], "https://10.0.0.1:4433/room");
        assert_eq!(nodes[1]["certSha256"], "ab");
        assert_eq!(json["http"]["join"], "/events/42/waiting-room/join");
        assert_eq!(json["http"]["hello"], "/events/42/waiting-room/hello");
        assert_eq!(json["http"]["stream"], "/events/42/waiting-room/stream");
        assert_eq!(json["powBits"], 16);
        assert_eq!(json["enabled"], true);
        assert_eq!(json["onSaleAt"], rfc3339(NOW));
    }
}

//! The JSON shapes the API answers with (camelCase), built from the domain records, and the one
//! time format of the API: RFC 3339 in UTC with milliseconds.

use chrono::{DateTime, SecondsFormat, Utc};
use model::{
    Booking, BookingState, BookingStatus, Event, EventId, EventParts, Millis, Performer, SeatMap, SeatRef, TicketId,
    TicketState, TicketStatus, UserId, VenueSummary,
};
use serde::Serialize;
use utoipa::ToSchema;

/// `2026-12-01T20:00:00.000Z`. Times beyond what a calendar can show read as its last instant
/// rather than failing: they can only come from absurd settings, never from a client.
pub fn rfc3339(at: Millis) -> String {
    let time = i64::try_from(at).ok().and_then(DateTime::<Utc>::from_timestamp_millis);
    time.unwrap_or(DateTime::<Utc>::MAX_UTC).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Milliseconds since the epoch of an RFC 3339 time with any offset; `None` if it is not one or
/// it is before 1970.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let time = DateTime::parse_from_rfc3339(text.trim()).ok()?;
    u64::try_from(time.timestamp_millis()).ok()
}

/// An event in a list: everything but its seats.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSummary {
    pub id: EventId,
    pub name: String,
    pub description: String,
    pub category: String,
    pub starts_at: String,
    pub venue: VenueSummary,
    pub performers: Vec<Performer>,
    pub ticket_count: u32,
}

impl From<&Event> for EventSummary {
    fn from(event: &Event) -> Self {
        EventSummary {
            id: event.id,
            name: event.name.clone(),
            description: event.description.clone(),
            category: event.category.clone(),
            starts_at: rfc3339(event.starts_at),
            venue: event.venue.clone(),
            performers: event.performers.clone(),
            ticket_count: event.ticket_count,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    pub events: Vec<EventSummary>,
    pub page: u32,
    pub page_size: u32,
    pub has_more: bool,
}

/// One section of an event's map, without its seats.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SectionSummary {
    pub name: String,
    pub price_cents: u64,
    pub seats: u32,
}

/// An event's page: the summary and its sections.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    #[serde(flatten)]
    pub summary: EventSummary,
    pub sections: Vec<SectionSummary>,
    /// The runs of tickets (`[first, end)`) that each of the event's groups sells: one hold
    /// takes tickets of one run. One run of every ticket for most events.
    #[schema(value_type = Vec<[u32; 2]>)]
    pub ticket_groups: Vec<[TicketId; 2]>,
}

impl EventView {
    pub fn new(event: &Event, map: &SeatMap, parts: &EventParts) -> Self {
        let tickets = event.ticket_count;
        let ticket_groups =
            (0..parts.count()).map(|part| parts.tickets(part)).map(|run| [run.start, run.end.min(tickets)]).collect();
        let sections = map
            .sections
            .iter()
            .map(|s| SectionSummary {
                name: s.name.clone(),
                price_cents: s.price_cents,
                seats: s.rows.iter().map(|r| r.seats.len() as u32).sum(),
            })
            .collect();
        EventView { summary: EventSummary::from(event), sections, ticket_groups }
    }
}

/// Every ticket of an event with where it is and how it reads now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketsView<'a> {
    pub event_id: EventId,
    pub tickets: Vec<TicketView<'a>>,
    pub available_count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketView<'a> {
    pub id: TicketId,
    pub section: &'a str,
    pub row: &'a str,
    pub seat: &'a str,
    pub x: f32,
    pub y: f32,
    pub price_cents: u64,
    pub status: TicketStatus,
}

impl<'a> TicketsView<'a> {
    /// `rows` are the tickets that have a state (the others are available).
    pub fn new(event: EventId, map: &'a SeatMap, rows: &[(TicketId, TicketState)], now: Millis) -> Self {
        let mut states: Vec<Option<&TicketState>> = vec![None; map.seat_count()];
        for (ticket, state) in rows {
            if let Some(slot) = states.get_mut(*ticket as usize) {
                *slot = Some(state);
            }
        }
        let tickets: Vec<_> = map
            .seats()
            .map(|s| TicketView {
                status: TicketStatus::of(states.get(s.ticket as usize).copied().flatten(), now),
                ..ticket_view(&s)
            })
            .collect();
        let available_count = tickets.iter().filter(|t| t.status == TicketStatus::Available).count();
        TicketsView { event_id: event, tickets, available_count }
    }
}

fn ticket_view<'a>(seat: &SeatRef<'a>) -> TicketView<'a> {
    TicketView {
        id: seat.ticket,
        section: &seat.section.name,
        row: &seat.row.name,
        seat: &seat.seat.number,
        x: seat.seat.x,
        y: seat.seat.y,
        price_cents: seat.section.price_cents,
        status: TicketStatus::Available,
    }
}

/// A booking as its fan sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingView {
    pub booking_id: String,
    pub event_id: EventId,
    pub status: BookingStatus,
    /// When the hold ends (or ended): only for held and expired bookings.
    pub expires_at: Option<String>,
    pub tickets: Vec<BookedTicket>,
    pub total_cents: u64,
    /// When the hold began.
    pub created_at: String,
    /// When the hold ends or ended, whatever became of the booking.
    pub held_until: String,
    pub confirmed_at: Option<String>,
    pub released_at: Option<String>,
    /// The payment waiting, captured or refunded, if any.
    pub payment_id: Option<String>,
    /// Where the fan pays, while a payment waits (set by the payment route).
    pub checkout_url: Option<String>,
    /// Why the last payment failed, while the booking stays payable.
    pub last_payment_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookedTicket {
    pub id: TicketId,
    pub section: String,
    pub row: String,
    pub seat: String,
    pub price_cents: u64,
}

impl BookingView {
    pub fn new(booking: &Booking, map: &SeatMap, now: Millis) -> Self {
        let status = booking.status_at(now);
        let expires_at = match status {
            BookingStatus::Held | BookingStatus::PaymentPending | BookingStatus::Expired => {
                booking.held_until().map(rfc3339)
            }
            BookingStatus::Confirmed | BookingStatus::Released | BookingStatus::Refunded => None,
        };
        BookingView {
            booking_id: booking.id.to_string(),
            event_id: booking.event,
            status,
            expires_at,
            tickets: booked_tickets(&booking.tickets, map),
            total_cents: booking.total_cents,
            created_at: rfc3339(booking.created_at),
            held_until: rfc3339(booking.held_until),
            confirmed_at: confirmed_at(booking).map(rfc3339),
            released_at: released_at(booking).map(rfc3339),
            payment_id: booking.payment().map(String::from),
            checkout_url: None,
            last_payment_error: booking.last_payment_error.clone(),
        }
    }
}

fn confirmed_at(booking: &Booking) -> Option<Millis> {
    match booking.state {
        BookingState::Confirmed { at, .. } => Some(at),
        _ => None,
    }
}

fn released_at(booking: &Booking) -> Option<Millis> {
    match booking.state {
        BookingState::Released { at } | BookingState::Refunded { at, .. } => Some(at),
        _ => None,
    }
}

/// A booking as operators and the chaos checker read it: every time in group milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingRecord {
    pub id: String,
    pub event: EventId,
    pub fan: UserId,
    pub tickets: Vec<TicketId>,
    pub status: BookingStatus,
    pub total_cents: u64,
    pub created_at_ms: Millis,
    pub held_until_ms: Millis,
    pub confirmed_at_ms: Option<Millis>,
    pub released_at_ms: Option<Millis>,
}

impl BookingRecord {
    pub fn new(booking: &Booking, now: Millis) -> Self {
        BookingRecord {
            id: booking.id.to_string(),
            event: booking.event,
            fan: booking.user,
            tickets: booking.tickets.clone(),
            status: booking.status_at(now),
            total_cents: booking.total_cents,
            created_at_ms: booking.created_at,
            held_until_ms: booking.held_until,
            confirmed_at_ms: confirmed_at(booking),
            released_at_ms: released_at(booking),
        }
    }
}

/// The booked tickets with their seats, in the booking's order.
fn booked_tickets(tickets: &[TicketId], map: &SeatMap) -> Vec<BookedTicket> {
    tickets
        .iter()
        .filter_map(|&t| map.seat(t))
        .map(|s| BookedTicket {
            id: s.ticket,
            section: s.section.name.clone(),
            row: s.row.name.clone(),
            seat: s.seat.number.clone(),
            price_cents: s.section.price_cents,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: UserId,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub token: String,
    pub user_id: UserId,
    pub expires_at: String,
}

/// A value as a JSON body. Serializing the API's own views cannot fail in practice; if it ever
/// did, it would be a bug on our side, hence a logged 500.
pub(crate) fn json_bytes(value: &impl serde::Serialize) -> Result<Vec<u8>, crate::problem::Problem> {
    serde_json::to_vec(value).map_err(|error| {
        tracing::error!(%error, "response serialization failed");
        crate::problem::Problem::internal()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{BookingId, Row, Seat, Section};

    fn map() -> SeatMap {
        let seat = |n: &str| Seat { number: n.into(), x: 1.0, y: 2.0 };
        let section = |name: &str, price, seats: Vec<Seat>| Section {
            name: name.into(),
            price_cents: price,
            rows: vec![Row { name: "A".into(), seats }],
        };
        SeatMap {
            sections: vec![
                section("Floor", 9_900, vec![seat("1"), seat("2")]),
                section("Balcony", 4_900, vec![seat("1")]),
            ],
        }
    }

    fn booking(state: BookingState) -> Booking {
        Booking {
            id: BookingId { event: 5, nonce: 1 },
            event: 5,
            user: 9,
            tickets: vec![2, 0],
            total_cents: 14_800,
            held_until: 1_000,
            hold_ttl_ms: 1_000,
            state,
            last_payment_error: None,
            created_at: 0,
        }
    }

    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert!(rfc3339(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn parsed_times_keep_their_instant_whatever_the_offset() {
        let at = parse_rfc3339("2026-12-01T21:00:00+01:00").unwrap();
        assert_eq!(rfc3339(at), "2026-12-01T20:00:00.000Z");
        assert_eq!(parse_rfc3339("2026-12-01T20:00:00.000Z"), Some(at));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_rfc3339("tomorrow"), None);
    }

    #[test]
    fn a_held_booking_shows_when_it_expires_and_a_confirmed_one_does_not() {
        let held = BookingView::new(&booking(BookingState::Held), &map(), 10);
        assert_eq!(held.status, BookingStatus::Held);
        assert_eq!(held.expires_at.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        let expired = BookingView::new(&booking(BookingState::Held), &map(), 1_000);
        assert_eq!(expired.status, BookingStatus::Expired);
        assert!(expired.expires_at.is_some());
        let paid = BookingState::Confirmed { payment: "ch_1".into(), at: 5 };
        let confirmed = BookingView::new(&booking(paid), &map(), 10);
        assert_eq!(confirmed.expires_at, None);
        let json = serde_json::to_value(&confirmed).unwrap();
        assert_eq!(json["expiresAt"], serde_json::Value::Null);
        assert_eq!(json["bookingId"], "5-0000000000000001");
        assert_eq!(json["status"], "confirmed");
    }

    #[test]
    fn booked_tickets_keep_the_booking_order_and_their_seats() {
        let view = BookingView::new(&booking(BookingState::Held), &map(), 10);
        let seats: Vec<_> = view.tickets.iter().map(|t| (t.id, t.section.as_str(), t.price_cents)).collect();
        assert_eq!(seats, vec![(2, "Balcony", 4_900), (0, "Floor", 9_900)]);
    }

    #[test]
    fn tickets_read_as_their_state_at_now() {
        let b = BookingId { event: 5, nonce: 1 };
        let rows = [
            (0, TicketState::Held { booking: b, until: 100 }),
            (2, TicketState::Sold { booking: b }),
            (7, TicketState::Sold { booking: b }),
        ];
        let map = map();
        let statuses = |now| TicketsView::new(5, &map, &rows, now).tickets.iter().map(|t| t.status).collect::<Vec<_>>();
        assert_eq!(statuses(99), vec![TicketStatus::Held, TicketStatus::Available, TicketStatus::Sold]);
        assert_eq!(statuses(100), vec![TicketStatus::Available, TicketStatus::Available, TicketStatus::Sold]);
        assert_eq!(TicketsView::new(5, &map, &rows, 99).available_count, 1);
        let json = serde_json::to_value(TicketsView::new(5, &map, &rows, 99)).unwrap();
        assert_eq!(json["tickets"][0]["priceCents"], 9_900);
        assert_eq!(json["tickets"][0]["status"], "held");
        assert_eq!(json["eventId"], 5);
    }

    #[test]
    fn an_event_view_is_flat_with_its_sections() {
        let event = Event {
            id: 5,
            name: "Show".into(),
            description: String::new(),
            category: "music".into(),
            starts_at: 1_700_000_000_123,
            venue: VenueSummary {
                id: 1,
                name: "Hall".into(),
                address: "1 Road".into(),
                city: "Town".into(),
                capacity: 3,
            },
            performers: vec![],
            ticket_count: 3,
            created_at: 0,
        };
        let json = serde_json::to_value(EventView::new(&event, &map(), &EventParts::single(1, 1))).unwrap();
        assert_eq!(json["startsAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["ticketCount"], 3);
        assert_eq!(json["ticketGroups"], serde_json::json!([[0, 3]]), "one run of every ticket");
        assert_eq!(json["venue"]["capacity"], 3);
        assert_eq!(
            json["sections"],
            serde_json::json!([
                {"name": "Floor", "priceCents": 9_900, "seats": 2},
                {"name": "Balcony", "priceCents": 4_900, "seats": 1},
            ])
        );
    }
}

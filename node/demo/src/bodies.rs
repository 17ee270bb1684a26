//! The admin API's request bodies: [`VenueBody`] for `POST /admin/venues`, [`PerformerBody`] for
//! `POST /admin/performers` and [`EventBody`] for `POST /admin/events`, typed, serializing to the
//! JSON the gateway takes (camelCase keys). Nothing here is particular to the demo catalog: any
//! crate that creates catalog data through the admin API can send these.
//!
//! Seat coordinates are written as short as JSON allows ([`SeatMapBody`]): rounded to a tenth,
//! `12` rather than `12.0`, `3.4` rather than the f64 expansion of the f32 3.4. That keeps a
//! 50,000-seat stadium's body well under the gateway's 2 MiB limit.

use std::collections::BTreeMap;

use model::{Row, Seat, SeatMap, Section};
use serde::{Serialize, Serializer};

/// The body of `POST /admin/venues`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VenueBody {
    pub name: String,
    pub address: String,
    pub city: String,
    /// Written as [`SeatMapBody`] writes it.
    #[serde(serialize_with = "short_seat_map")]
    pub seat_map: SeatMap,
}

/// The body of `POST /admin/performers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PerformerBody {
    pub name: String,
    pub description: String,
    pub genre: String,
}

/// The body of `POST /admin/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBody {
    pub name: String,
    pub description: String,
    /// e.g. `concert`, `sports`, `theater`, `comedy`, `family`.
    pub category: String,
    /// Milliseconds since the Unix epoch; written as `startsAt`, in [`rfc3339`].
    #[serde(rename = "startsAt", serialize_with = "starts_at")]
    pub starts_at_ms: u64,
    /// The id the cluster gave the venue.
    pub venue_id: u64,
    /// The ids the cluster gave the performers.
    pub performer_ids: Vec<u64>,
    /// Prices in cents by section name, replacing the venue's; left out when `None`, so that the
    /// event keeps its venue's prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_cents: Option<BTreeMap<String, u64>>,
    /// Inventory groups the event's tickets are spread over; left out when `None` (one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<u32>,
}

/// A seat map as the admin API takes it (the `seatMap` of a venue), with short coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeatMapBody<'a>(pub &'a SeatMap);

impl Serialize for SeatMapBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MapOut { sections: self.0.sections.iter().map(SectionOut::from).collect() }.serialize(serializer)
    }
}

/// A time in milliseconds since the Unix epoch as the admin API takes it: RFC 3339 in UTC, to the
/// second (`2026-01-01T20:00:00Z`); the epoch itself for a time out of range.
pub fn rfc3339(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

fn short_seat_map<S: Serializer>(map: &SeatMap, serializer: S) -> Result<S::Ok, S::Error> {
    SeatMapBody(map).serialize(serializer)
}

fn starts_at<S: Serializer>(ms: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*ms))
}

/// A coordinate as short as JSON allows: rounded to a tenth, written as an integer when whole.
fn coordinate<S: Serializer>(v: &f32, serializer: S) -> Result<S::Ok, S::Error> {
    let tenth = ((*v as f64) * 10.0).round() / 10.0;
    if tenth.fract() == 0.0 && tenth.abs() < 1e15 {
        serializer.serialize_i64(tenth as i64)
    } else {
        serializer.serialize_f64(tenth)
    }
}

// The seat map's shape, borrowed, with the coordinates written by `coordinate`.

#[derive(Serialize)]
struct MapOut<'a> {
    sections: Vec<SectionOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SectionOut<'a> {
    name: &'a str,
    price_cents: u64,
    rows: Vec<RowOut<'a>>,
}

#[derive(Serialize)]
struct RowOut<'a> {
    name: &'a str,
    seats: Vec<SeatOut<'a>>,
}

#[derive(Serialize)]
struct SeatOut<'a> {
    number: &'a str,
    #[serde(serialize_with = "coordinate")]
    x: f32,
    #[serde(serialize_with = "coordinate")]
    y: f32,
}

impl<'a> From<&'a Section> for SectionOut<'a> {
    fn from(section: &'a Section) -> Self {
        SectionOut {
            name: &section.name,
            price_cents: section.price_cents,
            rows: section.rows.iter().map(RowOut::from).collect(),
        }
    }
}

impl<'a> From<&'a Row> for RowOut<'a> {
    fn from(row: &'a Row) -> Self {
        RowOut { name: &row.name, seats: row.seats.iter().map(SeatOut::from).collect() }
    }
}

impl<'a> From<&'a Seat> for SeatOut<'a> {
    fn from(seat: &'a Seat) -> Self {
        SeatOut { number: &seat.number, x: seat.x, y: seat.y }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn map(seats: &[(f32, f32)]) -> SeatMap {
        let seats = seats.iter().enumerate().map(|(i, &(x, y))| Seat { number: (i + 1).to_string(), x, y }).collect();
        SeatMap {
            sections: vec![Section {
                name: "Floor".into(),
                price_cents: 5_000,
                rows: vec![Row { name: "A".into(), seats }],
            }],
        }
    }

    #[test]
    fn coordinates_are_written_as_short_as_json_allows() {
        let text = serde_json::to_string(&SeatMapBody(&map(&[(12.0, 3.4), (0.25, 1e-3), (-7.0, 123.46)]))).unwrap();
        assert_eq!(
            text,
            r#"{"sections":[{"name":"Floor","priceCents":5000,"rows":[{"name":"A","seats":[{"number":"1","x":12,"y":3.4},{"number":"2","x":0.3,"y":0},{"number":"3","x":-7,"y":123.5}]}]}]}"#
        );
    }

    #[test]
    fn a_venue_body_reads_back_as_the_model_seat_map() {
        let seat_map = map(&[(0.0, 0.0), (5.0, 0.0), (10.5, 2.5)]);
        let body = VenueBody { name: "Hall".into(), address: "1 Main St".into(), city: "Town".into(), seat_map };
        let value = serde_json::to_value(&body).unwrap();
        assert_eq!(value["name"], "Hall");
        assert_eq!(value["address"], "1 Main St");
        assert_eq!(value["city"], "Town");
        let read: SeatMap = serde_json::from_value(value["seatMap"].clone()).unwrap();
        assert_eq!(read, body.seat_map);
        assert_eq!(value.as_object().unwrap().len(), 4);
    }

    #[test]
    fn a_performer_body_has_three_fields() {
        let body = PerformerBody { name: "The Testers".into(), description: "a band".into(), genre: "rock".into() };
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"name": "The Testers", "description": "a band", "genre": "rock"})
        );
    }

    #[test]
    fn an_event_body_writes_its_start_in_rfc3339_and_prices_only_when_given() {
        let mut body = EventBody {
            name: "Test Night".into(),
            description: "a show".into(),
            category: "concert".into(),
            starts_at_ms: 1_893_528_000_000,
            venue_id: 7,
            performer_ids: vec![1, 2],
            price_cents: None,
            groups: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"name": "Test Night", "description": "a show", "category": "concert",
                   "startsAt": "2030-01-01T20:00:00Z", "venueId": 7, "performerIds": [1, 2]})
        );
        body.price_cents = Some(BTreeMap::from([("Floor".to_string(), 4_500)]));
        let value: Value = serde_json::to_value(&body).unwrap();
        assert_eq!(value["priceCents"], json!({"Floor": 4500}));
    }

    #[test]
    fn times_are_written_to_the_second_and_out_of_range_as_the_epoch() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_272_400_999), "2026-01-01T13:00:00Z");
        assert_eq!(rfc3339(i64::MAX as u64), "1970-01-01T00:00:00Z");
    }
}

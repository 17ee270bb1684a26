//! The demo catalog: [`generate`] turns the fixed lists into venues with their seat maps,
//! performers and events, as a pure function of the time it is given, and each record gives the
//! admin API's body that creates it.

use std::collections::BTreeMap;

use model::SeatMap;

use crate::bodies::{EventBody, PerformerBody, VenueBody};
use crate::geometry::{arena_map, club_map, stadium_map, theater_map};
use crate::lists::{Layout, PriceRule, HORIZON_DAYS, PERFORMERS, SHOWS, VENUES};

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// The demo catalog, as [`generate`] makes it: what the loader sends, before the cluster has
/// given anything an id. Events refer to venues and performers by their index in these lists.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoCatalog {
    pub venues: Vec<DemoVenue>,
    pub performers: Vec<DemoPerformer>,
    pub events: Vec<DemoEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VenueKind {
    Club,
    Theater,
    Arena,
    Stadium,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoVenue {
    pub name: String,
    pub address: String,
    pub city: String,
    pub kind: VenueKind,
    pub seat_map: SeatMap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPerformer {
    pub name: String,
    pub description: String,
    pub genre: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoEvent {
    pub name: String,
    pub description: String,
    /// One of `concert`, `sports`, `theater`, `comedy`, `family`.
    pub category: String,
    /// Milliseconds since the Unix epoch.
    pub starts_at_ms: u64,
    /// Index into [`DemoCatalog::venues`].
    pub venue: usize,
    /// Indexes into [`DemoCatalog::performers`], one to three.
    pub performers: Vec<usize>,
    /// Per-section prices in cents; empty when the event keeps its venue's prices.
    pub prices: BTreeMap<String, u64>,
}

impl DemoVenue {
    /// The body of `POST /admin/venues` that creates this venue.
    pub fn body(&self) -> VenueBody {
        VenueBody {
            name: self.name.clone(),
            address: self.address.clone(),
            city: self.city.clone(),
            seat_map: self.seat_map.clone(),
        }
    }
}

impl DemoPerformer {
    /// The body of `POST /admin/performers` that creates this performer.
    pub fn body(&self) -> PerformerBody {
        PerformerBody { name: self.name.clone(), description: self.description.clone(), genre: self.genre.clone() }
    }
}

impl DemoEvent {
    /// The body of `POST /admin/events` that creates this event, given the ids the cluster gave
    /// its venue and performers.
    pub fn body(&self, venue_id: u64, performer_ids: &[u64]) -> EventBody {
        EventBody {
            name: self.name.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            starts_at_ms: self.starts_at_ms,
            venue_id,
            performer_ids: performer_ids.to_vec(),
            price_cents: (!self.prices.is_empty()).then(|| self.prices.clone()),
            groups: None,
        }
    }
}

/// The demo catalog with event times counted from the UTC day of `now_ms`: every event starts
/// between one and [`HORIZON_DAYS`] + 1 days later, in the local afternoon or evening of its
/// venue's city. Pure and deterministic.
pub fn generate(now_ms: u64) -> DemoCatalog {
    let venues: Vec<DemoVenue> = VENUES
        .iter()
        .map(|spec| {
            let (kind, seat_map) = match &spec.layout {
                Layout::Club(club) => (VenueKind::Club, club_map(club)),
                Layout::Theater(theater) => (VenueKind::Theater, theater_map(theater)),
                Layout::Arena => (VenueKind::Arena, arena_map()),
                Layout::Stadium => (VenueKind::Stadium, stadium_map()),
            };
            DemoVenue { name: spec.name.into(), address: spec.address.into(), city: spec.city.into(), kind, seat_map }
        })
        .collect();

    let performers = PERFORMERS
        .iter()
        .map(|(name, genre, description)| DemoPerformer {
            name: (*name).into(),
            description: (*description).into(),
            genre: (*genre).into(),
        })
        .collect();

    let venue_index = |name: &str| {
        VENUES.iter().position(|v| v.name == name).unwrap_or_else(|| panic!("demo show at unknown venue `{name}`"))
    };
    let performer_index = |name: &str| {
        PERFORMERS
            .iter()
            .position(|p| p.0 == name)
            .unwrap_or_else(|| panic!("demo show with unknown performer `{name}`"))
    };

    let first_midnight = (now_ms / DAY_MS) * DAY_MS;
    let mut events = Vec::new();
    for show in SHOWS {
        let performers: Vec<usize> = show.performers.iter().map(|p| performer_index(p)).collect();
        for &(venue_name, day) in show.stops {
            assert!((1..=HORIZON_DAYS).contains(&day), "demo show `{}` is outside the horizon", show.name);
            let venue = venue_index(venue_name);
            let spec = &VENUES[venue];
            let local = show.time.0 * HOUR_MS + show.time.1 * 60_000;
            let starts_at = (first_midnight + day * DAY_MS) as i64 + local - spec.utc_offset_hours * HOUR_MS;
            let prices = event_prices(&show.prices, &venues[venue].seat_map);
            events.push(DemoEvent {
                name: show.name.into(),
                description: show.description.into(),
                category: show.category.into(),
                starts_at_ms: starts_at as u64,
                venue,
                performers: performers.clone(),
                prices,
            });
        }
    }
    events.sort_by(|a, b| a.starts_at_ms.cmp(&b.starts_at_ms).then_with(|| a.name.cmp(&b.name)));

    DemoCatalog { venues, performers, events }
}

fn event_prices(rule: &PriceRule, map: &SeatMap) -> BTreeMap<String, u64> {
    match rule {
        PriceRule::Venue => BTreeMap::new(),
        PriceRule::Percent(percent) => map
            .sections
            .iter()
            .map(|s| {
                let dollars = (s.price_cents * percent + 5_000) / 10_000;
                (s.name.clone(), dollars.max(5) * 100)
            })
            .collect(),
        // Only the sections this venue has: a rule may name sections some venues lack.
        PriceRule::Sections(prices) => prices
            .iter()
            .filter(|(name, _)| map.sections.iter().any(|s| s.name == *name))
            .map(|(name, cents)| ((*name).to_string(), *cents))
            .collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::HashSet;

    /// 2026-01-01T13:00:00Z.
    pub(crate) const NOW: u64 = 1_767_225_600_000 + 13 * HOUR_MS as u64;

    pub(crate) fn catalog() -> DemoCatalog {
        generate(NOW)
    }

    fn to_json(body: impl serde::Serialize) -> Value {
        serde_json::to_value(body).unwrap()
    }
    #[test]
    fn performers_are_about_thirty_with_unique_names() {
        let catalog = catalog();
        assert!((25..=40).contains(&catalog.performers.len()));
        let names: HashSet<_> = catalog.performers.iter().map(|p| &p.name).collect();
        assert_eq!(names.len(), catalog.performers.len());
        assert!(catalog.performers.iter().all(|p| !p.description.is_empty() && !p.genre.is_empty()));
        let venue_names: HashSet<_> = catalog.venues.iter().map(|v| &v.name).collect();
        assert_eq!(venue_names.len(), catalog.venues.len());
        let cities: HashSet<_> = catalog.venues.iter().map(|v| &v.city).collect();
        assert!(cities.len() >= 5);
    }

    #[test]
    fn at_least_sixty_events_within_six_months_of_now() {
        let catalog = catalog();
        assert!(catalog.events.len() >= 60, "{} events", catalog.events.len());
        let horizon = NOW + 183 * DAY_MS;
        let categories: HashSet<&str> = ["concert", "sports", "theater", "comedy", "family"].into();
        let mut seen = HashSet::new();
        for e in &catalog.events {
            assert!(e.starts_at_ms > NOW && e.starts_at_ms <= horizon, "{} starts at {}", e.name, e.starts_at_ms);
            assert!(categories.contains(e.category.as_str()), "{}", e.category);
            seen.insert(e.category.as_str());
            assert!((1..=3).contains(&e.performers.len()), "{}", e.name);
            assert!(e.performers.iter().all(|&p| p < catalog.performers.len()));
            let map = &catalog.venues[e.venue].seat_map;
            for name in e.prices.keys() {
                assert!(map.sections.iter().any(|s| &s.name == name), "{}: no section {name}", e.name);
            }
        }
        assert_eq!(seen, categories);
        assert!(catalog.events.iter().any(|e| !e.prices.is_empty()));
        assert!(catalog.events.windows(2).all(|w| w[0].starts_at_ms <= w[1].starts_at_ms));
        let stadium = catalog.venues.iter().position(|v| v.kind == VenueKind::Stadium).unwrap();
        let at_stadium = catalog.events.iter().filter(|e| e.venue == stadium).count();
        assert!((1..=4).contains(&at_stadium), "{at_stadium} stadium events");
        let used: HashSet<usize> = catalog.events.iter().map(|e| e.venue).collect();
        assert_eq!(used.len(), catalog.venues.len(), "every venue has an event");
    }

    #[test]
    fn events_start_in_the_local_afternoon_or_evening() {
        let catalog = catalog();
        for e in &catalog.events {
            let spec = VENUES.iter().find(|v| v.name == catalog.venues[e.venue].name).unwrap();
            let local_hour =
                ((e.starts_at_ms as i64 + spec.utc_offset_hours * HOUR_MS).rem_euclid(DAY_MS as i64)) / HOUR_MS;
            assert!((11..=22).contains(&local_hour), "{} at {local_hour}h", e.name);
        }
    }

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(generate(NOW), generate(NOW));
        // The same UTC day gives the same times.
        assert_eq!(generate(NOW), generate(NOW - 12 * HOUR_MS as u64));
        // Another day shifts the times and nothing else.
        let later = generate(NOW + DAY_MS);
        let now = generate(NOW);
        assert_eq!(later.venues, now.venues);
        for (a, b) in later.events.iter().zip(&now.events) {
            assert_eq!(a.starts_at_ms, b.starts_at_ms + DAY_MS);
            assert_eq!(a.name, b.name);
        }
    }

    #[test]
    fn bodies_round_trip_into_the_model_and_stay_small() {
        let catalog = catalog();
        for v in &catalog.venues {
            let body = to_json(v.body());
            let map: SeatMap = serde_json::from_value(body["seatMap"].clone()).unwrap();
            assert_eq!(map, v.seat_map, "{}", v.name);
            let size = serde_json::to_vec(&body).unwrap().len();
            // axum's default body limit is 2 MiB.
            assert!(size < 2 * 1024 * 1024 - 64 * 1024, "{}: {size} bytes", v.name);
        }
        let e = &catalog.events[0];
        let body = to_json(e.body(7, &[1, 2]));
        assert_eq!(body["venueId"], 7);
        assert_eq!(body["performerIds"], json!([1, 2]));
        let starts = chrono::DateTime::parse_from_rfc3339(body["startsAt"].as_str().unwrap()).unwrap();
        assert_eq!(starts.timestamp_millis() as u64, e.starts_at_ms);
        let priced = catalog.events.iter().find(|e| !e.prices.is_empty()).unwrap();
        assert!(to_json(priced.body(1, &[1]))["priceCents"].is_object());
        let unpriced = catalog.events.iter().find(|e| e.prices.is_empty()).unwrap();
        assert!(to_json(unpriced.body(1, &[1])).get("priceCents").is_none());
    }
}

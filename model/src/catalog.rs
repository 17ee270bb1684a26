//! Catalog records: venues and their seat maps, performers, events and users.
//!
//! A venue's seat map is its geometry and its default prices; an event copies the map of its
//! venue when it is created (with the event's own prices), so that the event's raft group can
//! answer for its tickets without asking the placement group.

use serde::{Deserialize, Serialize};

use crate::{EventId, GroupId, Millis, PerformerId, TicketId, UserId, VenueId, SEAT_LABEL_CHARS_MAX, VENUE_SEATS_MAX};

/// Sections, rows and seats. Ticket `n` of an event is the `n`-th seat in this order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatMap {
    pub sections: Vec<Section>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Section {
    pub name: String,
    /// The price tier of every seat in the section, in cents.
    pub price_cents: u64,
    pub rows: Vec<Row>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub name: String,
    pub seats: Vec<Seat>,
}

/// One seat: its label and where to draw it on the map (venue units, origin top left).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seat {
    pub number: String,
    pub x: f32,
    pub y: f32,
}

/// Where one ticket sits, borrowed from the seat map.
#[derive(Debug, Clone, Copy)]
pub struct SeatRef<'a> {
    pub ticket: TicketId,
    pub section: &'a Section,
    pub row: &'a Row,
    pub seat: &'a Seat,
}

impl SeatMap {
    pub fn seat_count(&self) -> usize {
        self.sections.iter().flat_map(|s| &s.rows).map(|r| r.seats.len()).sum()
    }

    /// Every seat in ticket order.
    pub fn seats(&self) -> impl Iterator<Item = SeatRef<'_>> {
        self.sections
            .iter()
            .flat_map(|section| section.rows.iter().map(move |row| (section, row)))
            .flat_map(|(section, row)| row.seats.iter().map(move |seat| (section, row, seat)))
            .enumerate()
            .map(|(n, (section, row, seat))| SeatRef { ticket: n as TicketId, section, row, seat })
    }

    /// Where one ticket sits, walking rows rather than seats (a stadium has thousands of rows
    /// and a hundred thousand seats).
    pub fn seat(&self, ticket: TicketId) -> Option<SeatRef<'_>> {
        let mut n = ticket as usize;
        for section in &self.sections {
            for row in &section.rows {
                match row.seats.get(n) {
                    Some(seat) => return Some(SeatRef { ticket, section, row, seat }),
                    None => n -= row.seats.len(),
                }
            }
        }
        None
    }

    /// The price of every ticket, indexed by ticket id.
    pub fn prices(&self) -> Vec<u64> {
        self.seats().map(|s| s.section.price_cents).collect()
    }

    /// What is wrong with this map, if anything, in words an admin can act on.
    pub fn problem(&self) -> Option<String> {
        if self.sections.is_empty() {
            return Some("a seat map needs at least one section".into());
        }
        let count = self.seat_count();
        if count == 0 {
            return Some("a seat map needs at least one seat".into());
        }
        if count > VENUE_SEATS_MAX {
            return Some(format!("a seat map holds at most {VENUE_SEATS_MAX} seats, this one has {count}"));
        }
        if let Some(problem) = self.label_problem() {
            return Some(problem);
        }
        let mut names = std::collections::HashSet::new();
        for section in &self.sections {
            if section.name.trim().is_empty() {
                return Some("every section needs a name".into());
            }
            if !names.insert(section.name.as_str()) {
                return Some(format!("section `{}` appears twice", section.name));
            }
            let bad_seat = section.rows.iter().flat_map(|r| &r.seats).any(|s| !s.x.is_finite() || !s.y.is_finite());
            if bad_seat {
                return Some(format!("section `{}` has a seat with a coordinate that is not a number", section.name));
            }
        }
        None
    }

    /// A label longer than [`SEAT_LABEL_CHARS_MAX`]: every fan watching the map downloads every
    /// label, so one venue's labels must not make the layout megabytes larger than its seats.
    fn label_problem(&self) -> Option<String> {
        let too_long = |label: &str| label.chars().count() > SEAT_LABEL_CHARS_MAX;
        for section in &self.sections {
            if too_long(&section.name) {
                return Some(format!("section names have at most {SEAT_LABEL_CHARS_MAX} characters"));
            }
            for row in &section.rows {
                if too_long(&row.name) {
                    return Some(format!(
                        "section `{}`: row names have at most {SEAT_LABEL_CHARS_MAX} characters",
                        section.name
                    ));
                }
                if row.seats.iter().any(|seat| too_long(&seat.number)) {
                    let detail = format!(
                        "section `{}` row `{}`: seat numbers have at most {SEAT_LABEL_CHARS_MAX} characters",
                        section.name, row.name
                    );
                    return Some(detail);
                }
            }
        }
        None
    }

    /// A copy with the prices of the named sections replaced.
    pub fn with_prices(&self, prices: &std::collections::BTreeMap<String, u64>) -> SeatMap {
        let mut map = self.clone();
        for section in &mut map.sections {
            if let Some(price) = prices.get(&section.name) {
                section.price_cents = *price;
            }
        }
        map
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Venue {
    pub id: VenueId,
    pub name: String,
    pub address: String,
    pub city: String,
    pub seat_map: SeatMap,
}

/// A venue without its seat map: what an event page shows about where it is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VenueSummary {
    pub id: VenueId,
    pub name: String,
    pub address: String,
    pub city: String,
    pub capacity: u32,
}

impl Venue {
    pub fn summary(&self) -> VenueSummary {
        VenueSummary {
            id: self.id,
            name: self.name.clone(),
            address: self.address.clone(),
            city: self.city.clone(),
            capacity: self.seat_map.seat_count() as u32,
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Performer {
    pub id: PerformerId,
    pub name: String,
    pub description: String,
    pub genre: String,
}

/// An event as its inventory group stores it. The seat map is kept in its own row, so that
/// listing events does not read every seat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: EventId,
    pub name: String,
    pub description: String,
    pub category: String,
    pub starts_at: Millis,
    pub venue: VenueSummary,
    pub performers: Vec<Performer>,
    pub ticket_count: u32,
    /// The leader's time when the event was created.
    pub created_at: Millis,
}

/// Which inventory group owns an event, as the placement group records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub event: EventId,
    pub group: GroupId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
    /// Lowercased and trimmed: emails are unique ignoring case.
    pub email: String,
    /// PHC string (argon2id).
    pub password_hash: String,
}

/// Lowercases and trims an email address so that `Ann@X.org ` and `ann@x.org` are one user.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn small_map() -> SeatMap {
        let seat = |n: &str, x: f32| Seat { number: n.into(), x, y: 0.0 };
        SeatMap {
            sections: vec![
                Section {
                    name: "Floor".into(),
                    price_cents: 9_900,
                    rows: vec![Row { name: "A".into(), seats: vec![seat("1", 0.0), seat("2", 1.0)] }],
                },
                Section {
                    name: "Balcony".into(),
                    price_cents: 4_900,
                    rows: vec![Row { name: "A".into(), seats: vec![seat("1", 0.0)] }],
                },
            ],
        }
    }

    #[test]
    fn tickets_number_seats_in_map_order() {
        let map = small_map();
        let seats: Vec<_> = map.seats().map(|s| (s.ticket, s.section.name.as_str(), s.seat.number.as_str())).collect();
        assert_eq!(seats, vec![(0, "Floor", "1"), (1, "Floor", "2"), (2, "Balcony", "1")]);
        assert_eq!(map.prices(), vec![9_900, 9_900, 4_900]);
        assert_eq!(map.seat_count(), 3);
        for seat in map.seats() {
            let found = map.seat(seat.ticket).unwrap();
            assert_eq!(
                (found.section.name.as_str(), found.seat.number.as_str()),
                (seat.section.name.as_str(), seat.seat.number.as_str())
            );
        }
        assert!(map.seat(3).is_none());
    }

    #[test]
    fn prices_can_be_overridden_per_section() {
        let prices = [("Balcony".to_string(), 100)].into_iter().collect();
        assert_eq!(small_map().with_prices(&prices).prices(), vec![9_900, 9_900, 100]);
    }

    #[test]
    fn a_map_without_seats_or_with_duplicate_sections_is_a_problem() {
        assert!(SeatMap::default().problem().is_some());
        let mut map = small_map();
        assert_eq!(map.problem(), None);
        map.sections[1].name = "Floor".into();
        assert!(map.problem().unwrap().contains("twice"));
    }

    #[test]
    fn labels_longer_than_the_limit_are_a_problem() {
        let long = "x".repeat(SEAT_LABEL_CHARS_MAX + 1);
        let at_limit = "é".repeat(SEAT_LABEL_CHARS_MAX);
        let mut map = small_map();
        map.sections[0].rows[0].seats[0].number = at_limit.clone();
        map.sections[0].rows[0].name = at_limit;
        assert_eq!(map.problem(), None, "the limit counts characters, not bytes");
        for set in [
            |m: &mut SeatMap, l: &str| m.sections[1].name = l.into(),
            |m: &mut SeatMap, l: &str| m.sections[1].rows[0].name = l.into(),
            |m: &mut SeatMap, l: &str| m.sections[1].rows[0].seats[0].number = l.into(),
        ] {
            let mut bad = small_map();
            set(&mut bad, &long);
            assert!(bad.problem().unwrap().contains("at most 32 characters"), "{:?}", bad.problem());
        }
    }
}

//! Events split over several inventory groups: a hot on-sale's writes spread over several
//! leaders instead of one.
//!
//! An event created with `groups: k` has `k` **parts**. Part `i` owns a run of whole rows of the
//! seat map (tickets `bounds[i]..bounds[i + 1]`, about as many in each) and lives in its own
//! inventory group, which holds the event's seat map and the rows of those tickets only. Part 0
//! is the event as everything else sees it: its record, its listing and search entry, its
//! waiting room's line (the other parts keep the room's settings, so that each refuses a hold
//! without an admission). The placement group records the parts beside the event's placement.
//!
//! A hold names tickets of one part (apply refuses any other: the part's group holds nothing
//! else), so it stays one group's atomic write. A booking id carries its part in the top four
//! bits of its nonce, so any gateway routes it without asking.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::{BookingId, EventId, GroupId, SeatMap, TicketId};

/// Most parts an event may have: a booking id's nonce spares four bits for its part.
pub const EVENT_PARTS_MAX: u32 = 16;
/// Where a booking id's nonce keeps its part.
const PART_SHIFT_BITS: u32 = 60;

/// The parts of an event and the group of each, as the placement group records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventParts {
    pub event: EventId,
    /// Each part's group, part 0 first.
    pub groups: Vec<GroupId>,
    /// Part `i` owns tickets `bounds[i]..bounds[i + 1]`: one more bound than parts, from 0 to
    /// the event's ticket count, strictly rising.
    pub bounds: Vec<TicketId>,
}

impl EventParts {
    /// An event placed whole: one part, every ticket number (the seat map says which exist).
    pub fn single(event: EventId, group: GroupId) -> EventParts {
        EventParts { event, groups: vec![group], bounds: vec![0, TicketId::MAX] }
    }

    pub fn count(&self) -> u32 {
        self.groups.len() as u32
    }

    /// The group of part 0: the event's record, listing and room.
    pub fn home(&self) -> GroupId {
        self.groups[0]
    }

    /// The tickets part `part` owns.
    pub fn tickets(&self, part: u32) -> Range<TicketId> {
        self.bounds[part as usize]..self.bounds[part as usize + 1]
    }

    /// The part that owns `ticket`, if the event has it.
    pub fn part_of_ticket(&self, ticket: TicketId) -> Option<u32> {
        if ticket >= *self.bounds.last()? {
            return None;
        }
        // The first bound above the ticket ends its part.
        Some(self.bounds.partition_point(|&bound| bound <= ticket) as u32 - 1)
    }

    /// The part a booking belongs to, from its id.
    pub fn part_of_booking(&self, id: BookingId) -> u32 {
        part_of_booking(id, self.count())
    }

    /// The group that keeps booking `id`.
    pub fn group_of_booking(&self, id: BookingId) -> GroupId {
        self.groups[self.part_of_booking(id) as usize]
    }

    /// A booking id in part `part` of this event, from a random number.
    pub fn booking_id(&self, part: u32, random: u64) -> BookingId {
        assert!(part < self.count(), "part {part} of an event of {} parts", self.count());
        if self.count() == 1 {
            return BookingId { event: self.event, nonce: random };
        }
        let low = random & ((1u64 << PART_SHIFT_BITS) - 1);
        BookingId { event: self.event, nonce: low | (u64::from(part) << PART_SHIFT_BITS) }
    }

    /// What is wrong with this record, if anything.
    pub fn problem(&self) -> Option<String> {
        let parts = self.groups.len();
        if parts == 0 || parts > EVENT_PARTS_MAX as usize {
            return Some(format!("an event has 1 to {EVENT_PARTS_MAX} groups, not {parts}"));
        }
        if self.bounds.len() != parts + 1 || self.bounds[0] != 0 {
            return Some("an event's part bounds start at 0, one more than its groups".into());
        }
        if self.bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Some("an event's part bounds rise strictly: every part has tickets".into());
        }
        None
    }
}

/// The part of an event of `parts` parts that booking `id` belongs to.
pub fn part_of_booking(id: BookingId, parts: u32) -> u32 {
    if parts <= 1 {
        return 0;
    }
    // An id no gateway made may name a part past the last: it then names no booking there.
    ((id.nonce >> PART_SHIFT_BITS) as u32).min(parts - 1)
}

/// Splits `map`'s tickets into `parts` runs of whole rows, each about as large: the bounds of
/// [`EventParts`]. `None` if the map has fewer rows than `parts`.
pub fn split_rows(map: &SeatMap, parts: u32) -> Option<Vec<TicketId>> {
    // Where each row starts, in ticket order, then the end of the last.
    let mut starts: Vec<TicketId> = Vec::new();
    let mut next: TicketId = 0;
    for row in map.sections.iter().flat_map(|s| &s.rows) {
        starts.push(next);
        next += row.seats.len() as TicketId;
    }
    let rows = starts.len();
    let parts = parts as usize;
    if parts == 0 || rows < parts {
        return None;
    }
    let total = u64::from(next);
    let mut bounds = vec![0];
    let mut row = 0;
    for part in 1..parts {
        let target = (total * part as u64 / parts as u64) as TicketId;
        // The first row start at or past the target, leaving a row for each part after it.
        let latest = rows - (parts - part);
        row = (row + 1..=latest).find(|&r| starts[r] >= target).unwrap_or(latest);
        bounds.push(starts[row]);
    }
    bounds.push(next);
    Some(bounds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Row, Seat, Section};

    fn map(rows: &[usize]) -> SeatMap {
        let seat = |n: usize| Seat { number: n.to_string(), x: n as f32, y: 0.0 };
        let rows = rows
            .iter()
            .enumerate()
            .map(|(i, &seats)| Row { name: format!("R{i}"), seats: (0..seats).map(seat).collect() })
            .collect();
        SeatMap { sections: vec![Section { name: "Floor".into(), price_cents: 100, rows }] }
    }

    #[test]
    fn rows_are_split_into_parts_of_about_equal_size() {
        let bounds = split_rows(&map(&[10; 8]), 4).unwrap();
        assert_eq!(bounds, vec![0, 20, 40, 60, 80]);
        let bounds = split_rows(&map(&[5, 30, 5, 5, 5]), 2).unwrap();
        assert_eq!(bounds, vec![0, 35, 50], "whole rows: the 30-seat row is not cut");
        assert_eq!(split_rows(&map(&[10; 3]), 3).unwrap(), vec![0, 10, 20, 30]);
        assert_eq!(split_rows(&map(&[10; 3]), 4), None, "fewer rows than parts");
        assert_eq!(split_rows(&map(&[10]), 1).unwrap(), vec![0, 10]);
    }

    #[test]
    fn every_part_gets_a_row_even_when_one_row_dwarfs_the_rest() {
        let bounds = split_rows(&map(&[100, 1, 1, 1]), 4).unwrap();
        assert_eq!(bounds, vec![0, 100, 101, 102, 103]);
        let parts = EventParts { event: 1, groups: vec![1, 2, 3, 4], bounds };
        assert_eq!(parts.problem(), None);
    }

    #[test]
    fn tickets_and_bookings_find_their_part() {
        let parts = EventParts { event: 7, groups: vec![3, 4, 1], bounds: vec![0, 10, 25, 40] };
        let found: Vec<_> = [0, 9, 10, 24, 25, 39, 40].iter().map(|&t| parts.part_of_ticket(t)).collect();
        assert_eq!(found, vec![Some(0), Some(0), Some(1), Some(1), Some(2), Some(2), None]);
        for part in 0..3 {
            let id = parts.booking_id(part, u64::MAX);
            assert_eq!(id.event, 7);
            assert_eq!(parts.part_of_booking(id), part);
            assert_eq!(parts.group_of_booking(id), parts.groups[part as usize]);
        }
        let single = EventParts::single(7, 2);
        let id = single.booking_id(0, u64::MAX);
        assert_eq!((id.nonce, single.group_of_booking(id)), (u64::MAX, 2), "one part: the nonce is all random");
    }

    #[test]
    fn malformed_parts_are_a_problem() {
        let good = EventParts { event: 1, groups: vec![1, 2], bounds: vec![0, 5, 9] };
        assert_eq!(good.problem(), None);
        let bad = [
            EventParts { groups: vec![], bounds: vec![0], ..good.clone() },
            EventParts { bounds: vec![0, 9], ..good.clone() },
            EventParts { bounds: vec![1, 5, 9], ..good.clone() },
            EventParts { bounds: vec![0, 5, 5], ..good.clone() },
        ];
        for parts in bad {
            assert!(parts.problem().is_some(), "{parts:?}");
        }
    }
}

//! Which of an event's groups a hold goes to, for an event in parts (see `model::parts`): a
//! hold of named tickets to the one part that sells them all (422 if they span parts), a best
//! available hold to the parts in the order a fan would want them asked.

use axum::http::StatusCode;
use model::{EventParts, SeatMap, TicketId, UserId};

use crate::problem::Problem;

/// The part that sells every one of `tickets` (known tickets of the event); 422 naming the
/// parts if they span several.
pub fn part_of_tickets(parts: &EventParts, tickets: &[TicketId]) -> Result<u32, Problem> {
    let mut found: Vec<(u32, TicketId)> = tickets.iter().filter_map(|&t| Some((parts.part_of_ticket(t)?, t))).collect();
    found.sort_unstable();
    found.dedup_by_key(|(part, _)| *part);
    match found.as_slice() {
        [(part, _)] => Ok(*part),
        // Unknown tickets were refused before: every ticket has a part.
        [] => Ok(0),
        several => {
            let runs: Vec<[TicketId; 2]> =
                several.iter().map(|(part, _)| parts.tickets(*part)).map(|run| [run.start, run.end]).collect();
            let detail = "one booking takes tickets sold by one of the event's groups (see ticketGroups on its page): \
                          split the hold";
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            Err(Problem::new(status, "spans-groups", "Tickets of several groups", detail).with("ticketGroups", runs))
        }
    }
}

/// The parts a best-available hold asks, in turn, until one has the seats: by the best price
/// they sell within `section` and `max_price_cents`, best first; parts that sell none are left
/// out. Parts of the same best price are asked starting from one picked by the fan, so that a
/// crowd spreads over their leaders, and the same request always asks in the same order (a
/// retry under its idempotency key meets each part's remembered answer in turn).
pub fn best_available_order(
    parts: &EventParts,
    map: &SeatMap,
    section: Option<&str>,
    max_price_cents: Option<u64>,
    user: UserId,
) -> Vec<u32> {
    let mut best: Vec<Option<u64>> = vec![None; parts.count() as usize];
    let mut first: TicketId = 0;
    for s in &map.sections {
        let allowed =
            section.is_none_or(|name| name == s.name) && max_price_cents.is_none_or(|max| s.price_cents <= max);
        for row in &s.rows {
            let end = first + row.seats.len() as TicketId;
            // A row lies in one part: parts are runs of whole rows.
            if let (true, Some(part)) = (allowed, parts.part_of_ticket(first)) {
                let slot = &mut best[part as usize];
                *slot = Some(slot.map_or(s.price_cents, |p| p.max(s.price_cents)));
            }
            first = end;
        }
    }
    let mut order: Vec<(u64, u32)> =
        best.iter().enumerate().filter_map(|(part, price)| Some(((*price)?, part as u32))).collect();
    order.sort_by_key(|&(price, part)| (std::cmp::Reverse(price), part));
    let mut asked = Vec::with_capacity(order.len());
    for tier in order.chunk_by(|a, b| a.0 == b.0) {
        let start = (user % tier.len() as u64) as usize;
        asked.extend(tier[start..].iter().chain(&tier[..start]).map(|&(_, part)| part));
    }
    asked
}

#[cfg(test)]
mod tests {
    use model::{Row, Seat, Section};

    use super::*;

    /// Rows of 5 seats: two at 80.00 (Floor), four at 40.00 (Balcony).
    fn map() -> SeatMap {
        let row = |name: &str| Row {
            name: name.into(),
            seats: (0..5).map(|n| Seat { number: n.to_string(), x: 0.0, y: 0.0 }).collect(),
        };
        SeatMap {
            sections: vec![
                Section { name: "Floor".into(), price_cents: 8_000, rows: vec![row("A"), row("B")] },
                Section {
                    name: "Balcony".into(),
                    price_cents: 4_000,
                    rows: (0..4).map(|r| row(&r.to_string())).collect(),
                },
            ],
        }
    }

    /// Three parts: the floor (0..10), half the balcony (10..20), the other half (20..30).
    fn parts() -> EventParts {
        EventParts { event: 1, groups: vec![5, 6, 7], bounds: vec![0, 10, 20, 30] }
    }

    #[test]
    fn tickets_of_one_part_go_to_it() {
        assert_eq!(part_of_tickets(&parts(), &[12, 19, 10]).unwrap(), 1);
        assert_eq!(part_of_tickets(&EventParts::single(1, 3), &[0, 29]).unwrap(), 0);
    }

    #[test]
    fn tickets_of_several_parts_are_refused_naming_the_runs() {
        let problem = part_of_tickets(&parts(), &[9, 10, 25]).unwrap_err();
        assert_eq!(problem.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem.slug(), "spans-groups");
        assert_eq!(problem.extension("ticketGroups"), Some(&serde_json::json!([[0, 10], [10, 20], [20, 30]])));
    }

    #[test]
    fn best_available_asks_the_best_priced_part_first() {
        assert_eq!(best_available_order(&parts(), &map(), None, None, 0), vec![0, 1, 2]);
        assert_eq!(best_available_order(&parts(), &map(), Some("Balcony"), None, 0), vec![1, 2]);
        assert_eq!(best_available_order(&parts(), &map(), None, Some(5_000), 0), vec![1, 2]);
        assert_eq!(best_available_order(&parts(), &map(), None, Some(100), 0), Vec::<u32>::new());
    }

    #[test]
    fn fans_spread_over_parts_of_the_same_price() {
        assert_eq!(best_available_order(&parts(), &map(), Some("Balcony"), None, 1), vec![2, 1]);
        assert_eq!(best_available_order(&parts(), &map(), None, None, 7), vec![0, 2, 1]);
        let single = EventParts::single(1, 3);
        assert_eq!(best_available_order(&single, &map(), None, None, 7), vec![0]);
    }
}

//! The ledger's invariants, asserted around every change of a seat's owner and every admission
//! to a waiting room.
//!
//! Each check is one half of a pair: the command's own logic decided the change was allowed
//! (the tickets were free, the booking was the one holding them), and these read the rows back
//! and state what must then be true (or, where the command read nothing, what must already be). They run in every build, on every replica: a ledger that
//! broke one would go on to sell a seat twice or lose a sale, so it stops the process instead
//! (the node exits and the chaos runner, or the operator, sees it).
//!
//! The rows are read through the same [`Rows`] apply writes to, so a check sees this command's
//! own changes; the cost is one in-memory read per ticket of the booking.

use model::room::Place;
use model::{Booking, BookingId, EventId, Millis, TicketId, TicketState};

use crate::ledger::keys;
use crate::ledger::rows::{read, Fault, Rows};

fn ticket(rows: &impl Rows, event: u64, ticket: TicketId) -> Result<Option<TicketState>, Fault> {
    read(rows, &keys::ticket(event, ticket))
}

/// Before a payment start holds a booking's tickets again: none of them is sold to another
/// booking. A hold and a confirm need no such check, because their availability check (`taken`)
/// has just read the same rows; a payment start on a live hold reads none, and relies on the
/// held invariant instead, which this states. The test-only build that skips the availability
/// check skips this one too, so the chaos runner can show it catches the double sale that
/// follows.
pub fn assert_none_sold_to_another(rows: &impl Rows, id: BookingId, tickets: &[TicketId]) -> Result<(), Fault> {
    if cfg!(feature = "chaos-skip-availability-check") {
        return Ok(());
    }
    for &t in tickets {
        if let Some(TicketState::Sold { booking }) = ticket(rows, id.event, t)? {
            assert_eq!(booking, id, "ticket {t} of event {} is sold to {booking:?}: {id:?} must not take it", id.event);
        }
    }
    Ok(())
}

/// After a hold or a payment start: every ticket of the booking is held by it until the
/// booking's `held_until`, and the booking is live for that long.
pub fn assert_held(rows: &impl Rows, booking: &Booking) -> Result<(), Fault> {
    assert!(!booking.tickets.is_empty(), "a held booking {:?} has tickets", booking.id);
    assert!(booking.held_until > booking.created_at, "a hold of {:?} ends after it began", booking.id);
    for &t in &booking.tickets {
        let state = ticket(rows, booking.event, t)?;
        let expected = TicketState::Held { booking: booking.id, until: booking.held_until };
        assert_eq!(state, Some(expected), "ticket {t} of a held booking {:?} reads as held by it", booking.id);
    }
    Ok(())
}

/// After a confirm: every ticket of the booking is sold to it.
pub fn assert_sold(rows: &impl Rows, booking: &Booking) -> Result<(), Fault> {
    for &t in &booking.tickets {
        let state = ticket(rows, booking.event, t)?;
        let expected = TicketState::Sold { booking: booking.id };
        assert_eq!(state, Some(expected), "ticket {t} of a confirmed booking {:?} reads as sold to it", booking.id);
    }
    Ok(())
}

/// After a release or the refund of an unpaid booking: no ticket is held by it any more (a
/// ticket may be someone else's by now, never this booking's).
pub fn assert_freed(rows: &impl Rows, booking: &Booking, at: Millis) -> Result<(), Fault> {
    for &t in &booking.tickets {
        if let Some(state) = ticket(rows, booking.event, t)? {
            let theirs = state.booking() != booking.id;
            assert!(theirs || state.is_free_at(at), "ticket {t} is still {state:?} after {:?} let it go", booking.id);
        }
    }
    Ok(())
}

/// A room as it stood before a tick or a late admission, for [`assert_admitted`].
pub struct RoomBefore {
    pub watermark: Option<Place>,
    /// Fans shopping at the command's stamp, before it admitted anyone.
    pub shopping: u64,
}

/// A room as it stands after a tick or a late admission, for [`assert_admitted`].
pub struct RoomAfter {
    pub event: EventId,
    pub watermark: Option<Place>,
    /// Fans shopping at the command's stamp, after it admitted.
    pub shopping: u64,
    /// The room's shopping limit.
    pub shopping_max: u32,
}

/// After a tick or a late admission: the watermark did not move back, no more fans were admitted
/// than the rate and the shopping limit allowed (`allowed`), and no more fans shop than the limit
/// unless more already did (a lowered limit is waited out, never broken further).
pub fn assert_admitted(before: &RoomBefore, after: &RoomAfter, admitted: u64, allowed: u64) {
    let room = after.event;
    assert!(after.watermark >= before.watermark, "the watermark of room {room} moved back");
    assert!(admitted <= allowed, "room {room} admitted {admitted} where {allowed} were allowed");
    let (shopping, max) = (after.shopping, u64::from(after.shopping_max));
    assert!(
        shopping <= max || shopping <= before.shopping,
        "room {room} has {shopping} fans shopping over its limit of {max} (before: {})",
        before.shopping
    );
}

#[cfg(test)]
mod tests {
    use model::{BookingState, TicketState};

    use super::*;
    use crate::ledger::rows::write;
    use crate::ledger::tests::MapRows;

    fn booking(nonce: u64, tickets: Vec<TicketId>, held_until: Millis) -> Booking {
        Booking {
            id: BookingId { event: 1, nonce },
            event: 1,
            user: 7,
            tickets,
            total_cents: 0,
            held_until,
            hold_ttl_ms: held_until - 10,
            state: BookingState::Held,
            created_at: 10,
            last_payment_error: None,
        }
    }

    #[test]
    fn a_held_booking_whose_ticket_is_not_held_by_it_stops_the_ledger() {
        let mut rows = MapRows::default();
        let held = booking(1, vec![0, 1], 100);
        write(&mut rows, keys::ticket(1, 0), &TicketState::Held { booking: held.id, until: 100 });
        write(&mut rows, keys::ticket(1, 1), &TicketState::Held { booking: held.id, until: 100 });
        assert_held(&rows, &held).unwrap();
        let other = BookingId { event: 1, nonce: 2 };
        write(&mut rows, keys::ticket(1, 1), &TicketState::Held { booking: other, until: 100 });
        let broken = std::panic::catch_unwind(|| assert_held(&rows, &held));
        assert!(broken.is_err(), "a ticket held by another booking breaks the held invariant");
    }

    #[test]
    fn taking_a_ticket_sold_to_another_booking_stops_the_ledger() {
        let mut rows = MapRows::default();
        let sold = BookingId { event: 1, nonce: 1 };
        write(&mut rows, keys::ticket(1, 3), &TicketState::Sold { booking: sold });
        assert_none_sold_to_another(&rows, sold, &[3]).unwrap();
        let thief = BookingId { event: 1, nonce: 2 };
        let broken = std::panic::catch_unwind(|| assert_none_sold_to_another(&rows, thief, &[3]));
        assert_eq!(broken.is_err(), !cfg!(feature = "chaos-skip-availability-check"));
    }

    #[test]
    fn a_released_booking_may_leave_its_seats_to_others_but_not_to_itself() {
        let mut rows = MapRows::default();
        let released = booking(1, vec![0, 1], 100);
        let other = BookingId { event: 1, nonce: 2 };
        write(&mut rows, keys::ticket(1, 0), &TicketState::Held { booking: other, until: 200 });
        assert_freed(&rows, &released, 50).unwrap();
        write(&mut rows, keys::ticket(1, 1), &TicketState::Held { booking: released.id, until: 100 });
        assert_freed(&rows, &released, 100).unwrap();
        let broken = std::panic::catch_unwind(|| assert_freed(&rows, &released, 50));
        assert!(broken.is_err(), "a live hold of the released booking breaks the freed invariant");
        write(&mut rows, keys::ticket(1, 1), &TicketState::Sold { booking: released.id });
        let sold = std::panic::catch_unwind(|| assert_freed(&rows, &released, 500));
        assert!(sold.is_err(), "a ticket sold to the released booking breaks the freed invariant");
    }

    fn after(watermark: Option<Place>, shopping: u64, shopping_max: u32) -> RoomAfter {
        RoomAfter { event: 1, watermark, shopping, shopping_max }
    }

    #[test]
    fn an_admission_that_moves_the_watermark_back_or_overfills_the_room_stops_the_ledger() {
        let place = |seq| Some(Place { class: 1, primary: 5, node: 1, seq });
        let before = RoomBefore { watermark: place(2), shopping: 1 };
        assert_admitted(&before, &after(place(3), 2, 2), 1, 1);
        let back = std::panic::catch_unwind(|| assert_admitted(&before, &after(place(1), 0, 2), 0, 1));
        assert!(back.is_err(), "a watermark moved back breaks the invariant");
        let over = std::panic::catch_unwind(|| assert_admitted(&before, &after(place(3), 3, 2), 2, 2));
        assert!(over.is_err(), "more fans shopping than the limit breaks the invariant");
        let unallowed = std::panic::catch_unwind(|| assert_admitted(&before, &after(place(3), 0, 2), 2, 1));
        assert!(unallowed.is_err(), "passing more than allowed breaks the invariant");
        // A limit lowered below the fans already shopping is waited out, not broken.
        let lowered = RoomBefore { watermark: place(2), shopping: 3 };
        assert_admitted(&lowered, &after(place(2), 3, 2), 0, 0);
    }

    #[test]
    fn a_confirmed_booking_owns_every_ticket() {
        let mut rows = MapRows::default();
        let confirmed = booking(1, vec![4], 100);
        write(&mut rows, keys::ticket(1, 4), &TicketState::Sold { booking: confirmed.id });
        assert_sold(&rows, &confirmed).unwrap();
        rows.delete(keys::ticket(1, 4));
        assert!(std::panic::catch_unwind(|| assert_sold(&rows, &confirmed)).is_err());
    }
}

//! Row keys within a group. Numbers are big endian so that keys sort by them; a key starts
//! with a one-byte tag, and `0x00` is reserved for the state machine's own metadata.
//!
//! Tags in use (a new kind of row takes a free one): `a` room's core, `b` booking, `c` counters,
//! `d` forgotten-through stamp, `e` event, `f` fan's booking, `g` room's passes, `h` booking's
//! admitted place, `i` start index, `j` node's room report, `k` idempotency key, `l` placement,
//! `m` email, `n` sold count, `o` admitted place's booking, `p` performer, `q` pending payment,
//! `r` created request, `s` seat map, `t` ticket, `u` user, `v` venue, `w` webhook, `x`
//! remembered record by stamp, `y` the tickets of an event's part this group sells, `z` an
//! event's parts (placement).

use model::room::Place;
use model::{BookingId, EventId, Millis, NodeId, TicketId};

pub const META: &[u8] = &[0x00];
pub const COUNTERS: &[u8] = b"c";

fn tagged(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    key.push(tag);
    parts.iter().for_each(|p| key.extend_from_slice(p));
    key
}

pub fn venue(id: u64) -> Vec<u8> {
    tagged(b'v', &[&id.to_be_bytes()])
}
pub fn performer(id: u64) -> Vec<u8> {
    tagged(b'p', &[&id.to_be_bytes()])
}
pub fn user(id: u64) -> Vec<u8> {
    tagged(b'u', &[&id.to_be_bytes()])
}
pub fn email(email: &str) -> Vec<u8> {
    tagged(b'm', &[email.as_bytes()])
}
/// What a catalog create made, by the request number its gateway drew: the new id.
pub fn created(request: u64) -> Vec<u8> {
    tagged(b'r', &[&request.to_be_bytes()])
}
pub fn placement(event: EventId) -> Vec<u8> {
    tagged(b'l', &[&event.to_be_bytes()])
}
/// An event's parts and their groups, in the placement group (events of one part have none).
pub fn parts(event: EventId) -> Vec<u8> {
    tagged(b'z', &[&event.to_be_bytes()])
}
/// Which of an event's tickets this inventory group sells, for an event of several parts.
pub fn part(event: EventId) -> Vec<u8> {
    tagged(b'y', &[&event.to_be_bytes()])
}
pub fn event(event: EventId) -> Vec<u8> {
    tagged(b'e', &[&event.to_be_bytes()])
}
pub fn seat_map(event: EventId) -> Vec<u8> {
    tagged(b's', &[&event.to_be_bytes()])
}
/// Index of events by start time: `i{starts_at}{event}`, empty value.
pub fn starts(starts_at: Millis, event: EventId) -> Vec<u8> {
    tagged(b'i', &[&starts_at.to_be_bytes(), &event.to_be_bytes()])
}
pub const STARTS_PREFIX: &[u8] = b"i";
pub fn event_of_starts(key: &[u8]) -> Option<EventId> {
    key.get(9..17).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}
pub fn ticket(event: EventId, ticket: TicketId) -> Vec<u8> {
    tagged(b't', &[&event.to_be_bytes(), &ticket.to_be_bytes()])
}
/// Whether `key` is a ticket row's.
pub fn is_ticket(key: &[u8]) -> bool {
    key.len() == 13 && key[0] == b't'
}
pub fn tickets_of(event: EventId) -> Vec<u8> {
    tagged(b't', &[&event.to_be_bytes()])
}
pub fn ticket_of_key(key: &[u8]) -> Option<TicketId> {
    key.get(9..13).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
}
/// The event and ticket of a ticket row's key.
pub fn event_ticket_of_key(key: &[u8]) -> Option<(EventId, TicketId)> {
    let event = u64::from_be_bytes(key.get(1..9)?.try_into().expect("8 bytes"));
    Some((event, ticket_of_key(key)?))
}
pub fn booking(id: BookingId) -> Vec<u8> {
    tagged(b'b', &[&id.event.to_be_bytes(), &id.nonce.to_be_bytes()])
}
pub fn bookings_of(event: EventId) -> Vec<u8> {
    tagged(b'b', &[&event.to_be_bytes()])
}
/// A fan's booking: `f{user}{event}{nonce}`, empty value.
pub fn fan_booking(user: u64, id: BookingId) -> Vec<u8> {
    tagged(b'f', &[&user.to_be_bytes(), &id.event.to_be_bytes(), &id.nonce.to_be_bytes()])
}
pub fn fan_bookings(user: u64) -> Vec<u8> {
    tagged(b'f', &[&user.to_be_bytes()])
}
pub fn fan_bookings_of(user: u64, event: EventId) -> Vec<u8> {
    tagged(b'f', &[&user.to_be_bytes(), &event.to_be_bytes()])
}
pub fn booking_of_fan_key(key: &[u8]) -> Option<BookingId> {
    let event = u64::from_be_bytes(key.get(9..17)?.try_into().ok()?);
    let nonce = u64::from_be_bytes(key.get(17..25)?.try_into().ok()?);
    Some(BookingId { event, nonce })
}
/// A booking waiting for its payment: `q{event}{nonce}` → since.
pub fn pending(id: BookingId) -> Vec<u8> {
    tagged(b'q', &[&id.event.to_be_bytes(), &id.nonce.to_be_bytes()])
}
pub const PENDING_PREFIX: &[u8] = b"q";
pub fn booking_of_pending_key(key: &[u8]) -> Option<BookingId> {
    let event = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
    let nonce = u64::from_be_bytes(key.get(9..17)?.try_into().ok()?);
    Some(BookingId { event, nonce })
}
/// An idempotency key of a fan: `k{user}{key}` → the first answer.
pub fn idempotency(user: u64, key: &str) -> Vec<u8> {
    tagged(b'k', &[&user.to_be_bytes(), key.as_bytes()])
}
/// How many tickets of an event are sold: `n{event}` → u32.
pub fn sold(event: EventId) -> Vec<u8> {
    tagged(b'n', &[&event.to_be_bytes()])
}
pub const EVENTS_PREFIX: &[u8] = b"e";
pub fn event_of_key(key: &[u8]) -> Option<EventId> {
    key.get(1..9).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}
/// A webhook event applied: `w{event id}` → when.
pub fn webhook(event: &str) -> Vec<u8> {
    tagged(b'w', &[event.as_bytes()])
}
/// A remembered record (an idempotency key's `k` row or a webhook's `w` row) by its stamp:
/// `x{at}{row key}`, empty value. They sort oldest first, so a prune scans from the front.
pub fn remembered(at: Millis, row: &[u8]) -> Vec<u8> {
    tagged(b'x', &[&at.to_be_bytes(), row])
}
pub const REMEMBERED_PREFIX: &[u8] = b"x";
/// The stamp and the row key of a remembered record's index key.
pub fn stamp_of_remembered_key(key: &[u8]) -> Option<(Millis, &[u8])> {
    let stamp = key.get(1..9)?;
    (key[0] == b'x' && key.len() > 9).then(|| (u64::from_be_bytes(stamp.try_into().expect("8 bytes")), &key[9..]))
}
/// The stamp through which remembered records are forgotten (a prune's cutoff; it never moves
/// back): `d` → Millis. A record at or before it is forgotten even while its row is still there.
pub const FORGOTTEN: &[u8] = b"d";
/// An event's waiting room: `a{event}` → the room's core (all but its passes and reports).
pub fn room(event: EventId) -> Vec<u8> {
    tagged(b'a', &[&event.to_be_bytes()])
}
pub const ROOMS_PREFIX: &[u8] = b"a";
/// The event of a room row's key.
pub fn event_of_room_key(key: &[u8]) -> Option<EventId> {
    (key.len() == 9 && key[0] == b'a').then(|| u64::from_be_bytes(key[1..9].try_into().expect("8 bytes")))
}
/// The passes of an event's room: `g{event}` → the ticks that moved its watermark, oldest first.
pub fn room_passes(event: EventId) -> Vec<u8> {
    tagged(b'g', &[&event.to_be_bytes()])
}
/// A node's report to an event's room: `j{event}{node}` → (the report's stamp, the report).
pub fn room_report(event: EventId, node: NodeId) -> Vec<u8> {
    tagged(b'j', &[&event.to_be_bytes(), &node.to_be_bytes()])
}
/// The prefix of every report row of an event's room (they sort by node).
pub fn room_reports(event: EventId) -> Vec<u8> {
    tagged(b'j', &[&event.to_be_bytes()])
}
/// The node of a room report row's key.
pub fn node_of_room_report_key(key: &[u8]) -> Option<NodeId> {
    (key.len() == 17 && key[0] == b'j').then(|| u64::from_be_bytes(key[9..17].try_into().expect("8 bytes")))
}
/// The booking made under an admitted place: `o{event}{place}` → the slot.
pub fn slot(event: EventId, place: &Place) -> Vec<u8> {
    tagged(b'o', &[&event.to_be_bytes(), &place.to_key_bytes()])
}
/// The place a booking was made under: `h{event}{nonce}` → the place.
pub fn admitted_booking(id: BookingId) -> Vec<u8> {
    tagged(b'h', &[&id.event.to_be_bytes(), &id.nonce.to_be_bytes()])
}

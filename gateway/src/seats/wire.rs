//! What the seat feed sends: versions, snapshots and deltas, as JSON.
//!
//! A seat is numbered by its ticket id, which is its place in the event's layout (sections,
//! rows, seats, in order). A snapshot carries two bitsets over those numbers (held, sold; a seat
//! in neither is available), base64 encoded, least significant bit first; a delta lists the
//! seats whose status changed, by their new status.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use model::{EventId, Millis, TicketId};
use serde::Serialize;

/// Where a feed is: the group's applied log index it has followed to, and the time up to which
/// it has told that holds ended (a hold ends by time alone, with no log entry). Both only grow,
/// so versions order the feed's messages; on the wire, `"{applied}.{ended_ms}"`.
///
/// An event sold by several groups is followed in each: `applied` is then the sum of their
/// applied indexes (it grows with each), and `feed` names the feed that counted it, since two
/// gateways see the groups' entries interleaved differently and the same sum means a different
/// state on each. On the wire, `"{applied}.{ended_ms}.{feed}"`; `feed` is 0 for one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Version {
    pub applied: u64,
    pub ended_ms: Millis,
    pub feed: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.applied, self.ended_ms)?;
        if self.feed != 0 {
            write!(f, ".{}", self.feed)?;
        }
        Ok(())
    }
}

/// A `Last-Event-ID` that is not a version this feed wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a seat feed version (expected applied.ended_ms, e.g. 1234.1765000000000): {0:?}")]
pub struct BadVersion(pub String);

impl FromStr for Version {
    type Err = BadVersion;

    fn from_str(text: &str) -> Result<Version, BadVersion> {
        let bad = || BadVersion(text.chars().take(64).collect());
        let mut fields = text.trim().split('.');
        let (applied, ended_ms) = (fields.next().ok_or_else(bad)?, fields.next().ok_or_else(bad)?);
        let feed = fields.next().map(|feed| feed.parse().map_err(|_| bad())).transpose()?.unwrap_or(0);
        if fields.next().is_some() {
            return Err(bad());
        }
        Ok(Version {
            applied: applied.parse().map_err(|_| bad())?,
            ended_ms: ended_ms.parse().map_err(|_| bad())?,
            feed,
        })
    }
}

/// A seat's status as the feed tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Available = 0,
    Held = 1,
    Sold = 2,
}

/// Every seat's status at a version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotView {
    pub event_id: EventId,
    pub version: String,
    pub seats: usize,
    pub available_count: u32,
    /// Bit `i` set: seat `i` is held.
    pub held: String,
    /// Bit `i` set: seat `i` is sold.
    pub sold: String,
}

impl SnapshotView {
    pub fn new(event: EventId, version: Version, statuses: &[Status], available_count: u32) -> SnapshotView {
        SnapshotView {
            event_id: event,
            version: version.to_string(),
            seats: statuses.len(),
            available_count,
            held: bitset(statuses, Status::Held),
            sold: bitset(statuses, Status::Sold),
        }
    }
}

/// The seats of `statuses` that have `status`, as base64 of a bitset.
fn bitset(statuses: &[Status], status: Status) -> String {
    let mut bytes = vec![0u8; statuses.len().div_ceil(8)];
    for (i, _) in statuses.iter().enumerate().filter(|(_, s)| **s == status) {
        bytes[i / 8] |= 1 << (i % 8);
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The seats one step of the feed changed, by their new status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeltaView {
    pub version: String,
    pub available: Vec<TicketId>,
    pub held: Vec<TicketId>,
    pub sold: Vec<TicketId>,
    pub available_count: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_and_read_back() {
        let a = Version { applied: 9, ended_ms: 500, feed: 0 };
        let b = Version { applied: 10, ended_ms: 100, feed: 0 };
        assert!(a < b, "the applied index orders first");
        assert!(a < Version { applied: 9, ended_ms: 501, feed: 0 });
        assert_eq!("9.500".parse::<Version>(), Ok(a));
        assert_eq!(a.to_string(), "9.500");
        let several = Version { applied: 31, ended_ms: 7, feed: 42 };
        assert_eq!((several.to_string(), "31.7.42".parse()), ("31.7.42".to_string(), Ok(several)));
        assert!("9".parse::<Version>().is_err());
        assert!("9.1.2.3".parse::<Version>().is_err());
        assert!("x.1".parse::<Version>().is_err());
        assert!("-1.1".parse::<Version>().is_err());
    }

    #[test]
    fn a_snapshot_sets_one_bit_per_seat_of_a_status() {
        let statuses = [
            Status::Held,
            Status::Available,
            Status::Sold,
            Status::Available,
            Status::Available,
            Status::Available,
            Status::Available,
            Status::Available,
            Status::Held,
        ];
        let view = SnapshotView::new(7, Version::default(), &statuses, 6);
        let held = base64::engine::general_purpose::STANDARD.decode(&view.held).unwrap();
        let sold = base64::engine::general_purpose::STANDARD.decode(&view.sold).unwrap();
        assert_eq!(held, vec![0b0000_0001, 0b0000_0001]);
        assert_eq!(sold, vec![0b0000_0100, 0]);
        assert_eq!(view.seats, 9);
    }
}

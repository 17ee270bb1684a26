//! The waiting room's replicated part: a place in line, the room's settings, the reports nodes
//! send about the fans they hold, and the room as its event's group keeps it.
//!
//! The group never stores one entry per waiting fan. A fan's place is printed on a ticket the
//! node signs ([`Place`]); the group keeps the settings, the admission watermark (every place at
//! or below it is admitted), counters, and one [`RoomReport`] per node. Each second every node
//! reports the front of its line and the group's leader proposes a tick; apply moves the
//! watermark over as many reported places as the rate and the shopping limit allow.

use serde::{Deserialize, Serialize};

use crate::{EventId, Millis, NodeId, UserId};

/// A place in line, compared field by field: pre-sale places (`class` 0, `primary` a draw from
/// the fan's id under the room's draw key) come before on-sale places (`class` 1, `primary` the
/// issuing node's room clock in ms when the join was read); `node` and `seq` break ties in the
/// order the node read the joins.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Place {
    pub class: u8,
    pub primary: u64,
    pub node: u16,
    pub seq: u64,
}

/// Places of fans who joined before the on-sale.
pub const CLASS_PRESALE: u8 = 0;
/// Places of fans who joined at or after the on-sale.
pub const CLASS_ONSALE: u8 = 1;

impl Place {
    /// The smallest on-sale place a node can issue at room clock `ms`: every place issued before
    /// that moment is below it.
    pub fn onsale_floor(ms: Millis) -> Place {
        Place { class: CLASS_ONSALE, primary: ms, node: 0, seq: 0 }
    }

    /// Bytes that sort like the place (for row keys).
    pub fn to_key_bytes(&self) -> [u8; 19] {
        let mut out = [0u8; 19];
        out[0] = self.class;
        out[1..9].copy_from_slice(&self.primary.to_be_bytes());
        out[9..11].copy_from_slice(&self.node.to_be_bytes());
        out[11..19].copy_from_slice(&self.seq.to_be_bytes());
        out
    }
}

/// The pre-sale draw: a fan's primary under the room's draw key. Uniform, the same on every node
/// and every rejoin, and unknowable before the draw key is revealed at the on-sale.
pub fn presale_primary(draw_key: &[u8; 16], event: EventId, fan: UserId) -> u64 {
    use std::hash::Hasher;
    let mut hasher = siphasher::sip::SipHasher24::new_with_key(draw_key);
    hasher.write(&event.to_be_bytes());
    hasher.write(&fan.to_be_bytes());
    hasher.finish()
}

/// What an operator sets on a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// Whether holds on the event need an admission token.
    pub enabled: bool,
    /// Fans who join before it are drawn in a random order; after it, first come first served.
    pub on_sale_at: Millis,
    /// Admissions per minute the room aims at.
    pub rate_per_min: u32,
    /// Most fans shopping at once (admitted, and not yet done).
    pub shopping_max: u32,
    /// How long an admission lasts if the fan holds nothing.
    pub admission_ms: u64,
    /// Proof-of-work difficulty at join, in leading zero bits.
    pub pow_bits: u8,
    /// A paused room admits nobody.
    pub paused: bool,
    /// A fan not heard from for this long is passed over when the watermark reaches them.
    pub abandon_ms: u64,
}

pub const ROOM_RATE_PER_MIN_MAX: u32 = 1_000_000;
pub const ROOM_ADMISSION_MS_MIN: u64 = 10_000;
pub const ROOM_ADMISSION_MS_MAX: u64 = 60 * 60 * 1000;
pub const ROOM_POW_BITS_MAX: u8 = 28;
pub const ROOM_ABANDON_MS_MIN: u64 = 5_000;
pub const ROOM_ABANDON_MS_MAX: u64 = 30 * 60 * 1000;
pub const ROOM_SHOPPING_MAX: u32 = 10_000_000;

impl RoomSettings {
    /// What is wrong with these settings, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.rate_per_min == 0 || self.rate_per_min > ROOM_RATE_PER_MIN_MAX {
            return Some(format!("ratePerMinute is 1 to {ROOM_RATE_PER_MIN_MAX}"));
        }
        if self.shopping_max == 0 || self.shopping_max > ROOM_SHOPPING_MAX {
            return Some(format!("shoppingMax is 1 to {ROOM_SHOPPING_MAX}"));
        }
        if !(ROOM_ADMISSION_MS_MIN..=ROOM_ADMISSION_MS_MAX).contains(&self.admission_ms) {
            return Some(format!(
                "admission lasts {} s to {} min",
                ROOM_ADMISSION_MS_MIN / 1000,
                ROOM_ADMISSION_MS_MAX / 60_000
            ));
        }
        if self.pow_bits > ROOM_POW_BITS_MAX {
            return Some(format!("powBits is 0 to {ROOM_POW_BITS_MAX}"));
        }
        if !(ROOM_ABANDON_MS_MIN..=ROOM_ABANDON_MS_MAX).contains(&self.abandon_ms) {
            return Some(format!(
                "abandon is {} s to {} min",
                ROOM_ABANDON_MS_MIN / 1000,
                ROOM_ABANDON_MS_MAX / 60_000
            ));
        }
        None
    }
}

/// Most front places one report lists: it bounds a report's size (19 bytes each) and the most
/// places one tick can pass (so the highest rate a room meters exactly is this per second).
pub const REPORT_FRONT_MAX: usize = 2_048;
/// Most quantile points a report carries for positions beyond its front.
pub const REPORT_QUANTILES_MAX: usize = 64;
/// A report older than this (by the group's stamps) is not used by a tick.
pub const REPORT_FRESH_MS: Millis = 3_000;

/// What a node tells the group about the fans it holds, once a second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomReport {
    /// Drawn at the node's start: a restarted node's reports start a new sequence.
    pub boot: u64,
    /// Increases with every report of one boot.
    pub seq: u64,
    /// The node's room clock when it built the report.
    pub clock_ms: Millis,
    /// Fans in the node's line above the watermark (connected or parked), and of them connected.
    pub live: u64,
    pub connected: u64,
    /// Every live place of the node at or below this is in `front`.
    pub complete_to: Place,
    /// The node's smallest live places above the watermark it last saw, ascending.
    pub front: Vec<Place>,
    /// `(place, live places of the node at or below it)`, ascending: positions beyond the front.
    pub quantiles: Vec<(Place, u64)>,
    /// Places this boot passed over because their fans had left (cumulative).
    pub abandoned: u64,
    /// Where fans reach the node's room: `host:port` of its QUIC endpoint.
    pub endpoint: String,
    /// The SHA-256 of the node's certificate, hex (browsers pin it).
    pub cert_sha256: String,
    /// How far the node's room clock may be from the group's, in ms.
    pub uncertainty_ms: u64,
}

/// The room of one event as its group keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    pub event: EventId,
    pub settings: RoomSettings,
    /// Secret until the on-sale (nodes need it to draw pre-sale places).
    pub draw_key: [u8; 16],
    /// The last tick applied.
    pub step: u64,
    /// Every place at or below it is admitted. Never moves back.
    pub watermark: Option<Place>,
    /// When the metering segment began, and how many it admitted since (a rate change, a pause
    /// or the on-sale starts a new one).
    pub segment_since: Millis,
    pub segment_admitted: u64,
    pub admitted_total: u64,
    /// Of them, admitted late (a fan whose place was passed while no node counted it).
    pub late_total: u64,
    /// Admissions that ended in a confirmed or released booking.
    pub done_total: u64,
    pub abandoned_total: u64,
    /// `(10-s bucket, fans whose shopping ends in it)`, ascending: fans shopping now are those
    /// in buckets after now's.
    pub ends: Vec<(u64, u64)>,
    /// Ticks that moved the watermark, oldest first, bounded by [`ROOM_PASSES_MAX`].
    pub passes: Vec<Pass>,
    /// `(node, report stamp, report)`, one per node, by node.
    pub reports: Vec<(NodeId, Millis, RoomReport)>,
    /// `(node, boot, seq)` of the report each node's count came from at the last tick.
    pub used: Vec<(NodeId, u64, u64)>,
    /// The stamp of the last tick.
    pub last_tick_at: Millis,
    /// `(node, boot, seq, granted)` of each node's last late admission, so that a retried one
    /// answers alike.
    pub late: Vec<(NodeId, u64, u64, u32)>,
}

/// Width of a bucket of shopping ends.
pub const ROOM_BUCKET_MS: Millis = 10_000;
/// Most passes kept (a tick a second: about 68 minutes, more than an admission lasts).
pub const ROOM_PASSES_MAX: usize = 4_096;

impl RoomState {
    /// Fans shopping at `at`: admitted and not done, by the end of their shopping.
    pub fn shopping(&self, at: Millis) -> u64 {
        let now = at / ROOM_BUCKET_MS;
        self.ends.iter().filter(|(bucket, _)| *bucket > now).map(|(_, n)| n).sum()
    }

    /// When the watermark first reached `place`, if it has and the pass is still remembered.
    pub fn passed_at(&self, place: &Place) -> Option<Millis> {
        self.passes.iter().find(|p| p.watermark >= *place).map(|p| p.at)
    }

    /// Admissions per minute over the minute before `at` (fewer if the room is younger), from
    /// the running totals the passes keep; `None` until ticks have passed anyone for 10 s.
    pub fn rate_achieved_per_min(&self, at: Millis) -> Option<f64> {
        let last = self.passes.last()?;
        let first = self.passes.iter().find(|p| p.at + 60_000 >= at)?;
        let before = self.passes.iter().rev().find(|p| p.at < first.at);
        let (from_at, from_total) = before.map_or((first.at, first.admitted_total), |p| (p.at, p.admitted_total));
        let span = at.saturating_sub(from_at).min(60_000);
        (span >= 10_000).then(|| (last.admitted_total - from_total) as f64 * 60_000.0 / span as f64)
    }

    pub fn report_of(&self, node: NodeId) -> Option<&(NodeId, Millis, RoomReport)> {
        self.reports.iter().find(|(n, _, _)| *n == node)
    }
}

/// A tick that moved the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pass {
    /// The tick's stamp.
    pub at: Millis,
    pub watermark: Place,
    /// `admitted_total` after the tick.
    pub admitted_total: u64,
}

/// An admission a hold presents: checked by the gateway (signature) and again by apply (event,
/// fan, expiry; one booking per place).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    pub place: Place,
    pub user: UserId,
    /// When the admission ends.
    pub expires_at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presale_places_come_before_onsale_places() {
        let pre = Place { class: CLASS_PRESALE, primary: u64::MAX, node: 9, seq: 9 };
        assert!(pre < Place::onsale_floor(0));
        let a = Place { class: CLASS_ONSALE, primary: 5, node: 2, seq: 0 };
        let b = Place { class: CLASS_ONSALE, primary: 6, node: 1, seq: 0 };
        assert!(a < b, "an earlier clock comes first whatever the node");
        assert!(a.to_key_bytes() < b.to_key_bytes(), "key bytes sort like places");
    }

    #[test]
    fn the_draw_depends_on_key_event_and_fan() {
        let key = [7u8; 16];
        assert_eq!(presale_primary(&key, 1, 2), presale_primary(&key, 1, 2));
        assert_ne!(presale_primary(&key, 1, 2), presale_primary(&key, 1, 3));
        assert_ne!(presale_primary(&key, 1, 2), presale_primary(&[8u8; 16], 1, 2));
    }
}

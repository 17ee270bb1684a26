//! The time a leader stamps on an entry (design rule 2).
//!
//! The stamp is the node's wall clock made monotonic for the group: never below the last stamp
//! this node gave the group nor below the time of the last applied entry, whoever proposed it.
//! Apply clamps once more (`max(stamp, last applied)`), so time in a group never runs backwards
//! even across leaders with skewed clocks. A skewed clock can only move when holds end.

use std::sync::atomic::{AtomicU64, Ordering};

use model::Millis;

#[derive(Debug, Default)]
pub struct GroupClock {
    /// The last stamp handed out by this node for this group.
    last: AtomicU64,
}

impl GroupClock {
    /// The stamp for the next proposal: `max(now, last stamp, last applied)`.
    pub fn stamp(&self, now: Millis, last_applied_at: Millis) -> Millis {
        let floor = now.max(last_applied_at);
        let previous = self.last.fetch_max(floor, Ordering::AcqRel);
        floor.max(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_never_go_backwards() {
        let clock = GroupClock::default();
        assert_eq!(clock.stamp(100, 0), 100);
        assert_eq!(clock.stamp(90, 0), 100, "a clock that stepped back does not move the stamp back");
        assert_eq!(clock.stamp(95, 120), 120, "nor below what the group already applied");
        assert_eq!(clock.stamp(130, 120), 130);
    }
}

/// The node's wall clock, with an offset that tests may change (clock skew).
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl Clock {
    pub fn new(offset_ms: i64) -> Clock {
        Clock { offset_ms: std::sync::atomic::AtomicI64::new(offset_ms) }
    }

    /// Milliseconds since the Unix epoch, offset.
    pub fn now_ms(&self) -> Millis {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        (now + self.offset_ms.load(Ordering::Relaxed)).max(0) as Millis
    }

    pub fn set_offset(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }
}

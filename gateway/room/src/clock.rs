//! How far this node's clock is from the others', measured through the group's stamps.
//!
//! On-sale places are the issuing node's clock in ms, so first-come-first-served across nodes is
//! as good as the nodes' clocks agree. Every report is a sample: the node notes its clock before
//! the write (`sent`) and after the answer (`received`), and the answer carries the stamp `at` the
//! leader gave the entry; `at - (sent + received) / 2` is the node's offset to the leader's clock,
//! within `(received - sent) / 2`. Each report also carries `clock_ms` and is stored with its
//! stamp, so every node sees every other node's offset to the same leader. A node's **skew** is
//! its offset's distance from the median of all nodes' offsets (a skewed leader shifts them all
//! alike and cancels out); its **uncertainty** adds the sample's half round trip. A node whose
//! uncertainty is over [`ISSUE_UNCERTAINTY_MS_MAX`] issues no on-sale place: it sends fans to a
//! node that agrees with the others.

use std::collections::VecDeque;

use model::room::RoomState;
use model::Millis;

/// Samples kept; the one with the smallest round trip is used.
const SAMPLES_MAX: usize = 8;
/// A node this far from the others (or this unsure) does not issue on-sale places: two fans
/// whose joins are further apart than 1 ms plus both nodes' uncertainties are never reordered,
/// and with both under this bound that is under 100 ms.
pub const ISSUE_UNCERTAINTY_MS_MAX: u64 = 49;

#[derive(Debug, Clone, Copy)]
struct Sample {
    offset_ms: i64,
    half_round_trip_ms: u64,
}

#[derive(Debug, Default)]
pub struct Clock {
    samples: VecDeque<Sample>,
}

impl Clock {
    /// Notes a report's round trip and the stamp it got.
    pub fn sample(&mut self, sent: Millis, received: Millis, at: Millis) {
        let middle = (sent + received) / 2;
        let sample =
            Sample { offset_ms: at as i64 - middle as i64, half_round_trip_ms: received.saturating_sub(sent) / 2 };
        self.samples.push_back(sample);
        while self.samples.len() > SAMPLES_MAX {
            self.samples.pop_front();
        }
    }

    fn best(&self) -> Option<Sample> {
        self.samples.iter().min_by_key(|s| s.half_round_trip_ms).copied()
    }

    /// This node's uncertainty against the others, in ms; `None` before the first sample.
    pub fn uncertainty_ms(&self, room: &RoomState, node: model::NodeId) -> Option<u64> {
        let best = self.best()?;
        let mut offsets: Vec<i64> = room
            .reports
            .iter()
            .filter(|(n, _, _)| *n != node)
            .map(|(_, at, report)| *at as i64 - report.clock_ms as i64)
            .collect();
        offsets.push(best.offset_ms);
        offsets.sort_unstable();
        let median = offsets[offsets.len() / 2];
        Some(best.offset_ms.abs_diff(median) + best.half_round_trip_ms)
    }
}

#[cfg(test)]
mod tests {
    use model::room::{Place, RoomReport, RoomSettings};

    use super::*;

    fn room(offsets: &[(u64, i64)]) -> RoomState {
        let reports = offsets
            .iter()
            .map(|(node, offset)| {
                let clock_ms = 1_000_000u64;
                let report = RoomReport {
                    boot: 1,
                    seq: 1,
                    clock_ms,
                    live: 0,
                    connected: 0,
                    complete_to: Place::onsale_floor(clock_ms),
                    front: vec![],
                    quantiles: vec![],
                    abandoned: 0,
                    endpoint: String::new(),
                    cert_sha256: String::new(),
                    uncertainty_ms: 0,
                };
                (*node, (clock_ms as i64 + offset) as u64, report)
            })
            .collect();
        let settings = RoomSettings {
            enabled: true,
            on_sale_at: 0,
            rate_per_min: 60,
            shopping_max: 10,
            admission_ms: 60_000,
            pow_bits: 0,
            paused: false,
            abandon_ms: 60_000,
        };
        RoomState {
            event: 1,
            settings,
            draw_key: [0; 16],
            step: 0,
            watermark: None,
            segment_since: 0,
            segment_admitted: 0,
            admitted_total: 0,
            late_total: 0,
            done_total: 0,
            abandoned_total: 0,
            ends: vec![],
            passes: vec![],
            reports,
            used: vec![],
            last_tick_at: 0,
            late: vec![],
        }
    }

    #[test]
    fn a_node_that_agrees_with_the_others_is_sure_of_itself() {
        let mut clock = Clock::default();
        clock.sample(1_000, 1_004, 1_002 + 5_000);
        // The leader is 5 s ahead of everyone: every node sees the same offset, so none is skewed.
        let uncertainty = clock.uncertainty_ms(&room(&[(2, 5_001), (3, 4_999)]), 1).unwrap();
        assert!(uncertainty <= 3, "{uncertainty} ms");
    }

    #[test]
    fn a_skewed_node_knows_it() {
        let mut clock = Clock::default();
        clock.sample(1_000, 1_004, 1_002 - 300);
        let uncertainty = clock.uncertainty_ms(&room(&[(2, 0), (3, 1)]), 1).unwrap();
        assert!(uncertainty > ISSUE_UNCERTAINTY_MS_MAX, "{uncertainty} ms");
    }

    #[test]
    fn the_sample_with_the_shortest_round_trip_wins() {
        let mut clock = Clock::default();
        clock.sample(0, 400, 200 + 100);
        clock.sample(1_000, 1_002, 1_001);
        let uncertainty = clock.uncertainty_ms(&room(&[(2, 0)]), 1).unwrap();
        assert!(uncertainty <= 1, "{uncertainty} ms");
    }
}

//! One event's line on this node: the places of the fans this node holds, in order, and what the
//! node reports of them to the event's group.
//!
//! A waiter is live while connected (its connection's transport tells a fan who is gone from one
//! who is quiet), or parked until its return time, and for `abandon_ms` after either; then it is dropped (and, if the watermark had not reached it yet,
//! counted as abandoned). Positions combine the exact count of this node's places ahead with the
//! other nodes' reports (exact over their fronts, interpolated beyond).

use std::collections::{BTreeMap, HashMap, VecDeque};

use model::room::{Place, RoomReport, RoomState, REPORT_FRONT_MAX, REPORT_QUANTILES_MAX};
use model::{Millis, NodeId, UserId};

use crate::session::SessionId;

/// Reports remembered, to tell which places a tick counted.
const REPORTS_REMEMBERED_MAX: usize = 8;

/// A fan waiting (or admitted and not yet gone) on this node.
#[derive(Debug, Clone)]
pub struct Waiter {
    pub fan: UserId,
    /// The session that listens for the fan now, if connected.
    pub session: Option<SessionId>,
    /// Until when the fan counts as live without a connection: moved on when its connection ends
    /// (and by heartbeats); a connected fan is live whatever it says.
    pub live_until: Millis,
    /// The admission given, once the watermark passed the place: `(token, expires at)`.
    pub admitted: Option<(String, Millis)>,
    /// Passed by the watermark but not counted by a tick of this node: waits for a late
    /// admission within the shopping limit.
    pub late: bool,
    /// Position last pushed, and when: pushes go out when it moves noticeably or every 5 s.
    pub pushed_ahead: Option<u64>,
    pub pushed_at: Millis,
}

/// What became of the waiters a sweep dropped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Dropped before the watermark reached them.
    pub abandoned: u64,
    /// Admitted, and their admission ended.
    pub expired: u64,
}

#[derive(Debug, Default)]
pub struct Line {
    pub waiters: BTreeMap<Place, Waiter>,
    /// One place per fan on this node: a fan joining again gets the same ticket.
    pub by_fan: HashMap<UserId, Place>,
    /// On-sale places issued: the per-node sequence that breaks ties within a millisecond.
    pub issued: u64,
    /// `(seq, front)` of recent reports: a fan was counted by a tick if its place was in the
    /// front of the report the tick used.
    reports: VecDeque<(u64, Vec<Place>)>,
    pub report_seq: u64,
    /// Places dropped unadmitted (cumulative for this boot).
    pub abandoned: u64,
}

impl Line {
    /// Adds (or refreshes) a fan's place; returns whether it was new on this node.
    pub fn insert(&mut self, place: Place, fan: UserId, live_until: Millis) -> bool {
        self.by_fan.insert(fan, place);
        match self.waiters.get_mut(&place) {
            Some(waiter) => {
                waiter.live_until = waiter.live_until.max(live_until);
                false
            }
            None => {
                let waiter = Waiter {
                    fan,
                    session: None,
                    live_until,
                    admitted: None,
                    late: false,
                    pushed_ahead: None,
                    pushed_at: 0,
                };
                self.waiters.insert(place, waiter);
                true
            }
        }
    }

    /// Drops waiters whose liveness ran out (unadmitted ones above the watermark count as
    /// abandoned) and admitted ones whose admission ended.
    pub fn sweep(&mut self, now: Millis, watermark: Option<Place>) -> Swept {
        let mut swept = Swept::default();
        let mut gone = Vec::new();
        for (place, waiter) in &self.waiters {
            // A connected fan is there: QUIC's idle timeout (every waiting fan gets a position at
            // least every 5 s, which it must acknowledge) and a failed write on an event stream
            // end the session of one who is gone, and its countdown starts then.
            let over = match &waiter.admitted {
                Some((_, expires_at)) => *expires_at <= now,
                None => waiter.session.is_none() && waiter.live_until <= now,
            };
            if over {
                gone.push(*place);
                match waiter.admitted {
                    Some(_) => swept.expired += 1,
                    None if watermark.is_none_or(|w| *place > w) => swept.abandoned += 1,
                    None => {}
                }
            }
        }
        for place in gone {
            if let Some(waiter) = self.waiters.remove(&place) {
                if self.by_fan.get(&waiter.fan) == Some(&place) {
                    self.by_fan.remove(&waiter.fan);
                }
            }
        }
        self.abandoned += swept.abandoned;
        swept
    }

    /// The report of this line: its front above `watermark`, quantiles beyond, counts.
    pub fn report(&mut self, watermark: Option<Place>, clock_ms: Millis, boot: u64) -> RoomReport {
        let above: Vec<(&Place, &Waiter)> = match watermark {
            Some(w) => self.waiters.range((std::ops::Bound::Excluded(w), std::ops::Bound::Unbounded)).collect(),
            None => self.waiters.iter().collect(),
        };
        let live = above.len() as u64;
        let connected = above.iter().filter(|(_, w)| w.session.is_some()).count() as u64;
        let front: Vec<Place> = above.iter().take(REPORT_FRONT_MAX).map(|(p, _)| **p).collect();
        // New on-sale places are issued at or after `clock_ms`: every place below that floor is
        // known now, so the report is complete up to the floor, or up to its last listed place if
        // the front is cut.
        let floor = Place::onsale_floor(clock_ms);
        let complete_to =
            if above.len() > front.len() { *front.last().expect("a cut front is not empty") } else { floor };
        let complete_to = complete_to.min(floor);
        let quantiles = quantiles(&above);
        self.report_seq += 1;
        self.reports.push_back((self.report_seq, front.clone()));
        while self.reports.len() > REPORTS_REMEMBERED_MAX {
            self.reports.pop_front();
        }
        RoomReport {
            boot,
            seq: self.report_seq,
            clock_ms,
            live,
            connected,
            complete_to,
            front,
            quantiles,
            abandoned: self.abandoned,
            endpoint: String::new(),
            cert_sha256: String::new(),
            uncertainty_ms: 0,
        }
    }

    /// Drops a place (its fan is told why by the caller).
    pub fn forget(&mut self, place: &Place) {
        if let Some(waiter) = self.waiters.remove(place) {
            if self.by_fan.get(&waiter.fan) == Some(place) {
                self.by_fan.remove(&waiter.fan);
            }
        }
    }

    /// Whether the tick that used report `seq` counted `place`.
    pub fn counted(&self, seq: u64, place: &Place) -> bool {
        self.reports.iter().find(|(s, _)| *s == seq).is_some_and(|(_, front)| front.binary_search(place).is_ok())
    }
}

/// Up to [`REPORT_QUANTILES_MAX`] points `(place, places at or below it)`, evenly spread.
fn quantiles(above: &[(&Place, &Waiter)]) -> Vec<(Place, u64)> {
    if above.is_empty() {
        return Vec::new();
    }
    let step = above.len().div_ceil(REPORT_QUANTILES_MAX).max(1);
    let mut points: Vec<(Place, u64)> =
        (step - 1..above.len()).step_by(step).map(|i| (*above[i].0, i as u64 + 1)).collect();
    if points.last().map(|(_, n)| *n) != Some(above.len() as u64) {
        points.push((*above[above.len() - 1].0, above.len() as u64));
    }
    points.truncate(REPORT_QUANTILES_MAX + 1);
    points
}

/// How many of a node's live places its report puts below `place`: exact within the front,
/// interpolated between quantile points beyond it.
pub fn ahead_in_report(report: &RoomReport, place: &Place) -> u64 {
    let in_front = report.front.partition_point(|p| p < place) as u64;
    if in_front < report.front.len() as u64 || report.live <= report.front.len() as u64 {
        return in_front;
    }
    let index = report.quantiles.partition_point(|(p, _)| p < place);
    let below = if index == 0 { 0 } else { report.quantiles[index - 1].1 };
    let Some((_, upto)) = report.quantiles.get(index) else { return report.live };
    // Halfway into the quantile's span: the error is at most half a span (1/128 of the line).
    (below + (upto - below) / 2).max(in_front)
}

/// Fans ahead of `place` in the whole room: `local_ahead` counted by the caller on its own node
/// (`node`, whose report is then left out), and by the fresh reports of the others.
pub fn ahead_in_room(
    room: &RoomState,
    node: Option<NodeId>,
    place: &Place,
    local_ahead: u64,
    fresh_after: Millis,
) -> u64 {
    let others: u64 = room
        .reports
        .iter()
        .filter(|(n, at, _)| Some(*n) != node && *at >= fresh_after)
        .map(|(_, _, report)| ahead_in_report(report, place))
        .sum();
    local_ahead + others
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onsale(ms: u64, seq: u64) -> Place {
        Place { class: 1, primary: ms, node: 1, seq }
    }

    #[test]
    fn a_report_lists_the_front_and_says_how_far_it_is_complete() {
        let mut line = Line::default();
        for i in 0..10 {
            line.insert(onsale(100 + i, i), i, 10_000);
        }
        let report = line.report(Some(onsale(102, 2)), 200, 7);
        assert_eq!(report.live, 7, "places above the watermark");
        assert_eq!(report.front.first(), Some(&onsale(103, 3)));
        assert_eq!(report.complete_to, Place::onsale_floor(200), "all listed: complete to the clock");
        assert!(line.counted(report.seq, &onsale(105, 5)));
        assert!(!line.counted(report.seq, &onsale(101, 1)), "below the watermark: not in the front");
    }

    #[test]
    fn a_cut_front_is_complete_only_to_its_last_place() {
        let mut line = Line::default();
        let n = REPORT_FRONT_MAX as u64 + 10;
        for i in 0..n {
            line.insert(onsale(100 + i, i), i, 10_000);
        }
        let report = line.report(None, 1_000_000, 7);
        assert_eq!(report.front.len(), REPORT_FRONT_MAX);
        assert_eq!(report.complete_to, *report.front.last().unwrap());
        assert_eq!(report.quantiles.last().unwrap().1, n);
        let far = onsale(100 + n - 1, n - 1);
        let ahead = ahead_in_report(&report, &far);
        assert!(ahead.abs_diff(n - 1) <= n / 64, "{ahead} ahead of the last, {} really", n - 1);
    }

    #[test]
    fn sweeping_drops_the_silent_and_counts_them_once() {
        let mut line = Line::default();
        line.insert(onsale(1, 0), 1, 100);
        line.insert(onsale(2, 1), 2, 100);
        line.insert(onsale(3, 2), 3, 1_000);
        let swept = line.sweep(500, Some(onsale(1, 0)));
        assert_eq!(swept, Swept { abandoned: 1, expired: 0 }, "the passed one is not abandoned");
        assert_eq!(line.waiters.len(), 1);
        assert!(!line.by_fan.contains_key(&2));
        line.insert(onsale(3, 2), 3, 6_000);
        assert_eq!(line.sweep(5_000, None), Swept::default(), "a fan heard from stays");
        assert_eq!(line.sweep(6_000, None), Swept { abandoned: 1, expired: 0 });
    }

    #[test]
    fn a_connected_fan_stays_however_quiet_and_a_disconnected_one_goes_after_its_time() {
        let mut line = Line::default();
        line.insert(onsale(1, 0), 1, 100);
        line.waiters.get_mut(&onsale(1, 0)).unwrap().session = Some(7);
        assert_eq!(line.sweep(10_000, None), Swept::default(), "connected, never heard from");
        let waiter = line.waiters.get_mut(&onsale(1, 0)).unwrap();
        waiter.session = None;
        waiter.live_until = 15_000;
        assert_eq!(line.sweep(14_999, None), Swept::default(), "gone, within its time");
        assert_eq!(line.sweep(15_000, None), Swept { abandoned: 1, expired: 0 });
    }

    #[test]
    fn one_fan_keeps_one_place() {
        let mut line = Line::default();
        assert!(line.insert(onsale(1, 0), 5, 100));
        assert!(!line.insert(onsale(1, 0), 5, 900));
        assert_eq!(line.waiters[&onsale(1, 0)].live_until, 900);
        assert_eq!(line.by_fan[&5], onsale(1, 0));
    }
}

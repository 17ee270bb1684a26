//! What the history checker found: one [`Check`] per invariant with its verdict and the
//! violations that broke it, and counts of what the history holds. It is JSON for tools
//! (`serde`) and a short text for people ([`fmt::Display`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How many violations of one check the text summary shows; the JSON has them all.
pub const VIOLATIONS_SHOWN: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub checks: Vec<Check>,
    pub counts: Counts,
}

/// One invariant, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    /// The rule, as checked.
    pub description: String,
    pub verdict: Verdict,
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

/// One thing that broke an invariant, and what it involves.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// Says what went wrong, naming the ids below.
    pub message: String,
    /// Ids of the history entries involved.
    pub entries: Vec<u64>,
    pub bookings: Vec<String>,
    /// The event whose `tickets` are meant, if tickets are involved.
    pub event: Option<u64>,
    pub tickets: Vec<u32>,
}

/// What the history holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Requests by op (`hold`, `release`, `pay`, `read`) and how they were answered.
    pub requests: BTreeMap<String, Answers>,
    /// Writes answered `Unknown`, by op, and whether the final state shows they took effect.
    pub unknown: BTreeMap<String, Resolution>,
    /// What the waiting room's history holds, by kind (`tickets`, `admissions`, `samples`, …):
    /// empty when the run had no room.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub room: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answers {
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    pub applied: u64,
    pub not_applied: u64,
    /// The final state cannot tell (the booking is missing, or another request may have made
    /// the change).
    pub unresolvable: u64,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.verdict == Verdict::Pass)
    }

    /// The check of that name, if there is one.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Names of the checks that failed, in report order.
    pub fn failed(&self) -> Vec<&str> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail).map(|c| c.name.as_str()).collect()
    }
}

impl Check {
    /// A check fails exactly when it has violations.
    pub fn new(name: &str, description: &str, violations: Vec<Violation>) -> Self {
        let verdict = if violations.is_empty() { Verdict::Pass } else { Verdict::Fail };
        Check { name: name.into(), description: description.into(), verdict, violations }
    }
}

impl Violation {
    pub fn new(message: impl Into<String>) -> Self {
        Violation { message: message.into(), ..Violation::default() }
    }

    pub fn entries(mut self, entries: impl IntoIterator<Item = u64>) -> Self {
        self.entries.extend(entries);
        self.entries.sort_unstable();
        self.entries.dedup();
        self
    }

    pub fn bookings<S: Into<String>>(mut self, bookings: impl IntoIterator<Item = S>) -> Self {
        self.bookings.extend(bookings.into_iter().map(Into::into));
        self.bookings.sort_unstable();
        self.bookings.dedup();
        self
    }

    pub fn tickets(mut self, event: u64, tickets: impl IntoIterator<Item = u32>) -> Self {
        self.event = Some(event);
        self.tickets.extend(tickets);
        self.tickets.sort_unstable();
        self.tickets.dedup();
        self
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failed().len();
        match failed {
            0 => writeln!(f, "history check: ok ({} checks passed)", self.checks.len())?,
            n => writeln!(f, "history check: FAILED ({n} of {} checks failed)", self.checks.len())?,
        }
        write!(f, "{}", self.counts)?;
        self.checks.iter().try_for_each(|c| write!(f, "{c}"))
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let requests: Vec<String> = self
            .requests
            .iter()
            .map(|(op, a)| {
                format!("{op} {} (ok {}, fail {}, unknown {})", a.ok + a.fail + a.unknown, a.ok, a.fail, a.unknown)
            })
            .collect();
        writeln!(f, "requests: {}", if requests.is_empty() { "none".into() } else { requests.join("; ") })?;
        let unknown: Vec<String> = self
            .unknown
            .iter()
            .map(|(op, r)| {
                format!("{op}: {} applied, {} not applied, {} unresolvable", r.applied, r.not_applied, r.unresolvable)
            })
            .collect();
        if !unknown.is_empty() {
            writeln!(f, "unknown writes: {}", unknown.join("; "))?;
        }
        if !self.room.is_empty() {
            let room: Vec<String> = self.room.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
            writeln!(f, "waiting room: {}", room.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.verdict {
            Verdict::Pass => return writeln!(f, "  pass  {}", self.name),
            Verdict::Fail => writeln!(f, "  FAIL  {}: {} violation(s)", self.name, self.violations.len())?,
        }
        writeln!(f, "        rule: {}", self.description)?;
        for violation in self.violations.iter().take(VIOLATIONS_SHOWN) {
            writeln!(f, "        - {}", violation.message)?;
        }
        match self.violations.len().saturating_sub(VIOLATIONS_SHOWN) {
            0 => Ok(()),
            more => writeln!(f, "        ... and {more} more"),
        }
    }
}

//! What a group remembers for a while so that a retry is answered alike, and how it forgets.
//!
//! Rows (keys in [`crate::ledger::keys`]):
//! - `k{user}{key}`: the first answer given under a fan's `Idempotency-Key`;
//! - `w{provider event}`: a webhook event applied (its stamp);
//! - `x{at}{row key}`: each of those by the stamp it was written at, oldest first;
//! - `d`: the stamp through which records are forgotten.
//!
//! A record is remembered while it is younger than the window: `Prune { window_ms }` forgets
//! the records stamped at or before `entry stamp - window_ms` (the group's time, never a
//! replica's clock), at most `records_max` of them per command, by scanning the `x` index from
//! the front; it also moves `d` up to that cutoff, so that a record the bound left for the next
//! prune already reads as forgotten. A record is also forgotten once it is
//! `IDEMPOTENCY_WINDOW_HARD_MAX_MS` old, prune or not. A prune applied again (a write the router
//! retried) forgets the next records due, if its bound left any: all of them are past their
//! window, so nothing a retry could still ask for.
//!
//! Rows written before the `x` index existed have no index row: a prune never finds them, they
//! read as forgotten once `d` passes their stamp, and they are indexed when their key (or event
//! id) is used again and they are written anew. Nothing else removes them.

use model::{Idempotency, Millis, Outcome, IDEMPOTENCY_WINDOW_HARD_MAX_MS, IDEMPOTENCY_WINDOW_MIN_MS};
use serde::{Deserialize, Serialize};

use crate::ledger::keys;
use crate::ledger::rows::{decode, encode, read, write, Fault, Rows};

/// The first answer given under an idempotency key.
#[derive(Debug, Serialize, Deserialize)]
struct Remembered {
    fingerprint: u64,
    outcome: Outcome,
    at: Millis,
}

/// Whether a record stamped `stamp` is forgotten at `at`.
fn forgotten(rows: &impl Rows, stamp: Millis, at: Millis) -> Result<bool, Fault> {
    let through: Option<Millis> = read(rows, keys::FORGOTTEN)?;
    Ok(at >= stamp.saturating_add(IDEMPOTENCY_WINDOW_HARD_MAX_MS) || through.is_some_and(|t| stamp <= t))
}

/// Writes a record's row and its index row.
fn keep(rows: &mut impl Rows, key: Vec<u8>, value: Vec<u8>, at: Millis) {
    rows.put(keys::remembered(at, &key), Vec::new());
    rows.put(key, value);
}

/// The answer remembered under `key`, if it is still remembered: the same request gets it
/// again, another request is refused. The room asks too, before it refuses a retried hold whose
/// place a first attempt (under another booking id) already spent.
pub fn remembered(
    rows: &impl Rows,
    user: u64,
    key: Option<&Idempotency>,
    at: Millis,
) -> Result<Option<Outcome>, Fault> {
    let Some(key) = key else { return Ok(None) };
    let Some(record) = read::<Remembered, _>(rows, &keys::idempotency(user, &key.key))? else { return Ok(None) };
    if forgotten(rows, record.at, at)? {
        return Ok(None);
    }
    Ok(Some(if record.fingerprint == key.fingerprint { record.outcome } else { Outcome::IdempotencyMismatch }))
}

/// Remembers the first answer under `key` (called only when [`remembered`] had none).
pub fn remember(rows: &mut impl Rows, user: u64, key: Option<&Idempotency>, at: Millis, outcome: &Outcome) {
    if let Some(key) = key {
        let record = Remembered { fingerprint: key.fingerprint, outcome: outcome.clone(), at };
        keep(rows, keys::idempotency(user, &key.key), encode(&record), at);
    }
}

/// A webhook event applied once: `None` to go on (the event is now remembered), the answer if
/// it was applied before.
pub fn first_time(rows: &mut impl Rows, at: Millis, event: Option<&str>) -> Result<Option<Outcome>, Fault> {
    let Some(event) = event else { return Ok(None) };
    let key = keys::webhook(event);
    if let Some(seen) = read::<Millis, _>(rows, &key)? {
        if !forgotten(rows, seen, at)? {
            return Ok(Some(Outcome::AlreadyApplied));
        }
    }
    keep(rows, key, encode(&at), at);
    Ok(None)
}

/// The stamp a remembered row was written at, read from its value.
fn stamp_of(key: &[u8], value: &[u8]) -> Result<Millis, Fault> {
    match key.first() {
        Some(b'k') => Ok(decode::<Remembered>(key, value)?.at),
        Some(b'w') => decode::<Millis>(key, value),
        _ => Err(Fault::corrupt(key, "an index row names a row that is not remembered")),
    }
}

/// Forgets the records stamped at or before `at - window_ms`, oldest first, at most
/// `records_max`.
pub fn prune(rows: &mut impl Rows, at: Millis, window_ms: u64, records_max: u32) -> Result<Outcome, Fault> {
    if !(IDEMPOTENCY_WINDOW_MIN_MS..=IDEMPOTENCY_WINDOW_HARD_MAX_MS).contains(&window_ms) {
        let (min, max) = (IDEMPOTENCY_WINDOW_MIN_MS, IDEMPOTENCY_WINDOW_HARD_MAX_MS);
        return Ok(Outcome::Rejected(format!("a prune's window is {min} to {max} ms")));
    }
    if records_max == 0 || records_max > model::PRUNE_RECORDS_HARD_MAX {
        return Ok(Outcome::Rejected(format!("a prune forgets 1 to {} records", model::PRUNE_RECORDS_HARD_MAX)));
    }
    let cutoff = at.saturating_sub(window_ms);
    let through: Option<Millis> = read(rows, keys::FORGOTTEN)?;
    if through.is_none_or(|t| cutoff > t) {
        write(rows, keys::FORGOTTEN.to_vec(), &cutoff);
    }
    // One more than the bound, to tell whether more are due.
    let index = rows.scan(keys::REMEMBERED_PREFIX, records_max as usize + 1)?;
    let mut due = Vec::with_capacity(index.len());
    for (key, _) in index {
        let (stamp, _) = keys::stamp_of_remembered_key(&key).ok_or_else(|| Fault::corrupt(&key, "short index key"))?;
        if stamp > cutoff {
            break;
        }
        due.push((key, stamp));
    }
    let more = due.len() > records_max as usize;
    due.truncate(records_max as usize);
    for (index_key, stamp) in &due {
        forget(rows, index_key, *stamp)?;
    }
    Ok(Outcome::Pruned { records: due.len() as u32, more })
}

/// Removes one index row, and the row it names if that row is still the one written at its
/// stamp (a key used again after it was forgotten was written anew, under a later index row).
fn forget(rows: &mut impl Rows, index_key: &[u8], stamp: Millis) -> Result<(), Fault> {
    let (_, row) = keys::stamp_of_remembered_key(index_key).expect("checked by the caller");
    let row = row.to_vec();
    if let Some(value) = rows.get(&row)? {
        if stamp_of(&row, &value)? == stamp {
            rows.delete(row);
        }
    }
    rows.delete(index_key.to_vec());
    Ok(())
}

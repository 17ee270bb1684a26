//! One group's state machine on RocksDB: apply, snapshots, and the reader that answers queries.
//!
//! Apply runs the [`ledger`] over an overlay of the group's rows, then writes every changed row
//! and the new last-applied id in one atomic write batch: the rows never run ahead of or behind
//! the id that says which entries they include. That write is not synced on its own: the log is,
//! and every later synced log write syncs the WAL before it, so a crash loses at most applies
//! that raft replays from the log.
//!
//! A snapshot is every row of the group read from one RocksDB snapshot (so rows and meta agree),
//! serialized whole; it is kept in the `snap` family so that it survives a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use model::{EventId, EventParts, Millis, Outcomes, Placement, Query, QueryResult};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, StorageIOError};
use raft::types::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership};
use raft::{ErrorKind, SeamError, StateReader, TypeConfig};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};

use crate::db::{self, cf, CF_SM, CF_SNAP};
use crate::ledger::{self, keys, Fault, Meta, RawRow, Rows};

/// The event whose searchable facts an outcome changed, if any.
fn searchable_change(outcome: &model::Outcome) -> Option<EventId> {
    match outcome {
        model::Outcome::EventCreated(event) => Some(event.id),
        model::Outcome::Confirmed(booking) => Some(booking.event),
        model::Outcome::Updated(booking) if matches!(booking.state, model::BookingState::Refunded { .. }) => {
            Some(booking.event)
        }
        _ => None,
    }
}

/// Events whose seat map apply keeps decoded; the cache is dropped whole when full.
const EVENT_CACHE_EVENTS_MAX: usize = 1_024;
/// A row's key (without the group prefix) and its value, `None` for no row.
type RowChange = (Vec<u8>, Option<Vec<u8>>);

/// Ticket rows a group keeps in memory (about 100 bytes each); dropped whole when full.
const TICKET_CACHE_ROWS_MAX: usize = 262_144;

/// An event's seat map, the price of each ticket, and the tickets this group sells of it,
/// decoded (all three are written together and never change).
struct EventInfo {
    map: Arc<model::SeatMap>,
    prices: Arc<Vec<u64>>,
    part: Option<std::ops::Range<model::TicketId>>,
}

/// Events whose searchable facts changed in a group: created, or tickets sold or refunded. The
/// node's search index follows this stream (the apply stream); when it overflows, the group is
/// marked lost ([`Changes::take_lost`]) and the index rebuilds it from the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub group: u32,
    /// The applied log index after this apply: every apply sends one, with or without events.
    pub applied: u64,
    pub events: Vec<EventId>,
}

/// Seat changes a watcher of the node's replicas may fall behind by before it is told it lagged
/// (and reads its events again).
pub const SEAT_CHANGES_QUEUED_MAX: usize = 4_096;

/// The way changes leave the node's state machines.
pub struct Changes {
    sender: tokio::sync::mpsc::Sender<Change>,
    /// Every apply that wrote ticket rows, for the gateway's seat feeds (nothing is built when
    /// no one watches).
    seats: tokio::sync::broadcast::Sender<Arc<model::SeatChanges>>,
    /// Groups whose changes were dropped (or replaced by a snapshot): rebuild them whole.
    dirty: Mutex<std::collections::BTreeSet<u32>>,
    /// Each group's applied index when its state machine opened: every change after it comes
    /// through the stream, so an index recorded at exactly this point is current.
    opened: Mutex<std::collections::BTreeMap<u32, u64>>,
}

impl Changes {
    /// The sending side of a change stream, and the stream.
    pub fn channel(changes_queued_max: usize) -> (Changes, tokio::sync::mpsc::Receiver<Change>) {
        let (sender, receiver) = tokio::sync::mpsc::channel(changes_queued_max);
        let (seats, _) = tokio::sync::broadcast::channel(SEAT_CHANGES_QUEUED_MAX);
        (Changes { sender, seats, dirty: Mutex::default(), opened: Mutex::default() }, receiver)
    }

    /// Every later apply's ticket rows, of every group of this node, in each group's log order.
    pub fn subscribe_seats(&self) -> tokio::sync::broadcast::Receiver<Arc<model::SeatChanges>> {
        self.seats.subscribe()
    }

    fn watched(&self) -> bool {
        self.seats.receiver_count() > 0
    }

    fn publish_seats(&self, changes: model::SeatChanges) {
        // No receiver is not an error: a feed subscribes before it reads, so it misses nothing.
        let _ = self.seats.send(Arc::new(changes));
    }

    fn publish(&self, group: u32, applied: u64, events: Vec<EventId>) {
        if self.sender.try_send(Change { group, applied, events }).is_err() {
            self.lose(group);
        }
    }

    /// Marks a group's changes as lost: the index must rebuild it.
    fn lose(&self, group: u32) {
        self.dirty.lock().expect("dirty lock").insert(group);
    }

    /// The groups whose changes were lost since the last call.
    pub fn take_lost(&self) -> std::collections::BTreeSet<u32> {
        std::mem::take(&mut *self.dirty.lock().expect("dirty lock"))
    }

    /// Each group's applied index when its state machine opened.
    pub fn opened(&self) -> std::collections::BTreeMap<u32, u64> {
        self.opened.lock().expect("opened lock").clone()
    }
}

/// What the state machine, its snapshot builder and its reader share.
struct Shared {
    group: u32,
    db: Arc<DB>,
    /// `Meta::last_at` of the last apply, for the leader's next stamp.
    last_at: AtomicU64,
    /// Decoded seat maps and prices of events (events never change once created).
    events: Mutex<HashMap<EventId, Arc<EventInfo>>>,
    /// The current value of ticket rows (`None`: no row), so that the hot path's ticket reads
    /// (every hold reads its tickets in apply, and again in the leader's or a follower's first
    /// look) skip RocksDB. Only apply fills it: apply alone writes rows, so what it reads is
    /// current, and it puts what it wrote here right after its write batch, before openraft
    /// hears that the entries are applied. Readers use it but never fill it: a value a reader
    /// read could be overtaken by an apply before it landed here.
    tickets: Mutex<HashMap<Vec<u8>, Option<Vec<u8>>>>,
    /// Makes snapshot ids unique within a process run.
    snapshots_built: AtomicU64,
    changes: Arc<Changes>,
}

pub struct StateMachine {
    shared: Arc<Shared>,
    meta: Meta,
}

/// A RocksDB error reading `key`, typed by what the host should do about it: ask again when
/// the database is busy, stop the replica when its data cannot be trusted.
fn db_fault(key: &[u8], error: rocksdb::Error) -> Fault {
    use rocksdb::ErrorKind as Db;
    let kind = match error.kind() {
        Db::Busy | Db::TryAgain | Db::TimedOut | Db::Incomplete => ErrorKind::Busy,
        Db::ShutdownInProgress => ErrorKind::Stopped,
        _ => ErrorKind::Corrupt,
    };
    Fault { key: key.to_vec(), reason: error.to_string(), kind }
}

fn sm_error(verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, openraft::AnyError::error(e.to_string())).into()
}

impl Shared {
    /// A row as a reader sees it: applied, from the ticket cache or the database.
    fn get(&self, suffix: &[u8]) -> Result<Option<Vec<u8>>, Fault> {
        match self.cached(suffix) {
            Some(value) => Ok(value),
            None => self.get_stored(suffix),
        }
    }

    /// A ticket row's value from the cache, if the cache has it.
    fn cached(&self, suffix: &[u8]) -> Option<Option<Vec<u8>>> {
        keys::is_ticket(suffix).then(|| self.tickets.lock().expect("tickets lock").get(suffix).cloned()).flatten()
    }

    fn get_stored(&self, suffix: &[u8]) -> Result<Option<Vec<u8>>, Fault> {
        self.db.get_cf(cf(&self.db, CF_SM), db::key(self.group, suffix)).map_err(|e| db_fault(suffix, e))
    }

    /// A row as apply reads it: a ticket row read from the database is cached.
    fn get_applying(&self, suffix: &[u8]) -> Result<Option<Vec<u8>>, Fault> {
        if let Some(value) = self.cached(suffix) {
            return Ok(value);
        }
        let value = self.get_stored(suffix)?;
        if keys::is_ticket(suffix) {
            self.cache_tickets(std::iter::once((suffix.to_vec(), value.clone())));
        }
        Ok(value)
    }

    /// Puts the current value of ticket rows in the cache; only apply calls this.
    fn cache_tickets(&self, rows: impl Iterator<Item = RowChange>) {
        let mut cache = self.tickets.lock().expect("tickets lock");
        for (key, value) in rows {
            debug_assert!(keys::is_ticket(&key), "only ticket rows are cached");
            if cache.len() >= TICKET_CACHE_ROWS_MAX && !cache.contains_key(&key) {
                cache.clear();
            }
            cache.insert(key, value);
        }
    }

    fn read<T: serde::de::DeserializeOwned>(&self, suffix: &[u8]) -> Result<Option<T>, Fault> {
        self.get(suffix)?.map(|bytes| ledger::decode(suffix, &bytes)).transpose()
    }

    fn load_meta(&self) -> Result<Meta, Fault> {
        Ok(self.read(keys::META)?.unwrap_or_default())
    }

    /// Rows under `prefix`, in key order, at most `limit`; keys without the group prefix.
    fn scan(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Vec<RawRow>, Fault> {
        let start = db::key(self.group, from);
        let full_prefix = db::key(self.group, prefix);
        let iter = self.db.iterator_cf(cf(&self.db, CF_SM), IteratorMode::From(&start, Direction::Forward));
        let mut rows = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(|e| db_fault(prefix, e))?;
            if !key.starts_with(&full_prefix) || rows.len() >= limit {
                break;
            }
            rows.push((key[4..].to_vec(), value.to_vec()));
        }
        Ok(rows)
    }
}

impl Shared {
    /// Keys under `prefix`, in key order, at most `limit`, without the group prefix; values are
    /// not read out.
    fn scan_keys(&self, prefix: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, Fault> {
        let full_prefix = db::key(self.group, prefix);
        let mut iter = self.db.raw_iterator_cf(cf(&self.db, CF_SM));
        iter.seek(&full_prefix);
        let mut keys = Vec::new();
        while let Some(key) = iter.key() {
            if !key.starts_with(&full_prefix) || keys.len() >= limit {
                break;
            }
            keys.push(key[4..].to_vec());
            iter.next();
        }
        iter.status().map_err(|e| db_fault(prefix, e))?;
        Ok(keys)
    }

    /// Calls `each` with every row of the group in `view` (keys without the group prefix), in
    /// key order, and returns the state machine's meta as of that view.
    fn each_row(&self, view: &rocksdb::Snapshot<'_>, mut each: impl FnMut(&[u8], &[u8])) -> Result<Meta, Fault> {
        let family = cf(&self.db, CF_SM);
        let prefix = db::group_prefix(self.group);
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(db::group_prefix(self.group + 1).to_vec());
        let mut meta = Meta::default();
        for item in view.iterator_cf_opt(family, options, IteratorMode::From(&prefix, Direction::Forward)) {
            let (key, value) = item.map_err(|e| db_fault(&prefix, e))?;
            let key = &key[4..];
            if key == keys::META {
                meta = ledger::decode(key, &value)?;
            }
            each(key, &value);
        }
        Ok(meta)
    }

    /// A digest of every row at the view's applied index: equal state, equal digest.
    fn digest(&self) -> Result<QueryResult, Fault> {
        use sha2::{Digest as _, Sha256};
        let view = self.db.snapshot();
        let mut hasher = Sha256::new();
        let meta = self.each_row(&view, |key, value| {
            hasher.update((key.len() as u64).to_be_bytes());
            hasher.update(key);
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value);
        })?;
        let digest = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(QueryResult::Digest { applied_index: meta.last_applied.map(|l| l.index), digest })
    }

    /// Rows of `view` under `prefix`, in key order, at most `limit`; keys without the group prefix.
    fn scan_view(&self, view: &rocksdb::Snapshot<'_>, prefix: &[u8], limit: usize) -> Result<Vec<RawRow>, Fault> {
        let start = db::key(self.group, prefix);
        let mut rows = Vec::new();
        for item in view.iterator_cf(cf(&self.db, CF_SM), IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item.map_err(|e| db_fault(prefix, e))?;
            if !key.starts_with(&start) || rows.len() >= limit {
                break;
            }
            rows.push((key[4..].to_vec(), value.to_vec()));
        }
        Ok(rows)
    }

    /// Every ticket row and booking of an event, read from one view.
    fn event_state(&self, event: EventId) -> Result<QueryResult, Fault> {
        let view = self.db.snapshot();
        let scan = |prefix: Vec<u8>| self.scan_view(&view, &prefix, SCAN_ROWS_MAX);
        let mut tickets = Vec::new();
        for (key, value) in scan(keys::tickets_of(event))? {
            let ticket = keys::ticket_of_key(&key).ok_or_else(|| Fault::corrupt(&key, "short ticket key"))?;
            tickets.push((ticket, ledger::decode(&key, &value)?));
        }
        let bookings =
            scan(keys::bookings_of(event))?.iter().map(|(k, v)| ledger::decode(k, v)).collect::<Result<_, _>>()?;
        Ok(QueryResult::EventState { tickets, bookings })
    }

    /// An event's ticket rows and the applied index they are at, from one view: a seat feed
    /// follows the changes published after that index.
    fn seat_states(&self, event: EventId) -> Result<QueryResult, Fault> {
        let view = self.db.snapshot();
        let meta =
            view.get_cf(cf(&self.db, CF_SM), db::key(self.group, keys::META)).map_err(|e| db_fault(keys::META, e))?;
        let meta: Meta = meta.map(|bytes| ledger::decode(keys::META, &bytes)).transpose()?.unwrap_or_default();
        let mut tickets = Vec::new();
        for (key, value) in self.scan_view(&view, &keys::tickets_of(event), SCAN_ROWS_MAX)? {
            let ticket = keys::ticket_of_key(&key).ok_or_else(|| Fault::corrupt(&key, "short ticket key"))?;
            tickets.push((ticket, ledger::decode(&key, &value)?));
        }
        let applied = meta.last_applied.map(|log_id| log_id.index).unwrap_or(0);
        Ok(QueryResult::SeatStates { applied, tickets })
    }

    /// An event's room whole: its core, passes and reports rows, read from one view so that they
    /// agree (a tick writes the core and the passes together).
    fn room(&self, event: EventId) -> Result<QueryResult, Fault> {
        let view = self.db.snapshot();
        let get = |suffix: &[u8]| {
            view.get_cf(cf(&self.db, CF_SM), db::key(self.group, suffix)).map_err(|e| db_fault(suffix, e))
        };
        let Some(core) = get(&keys::room(event))? else { return Ok(QueryResult::Room(None)) };
        let passes = get(&keys::room_passes(event))?;
        let reports = self.scan_view(&view, &keys::room_reports(event), ledger::room::ROOM_NODES_MAX)?;
        Ok(QueryResult::Room(Some(ledger::room::state_of(event, &core, passes.as_deref(), &reports)?)))
    }
}

impl StateMachine {
    pub fn open(
        group: u32,
        db: Arc<DB>,
        changes: Arc<Changes>,
    ) -> Result<(StateMachine, Arc<dyn StateReader>), SeamError> {
        let shared = Arc::new(Shared {
            group,
            db,
            last_at: AtomicU64::new(0),
            events: Mutex::new(HashMap::new()),
            tickets: Mutex::new(HashMap::new()),
            snapshots_built: AtomicU64::new(0),
            changes,
        });
        let meta = shared.load_meta()?;
        shared.last_at.store(meta.last_at, Ordering::Release);
        let applied = meta.last_applied.map(|l| l.index).unwrap_or(0);
        shared.changes.opened.lock().expect("opened lock").insert(group, applied);
        let reader: Arc<dyn StateReader> = Arc::new(Reader { shared: shared.clone() });
        Ok((StateMachine { shared, meta }, reader))
    }
}

/// The group's rows with this apply's changes laid over them, and the batch that will write
/// those changes.
struct Overlay<'a> {
    shared: &'a Shared,
    changed: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Rows for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Fault> {
        match self.changed.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.shared.get_applying(key),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changed.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.changed.insert(key, None);
    }

    fn scan(&self, prefix: &[u8], limit: usize) -> Result<Vec<RawRow>, Fault> {
        // The stored rows with this apply's changes laid over them, in key order.
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self.shared.scan(prefix, prefix, limit)?.into_iter().collect();
        for (key, value) in self.changed.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)) {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    fn prices(&mut self, event: EventId) -> Result<Option<Arc<Vec<u64>>>, Fault> {
        Ok(self.event_info(event)?.map(|info| info.prices.clone()))
    }

    fn seat_map(&mut self, event: EventId) -> Result<Option<Arc<model::SeatMap>>, Fault> {
        Ok(self.event_info(event)?.map(|info| info.map.clone()))
    }

    fn part_tickets(&mut self, event: EventId) -> Result<Option<std::ops::Range<model::TicketId>>, Fault> {
        Ok(self.event_info(event)?.and_then(|info| info.part.clone()))
    }
}

impl Overlay<'_> {
    /// An event's seat map and prices, decoded once: events never change once created.
    fn event_info(&mut self, event: EventId) -> Result<Option<Arc<EventInfo>>, Fault> {
        if let Some(info) = self.shared.events.lock().expect("events lock").get(&event) {
            return Ok(Some(info.clone()));
        }
        let map: Option<model::SeatMap> = match self.get(&keys::seat_map(event))? {
            Some(bytes) => Some(ledger::decode(&keys::seat_map(event), &bytes)?),
            None => None,
        };
        let Some(map) = map else { return Ok(None) };
        let part = ledger::rows::read(self, &keys::part(event))?;
        let info = Arc::new(EventInfo { prices: Arc::new(map.prices()), map: Arc::new(map), part });
        let mut cache = self.shared.events.lock().expect("events lock");
        if cache.len() >= EVENT_CACHE_EVENTS_MAX {
            cache.clear();
        }
        cache.insert(event, info.clone());
        Ok(Some(info))
    }

    /// The write batch of the changes, and the changed ticket rows (for the cache once the
    /// batch is written).
    fn into_batch(self) -> (WriteBatch, Vec<RowChange>) {
        let family = cf(&self.shared.db, CF_SM);
        let mut batch = WriteBatch::default();
        let mut tickets = Vec::new();
        for (key, value) in self.changed {
            let stored = db::key(self.shared.group, &key);
            match &value {
                Some(value) => batch.put_cf(family, stored, value),
                None => batch.delete_cf(family, stored),
            }
            if keys::is_ticket(&key) {
                tickets.push((key, value));
            }
        }
        (batch, tickets)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.meta.last_applied, self.meta.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcomes>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let shared = self.shared.clone();
        let mut overlay = Overlay { shared: &shared, changed: BTreeMap::new() };
        let mut meta = self.meta.clone();
        let mut replies = Vec::new();
        let mut changed = Vec::new();
        for entry in entries {
            assert!(
                meta.last_applied.is_none_or(|last| entry.log_id.index > last.index),
                "entries apply in log order, once: {:?} after {:?}",
                entry.log_id,
                meta.last_applied
            );
            meta.last_applied = Some(entry.log_id);
            let outcomes = match entry.payload {
                EntryPayload::Blank => Outcomes::default(),
                EntryPayload::Normal(batch) => {
                    // Rule 2: time in a group never runs backwards, whatever a leader's clock says.
                    let at = batch.at.max(meta.last_at);
                    meta.last_at = at;
                    let mut outcomes = Vec::with_capacity(batch.commands.len());
                    for (n, command) in batch.commands.iter().enumerate() {
                        if n % APPLY_COMMANDS_PER_YIELD == APPLY_COMMANDS_PER_YIELD - 1 {
                            tokio::task::yield_now().await;
                        }
                        let outcome =
                            ledger::apply(command, at, &mut overlay).map_err(|e| sm_error(ErrorVerb::Read, e))?;
                        if let model::Command::CreateEvents { events } = command {
                            changed.extend(events.iter().map(|(e, _)| e.id));
                        }
                        changed.extend(searchable_change(&outcome));
                        outcomes.push(outcome);
                    }
                    Outcomes(outcomes)
                }
                EntryPayload::Membership(membership) => {
                    meta.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Outcomes::default()
                }
            };
            replies.push(outcomes);
        }
        overlay.put(keys::META.to_vec(), ledger::encode(&meta));
        let (batch, tickets) = overlay.into_batch();
        let mut options = WriteOptions::default();
        options.set_sync(false);
        shared.db.write_opt(batch, &options).map_err(|e| sm_error(ErrorVerb::Write, e))?;
        let seats = match shared.changes.watched() && !tickets.is_empty() {
            true => Some(seat_changes(&tickets).map_err(|e| sm_error(ErrorVerb::Read, e))?),
            false => None,
        };
        shared.cache_tickets(tickets.into_iter());
        shared.last_at.store(meta.last_at, Ordering::Release);
        self.meta = meta;
        changed.sort_unstable();
        changed.dedup();
        let applied = self.meta.last_applied.map(|l| l.index).unwrap_or(0);
        shared.changes.publish(shared.group, applied, changed);
        if let Some(tickets) = seats {
            shared.changes.publish_seats(model::SeatChanges::Applied { group: shared.group, applied, tickets });
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Vec<u8>>, StorageError> {
        Ok(Box::default())
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, data: Box<Vec<u8>>) -> Result<(), StorageError> {
        let shared = self.shared.clone();
        let rows: Vec<RawRow> =
            bincode::deserialize(&data).map_err(|e| sm_error(ErrorVerb::Read, format!("snapshot data: {e}")))?;
        let family = cf(&shared.db, CF_SM);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(family, db::group_prefix(shared.group), db::group_prefix(shared.group + 1));
        let mut installed_meta = None;
        for (key, value) in &rows {
            if key.as_slice() == keys::META {
                installed_meta = Some(ledger::decode::<Meta>(key, value).map_err(|e| sm_error(ErrorVerb::Read, e))?);
            }
            batch.put_cf(family, db::key(shared.group, key), value);
        }
        let installed_meta = installed_meta.ok_or_else(|| sm_error(ErrorVerb::Read, "snapshot without meta"))?;
        assert_eq!(installed_meta.last_applied, meta.last_log_id, "a snapshot's rows are at its log id");
        batch.put_cf(cf(&shared.db, CF_SNAP), db::group_prefix(shared.group), ledger::encode(&(meta, data.as_ref())));
        let mut options = WriteOptions::default();
        options.set_sync(true);
        shared.db.write_opt(batch, &options).map_err(|e| sm_error(ErrorVerb::Write, e))?;
        shared.events.lock().expect("events lock").clear();
        shared.tickets.lock().expect("tickets lock").clear();
        shared.last_at.store(installed_meta.last_at, Ordering::Release);
        shared.changes.lose(shared.group);
        shared.changes.publish_seats(model::SeatChanges::Reset { group: shared.group });
        tracing::info!(group = shared.group, last_log_id = ?meta.last_log_id, rows = rows.len(), "snapshot installed");
        self.meta = installed_meta;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let stored = self
            .shared
            .db
            .get_cf(cf(&self.shared.db, CF_SNAP), db::group_prefix(self.shared.group))
            .map_err(|e| sm_error(ErrorVerb::Read, e))?;
        let Some(bytes) = stored else { return Ok(None) };
        let (meta, data): (SnapshotMeta, Vec<u8>) =
            bincode::deserialize(&bytes).map_err(|e| sm_error(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(data) }))
    }
}

pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || build(&shared)).await.map_err(|e| sm_error(ErrorVerb::Read, e))?
    }
}

/// Commands applied between two yields to the runtime: apply runs on raft's runtime, and a
/// long entry would otherwise hold up the raft core (a follower's answer to the next
/// append-entries waits for it).
const APPLY_COMMANDS_PER_YIELD: usize = 8;

/// Reads every row of the group from one RocksDB snapshot and stores the result as the group's
/// current snapshot.
fn build(shared: &Shared) -> Result<Snapshot, StorageError> {
    let view = shared.db.snapshot();
    let mut rows: Vec<RawRow> = Vec::new();
    let meta = shared
        .each_row(&view, |key, value| rows.push((key.to_vec(), value.to_vec())))
        .map_err(|e| sm_error(ErrorVerb::Read, e))?;
    let prefix = db::group_prefix(shared.group);
    let data = bincode::serialize(&rows).expect("rows encode");
    let n = shared.snapshots_built.fetch_add(1, Ordering::Relaxed);
    let index = meta.last_applied.map(|l| l.index).unwrap_or(0);
    let snapshot_meta = SnapshotMeta {
        last_log_id: meta.last_applied,
        last_membership: meta.membership.clone(),
        snapshot_id: format!("{}-{}-{}", shared.group, index, n),
    };
    // A snapshot is tens of megabytes: through the WAL, the log's next sync would wait for all
    // of it. So it skips the WAL and is made durable by flushing its family to a table file.
    let mut options = WriteOptions::default();
    options.disable_wal(true);
    let stored = ledger::encode(&(&snapshot_meta, &data));
    let family = cf(&shared.db, CF_SNAP);
    shared.db.put_cf_opt(family, prefix, stored, &options).map_err(|e| sm_error(ErrorVerb::Write, e))?;
    shared.db.flush_cf(family).map_err(|e| sm_error(ErrorVerb::Write, e))?;
    tracing::info!(group = shared.group, index, rows = rows.len(), bytes = data.len(), "snapshot built");
    Ok(Snapshot { meta: snapshot_meta, snapshot: Box::new(data) })
}

/// The seat changes of an apply's ticket rows.
fn seat_changes(rows: &[RowChange]) -> Result<Vec<(EventId, model::TicketId, Option<model::TicketState>)>, Fault> {
    rows.iter()
        .map(|(key, value)| {
            let (event, ticket) =
                keys::event_ticket_of_key(key).ok_or_else(|| Fault::corrupt(key, "short ticket key"))?;
            let state = value.as_deref().map(|value| ledger::decode(key, value)).transpose()?;
            Ok((event, ticket, state))
        })
        .collect()
}

/// Answers queries from the group's applied rows.
struct Reader {
    shared: Arc<Shared>,
}

/// Most rows one query scans: an event has at most `VENUE_SEATS_MAX` tickets.
const SCAN_ROWS_MAX: usize = model::VENUE_SEATS_MAX;

impl Reader {
    fn answer(&self, query: &Query) -> Result<QueryResult, Fault> {
        let s = &self.shared;
        Ok(match query {
            Query::Event(id) => QueryResult::Event(s.read(&keys::event(*id))?),
            Query::SeatMap(id) => QueryResult::SeatMap(s.read(&keys::seat_map(*id))?),
            Query::Booking(id) => QueryResult::Booking(s.read(&keys::booking(*id))?),
            Query::User(id) => QueryResult::User(s.read(&keys::user(*id))?),
            Query::Venue(id) => QueryResult::Venue(s.read(&keys::venue(*id))?),
            Query::Performer(id) => QueryResult::Performer(s.read(&keys::performer(*id))?),
            Query::Placement(id) => QueryResult::Placement(s.read(&keys::placement(*id))?),
            Query::Parts(id) => QueryResult::Parts(match s.read(&keys::parts(*id))? {
                Some(parts) => Some(parts),
                None => s.read::<Placement>(&keys::placement(*id))?.map(|p| EventParts::single(p.event, p.group)),
            }),
            Query::UserByEmail(email) => match s.read::<u64>(&keys::email(&model::normalize_email(email)))? {
                Some(id) => QueryResult::User(s.read(&keys::user(id))?),
                None => QueryResult::User(None),
            },
            Query::Tickets(event) => {
                let prefix = keys::tickets_of(*event);
                let mut tickets = Vec::new();
                for (key, value) in s.scan(&prefix, &prefix, SCAN_ROWS_MAX)? {
                    let ticket = keys::ticket_of_key(&key).ok_or_else(|| Fault::corrupt(&key, "short ticket key"))?;
                    tickets.push((ticket, ledger::decode(&key, &value)?));
                }
                QueryResult::Tickets(tickets)
            }
            Query::SeatStates(event) => s.seat_states(*event)?,
            Query::EventState(event) => s.event_state(*event)?,
            Query::FanBookings(user) => {
                let mut bookings = Vec::new();
                for (key, _) in s.scan(&keys::fan_bookings(*user), &keys::fan_bookings(*user), SCAN_ROWS_MAX)? {
                    let id = keys::booking_of_fan_key(&key).ok_or_else(|| Fault::corrupt(&key, "short fan key"))?;
                    bookings.extend(s.read::<model::Booking>(&keys::booking(id))?);
                }
                QueryResult::Bookings(bookings)
            }
            Query::EventsAfter { after, limit } => {
                let from = keys::event(after.saturating_add(1));
                let mut entries = Vec::new();
                for (key, value) in
                    s.scan(keys::EVENTS_PREFIX, &from, (*limit).min(model::UPCOMING_EVENTS_MAX) as usize)?
                {
                    let event: model::Event = ledger::decode(&key, &value)?;
                    let sold = s.read::<u32>(&keys::sold(event.id))?.unwrap_or(0);
                    entries.push((event, sold));
                }
                QueryResult::IndexEntries(entries)
            }
            Query::IndexEntries(ids) => {
                let mut entries = Vec::new();
                for &id in ids.iter().take(model::UPCOMING_EVENTS_MAX as usize) {
                    if let Some(event) = s.read::<model::Event>(&keys::event(id))? {
                        entries.push((event, s.read::<u32>(&keys::sold(id))?.unwrap_or(0)));
                    }
                }
                QueryResult::IndexEntries(entries)
            }
            Query::PendingPayments { limit } => {
                let mut bookings = Vec::new();
                for (key, _) in s.scan(
                    keys::PENDING_PREFIX,
                    keys::PENDING_PREFIX,
                    (*limit).min(model::UPCOMING_EVENTS_MAX) as usize,
                )? {
                    let id =
                        keys::booking_of_pending_key(&key).ok_or_else(|| Fault::corrupt(&key, "short pending key"))?;
                    bookings.extend(s.read::<model::Booking>(&keys::booking(id))?);
                }
                QueryResult::Bookings(bookings)
            }
            Query::Digest => s.digest()?,
            Query::Room(event) => s.room(*event)?,
            Query::Rooms { limit } => {
                let limit = (*limit).min(ledger::room::ROOMS_LISTED_MAX) as usize;
                let mut events = Vec::new();
                for key in s.scan_keys(keys::ROOMS_PREFIX, limit)? {
                    events.push(keys::event_of_room_key(&key).ok_or_else(|| Fault::corrupt(&key, "short room key"))?);
                }
                QueryResult::Rooms(events)
            }
            Query::OldestRemembered => {
                let oldest = s.scan_keys(keys::REMEMBERED_PREFIX, 1)?.first().map(|key| {
                    keys::stamp_of_remembered_key(key)
                        .map(|(at, _)| at)
                        .ok_or_else(|| Fault::corrupt(key, "short index key"))
                });
                QueryResult::OldestRemembered(oldest.transpose()?)
            }
            Query::UpcomingEvents { from, limit } => {
                let limit = (*limit).min(model::UPCOMING_EVENTS_MAX) as usize;
                let mut events = Vec::new();
                for (key, _) in s.scan(keys::STARTS_PREFIX, &keys::starts(*from, 0), limit)? {
                    let id = keys::event_of_starts(&key).ok_or_else(|| Fault::corrupt(&key, "short index key"))?;
                    events.extend(s.read(&keys::event(id))?);
                }
                QueryResult::Events(events)
            }
        })
    }
}

impl StateReader for Reader {
    fn query(&self, query: &Query) -> Result<QueryResult, SeamError> {
        Ok(self.answer(query)?)
    }

    fn last_applied_at(&self) -> Millis {
        self.shared.last_at.load(Ordering::Acquire)
    }

    fn taken(
        &self,
        booking: model::BookingId,
        tickets: &[model::TicketId],
        at: Millis,
    ) -> Result<Vec<model::TicketId>, SeamError> {
        let mut taken = Vec::new();
        for &ticket in tickets {
            let state: Option<model::TicketState> = self.shared.read(&keys::ticket(booking.event, ticket))?;
            if state.is_some_and(|s| s.booking() != booking && !s.is_free_at(at)) {
                taken.push(ticket);
            }
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use model::{Batch, BookingId, Command, Outcome};
    use openraft::{CommittedLeaderId, RaftSnapshotBuilder};

    use super::*;
    use crate::ledger::tests::{event, map};

    fn entry(index: u64, command: Command) -> Entry {
        entry_at(index, 1_000 + index, command)
    }

    fn entry_at(index: u64, at: Millis, command: Command) -> Entry {
        let log_id = LogId::new(CommittedLeaderId::new(1, 1), index);
        Entry { log_id, payload: EntryPayload::Normal(Batch { at, commands: vec![command] }) }
    }

    /// A report of node `node`'s one place, built after an on-sale at 5,000.
    fn room_report(node: u16) -> model::room::RoomReport {
        let place = model::room::Place { class: model::room::CLASS_ONSALE, primary: 5_500, node, seq: 1 };
        model::room::RoomReport {
            boot: 1,
            seq: 1,
            clock_ms: 6_000,
            live: 1,
            connected: 1,
            complete_to: model::room::Place::onsale_floor(6_000),
            front: vec![place],
            quantiles: Vec::new(),
            abandoned: 0,
            endpoint: format!("10.0.0.{node}:4433"),
            cert_sha256: "ab".repeat(32),
            uncertainty_ms: 5,
        }
    }

    fn hold(nonce: u64) -> Command {
        let booking = BookingId { event: 7, nonce };
        Command::Hold { booking, user: 1, tickets: vec![2], ttl_ms: 60_000, fan_tickets_max: 0, idempotency: None }
    }

    /// A hold of ticket `nonce` of event 7 by fan 1 under the key `k{nonce}`.
    fn keyed(nonce: u64, key: u64) -> Command {
        let booking = BookingId { event: 7, nonce };
        let idempotency = Some(model::Idempotency { key: format!("k{key}"), fingerprint: key });
        Command::Hold { booking, user: 1, tickets: vec![nonce as u32], ttl_ms: 60_000, fan_tickets_max: 0, idempotency }
    }

    async fn digest(reader: &Arc<dyn StateReader>) -> QueryResult {
        reader.query(&Query::Digest).unwrap()
    }

    /// On RocksDB: a prune forgets what its window left behind, within its bound per entry, and
    /// nothing younger; a retry within the window is answered from its record, after it is a new
    /// request. Replicas that apply the same log, however openraft groups its entries, hold the
    /// same rows, and a snapshot carries what is remembered.
    #[tokio::test]
    async fn prunes_forget_alike_on_every_replica_within_their_bound() {
        let open = |dir: &tempfile::TempDir| {
            let storage = crate::Storage::open(dir.path()).unwrap();
            let parts = raft::GroupStorage::open(&storage, 1).unwrap();
            (storage, parts.state_machine, parts.reader)
        };
        let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
        let (_a, mut first, first_reader) = open(&dirs[0]);
        let (_b, mut second, second_reader) = open(&dirs[1]);
        let prune = Command::Prune { window_ms: 10_000, records_max: 8 };

        let mut log = vec![entry(1, Command::CreateEvent { event: event(7, 40), seat_map: map(40) })];
        // 30 keyed holds at 1,002 to 1,031, then a younger one at 15,000.
        log.extend((2..=31).map(|index| entry(index, keyed(index, index))));
        log.push(entry_at(32, 15_000, keyed(32, 32)));
        first.apply(log.clone()).await.unwrap();
        assert_eq!(first_reader.query(&Query::OldestRemembered).unwrap(), QueryResult::OldestRemembered(Some(1_002)));

        // At 20,000 the 30 are due (30 > 8: four entries), the younger one is not.
        let mut pruned = Vec::new();
        for index in 33..=36 {
            let replies = first.apply([entry_at(index, 20_000, prune.clone())]).await.unwrap();
            pruned.push(replies[0].0[0].clone());
            log.push(entry_at(index, 20_000, prune.clone()));
        }
        let pruned_as = |records, more| Outcome::Pruned { records, more };
        assert_eq!(pruned, vec![pruned_as(8, true), pruned_as(8, true), pruned_as(8, true), pruned_as(6, false)]);
        assert_eq!(first_reader.query(&Query::OldestRemembered).unwrap(), QueryResult::OldestRemembered(Some(15_000)));

        // The younger key still gets its first answer; a forgotten one is a new request.
        let QueryResult::Booking(Some(young)) =
            first_reader.query(&Query::Booking(BookingId { event: 7, nonce: 32 })).unwrap()
        else {
            panic!("the younger hold's booking")
        };
        let retries = [entry_at(37, 20_001, keyed(38, 32)), entry_at(38, 20_001, keyed(39, 5))];
        let replies = first.apply(retries.clone()).await.unwrap();
        assert_eq!(replies[0].0[0], Outcome::Held(young), "answered from its record");
        let Outcome::Held(new) = &replies[1].0[0] else { panic!("a new hold: {:?}", replies[1]) };
        assert_eq!(new.id, BookingId { event: 7, nonce: 39 }, "a new booking, not the first under k5");
        log.extend(retries);

        // Another replica applies the same log in one go: the same rows.
        second.apply(log).await.unwrap();
        let digest_of_first = digest(&first_reader).await;
        assert_eq!(digest(&second_reader).await, digest_of_first);
        // And a replica that installs the first's snapshot.
        let (_c, mut third, third_reader) = open(&dirs[2]);
        let snapshot = first.get_snapshot_builder().await.build_snapshot().await.unwrap();
        third.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
        assert_eq!(digest(&third_reader).await, digest_of_first);
        assert_eq!(third_reader.query(&Query::OldestRemembered).unwrap(), QueryResult::OldestRemembered(Some(15_000)));
    }

    /// A room reads back whole (its core, passes and reports by node), and the group lists the
    /// events that have one.
    #[tokio::test]
    async fn rooms_are_read_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::Storage::open(dir.path()).unwrap();
        let parts = raft::GroupStorage::open(&storage, 1).unwrap();
        let (mut sm, reader) = (parts.state_machine, parts.reader);
        let settings = model::room::RoomSettings {
            enabled: true,
            on_sale_at: 5_000,
            rate_per_min: 600,
            shopping_max: 100,
            admission_ms: 60_000,
            pow_bits: 0,
            paused: false,
            abandon_ms: 60_000,
        };
        let mut index = 0;
        for id in [9, 7, 8] {
            index += 1;
            sm.apply([entry(index, Command::CreateEvent { event: event(id, 4), seat_map: map(4) })]).await.unwrap();
            if id != 8 {
                index += 1;
                let configure = Command::RoomConfigure { event: id, settings: settings.clone(), draw_key: [1; 16] };
                sm.apply([entry(index, configure)]).await.unwrap();
            }
        }
        for node in [2, 1] {
            index += 1;
            let report = Command::RoomReport { event: 9, node: u64::from(node), report: room_report(node) };
            sm.apply([entry_at(index, 6_000, report)]).await.unwrap();
        }
        sm.apply([entry_at(index + 1, 6_000, Command::RoomTick { event: 9, step: 1 })]).await.unwrap();
        assert_eq!(reader.query(&Query::Rooms { limit: 10 }).unwrap(), QueryResult::Rooms(vec![7, 9]));
        assert_eq!(reader.query(&Query::Rooms { limit: 1 }).unwrap(), QueryResult::Rooms(vec![7]));
        let QueryResult::Room(Some(room)) = reader.query(&Query::Room(9)).unwrap() else { panic!("a room") };
        assert_eq!((room.event, room.settings, room.admitted_total), (9, settings, 2));
        let stamps: Vec<(u64, Millis)> = room.reports.iter().map(|(node, at, _)| (*node, *at)).collect();
        assert_eq!(stamps, vec![(1, 6_000), (2, 6_000)], "reports by node, with their stamps");
        assert_eq!(room.reports[1].2, room_report(2));
        assert_eq!(room.passes.len(), 1, "the tick that passed both places");
        assert_eq!(room.used, vec![(1, 1, 1), (2, 1, 1)]);
        let QueryResult::Room(Some(other)) = reader.query(&Query::Room(7)).unwrap() else { panic!("a room") };
        assert!(other.reports.is_empty() && other.passes.is_empty(), "another event's rows stay its own");
        assert_eq!(reader.query(&Query::Room(8)).unwrap(), QueryResult::Room(None));
    }

    /// Ticket reads go through the cache that apply keeps: a reader sees every apply at once,
    /// and nothing of the rows a snapshot replaced.
    #[tokio::test]
    async fn ticket_reads_follow_apply_and_snapshot_installs() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::Storage::open(dir.path()).unwrap();
        let parts = raft::GroupStorage::open(&storage, 1).unwrap();
        let (mut sm, reader) = (parts.state_machine, parts.reader);
        let other = BookingId { event: 7, nonce: 99 };
        let taken = |reader: &Arc<dyn StateReader>| reader.taken(other, &[2], 1_010).unwrap();

        sm.apply([entry(1, Command::CreateEvent { event: event(7, 4), seat_map: map(4) })]).await.unwrap();
        let free = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        sm.apply([entry(2, hold(1))]).await.unwrap();
        assert_eq!(taken(&reader), vec![2], "the hold shows");
        sm.apply([entry(3, Command::Release { booking: BookingId { event: 7, nonce: 1 }, user: 1 })]).await.unwrap();
        assert!(taken(&reader).is_empty(), "the release shows");
        sm.apply([entry(4, hold(2))]).await.unwrap();
        assert_eq!(taken(&reader), vec![2]);

        sm.install_snapshot(&free.meta, free.snapshot).await.unwrap();
        assert!(taken(&reader).is_empty(), "the snapshot's rows replace the cached ones");
        sm.apply([entry(2, hold(3))]).await.unwrap();
        assert_eq!(taken(&reader), vec![2], "apply after an install fills the cache again");
    }
}

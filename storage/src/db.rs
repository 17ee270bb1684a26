//! The node's one RocksDB and the layout of its column families.
//!
//! | family | key | value |
//! |---|---|---|
//! | `log`  | group (u32 BE), index (u64 BE) | a raft entry |
//! | `raft` | group, tag (`v` vote, `p` last purged, `c` committed) | a log id or vote |
//! | `sm`   | group, row key (see `ledger::keys`) | a row; `0x00` is the state machine's meta |
//! | `snap` | group | the group's current snapshot: meta and data |
//!
//! Every key starts with its group, so a group's rows are one contiguous range.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

pub const CF_LOG: &str = "log";
pub const CF_RAFT: &str = "raft";
pub const CF_SM: &str = "sm";
pub const CF_SNAP: &str = "snap";
const FAMILIES: [&str; 4] = [CF_LOG, CF_RAFT, CF_SM, CF_SNAP];

/// The layout of rows and log entries this build reads and writes. Bump it with any change to
/// how commands, rows or snapshots are encoded: a node refuses data of another format with a
/// clear error instead of failing to decode it somewhere deep in raft.
pub const FORMAT_VERSION: u32 = 2;
/// Where the format is stamped, in the default family.
const FORMAT_KEY: &[u8] = b"format_version";

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Rocks(#[from] rocksdb::Error),
    #[error(
        "this data was written by another version of Boxoffice (storage format {found}, this build \
         reads format {FORMAT_VERSION}): remove the node's data folder to start over (for `boxoffice \
         dev`, the whole --data folder), or run the version that wrote it"
    )]
    Format { found: String },
}

/// Opens (or creates) the node's database under `path`, checking that its data is in this
/// build's format.
pub fn open(path: &Path) -> Result<Arc<DB>, OpenError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    // Bounded background work: this machine has 2 cores.
    options.increase_parallelism(2);
    let families = FAMILIES.iter().map(|name| ColumnFamilyDescriptor::new(*name, family_options(name)));
    let db = Arc::new(DB::open_cf_descriptors(&options, path, families)?);
    check_format(&db)?;
    Ok(db)
}

/// Stamps a new database with this build's format; refuses one stamped with another, or holding
/// data from before formats were stamped.
fn check_format(db: &DB) -> Result<(), OpenError> {
    match db.get(FORMAT_KEY)? {
        Some(found) if found == FORMAT_VERSION.to_be_bytes() => Ok(()),
        Some(found) => {
            let found = <[u8; 4]>::try_from(found.as_slice()).map(u32::from_be_bytes);
            Err(OpenError::Format { found: found.map_or_else(|_| "unknown".into(), |v| v.to_string()) })
        }
        None => {
            let holds_data =
                FAMILIES.iter().any(|name| db.iterator_cf(cf(db, name), rocksdb::IteratorMode::Start).next().is_some());
            if holds_data {
                return Err(OpenError::Format { found: "1 or older".into() });
            }
            let mut synced = rocksdb::WriteOptions::default();
            synced.set_sync(true);
            db.put_opt(FORMAT_KEY, FORMAT_VERSION.to_be_bytes(), &synced)?;
            Ok(())
        }
    }
}

/// Memtable size of the state machine's family. Every ticket change adds an entry to the
/// memtable's skip list, and hot-path keys (tickets, booking ids) are random: each insert and
/// each read walks the list from its top, missing the CPU cache at most levels. A small
/// memtable keeps those walks short (measured: 16 MiB spent a tenth of a leader's CPU in
/// skip-list inserts); a hot event's rows are rewritten all the time, and flushes drop the old
/// versions.
const SM_MEMTABLE_BYTES: usize = 4 << 20;
/// Share of the state machine's memtable given to its bloom filter.
const SM_MEMTABLE_BLOOM_RATIO: f64 = 0.1;

fn family_options(name: &str) -> Options {
    let mut options = Options::default();
    if name == CF_SM {
        options.set_write_buffer_size(SM_MEMTABLE_BYTES);
        // A hold looks up a booking id that is new almost always: a bloom filter over the
        // memtable's keys answers such misses without walking the skip list.
        options.set_memtable_prefix_bloom_ratio(SM_MEMTABLE_BLOOM_RATIO);
        options.set_memtable_whole_key_filtering(true);
        // Point reads (a ticket, a booking) skip the files that cannot have the key.
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        options.set_block_based_table_factory(&table);
    }
    options
}

pub fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name).expect("every column family is created at open")
}

pub fn group_prefix(group: u32) -> [u8; 4] {
    group.to_be_bytes()
}

/// `group ++ suffix`.
pub fn key(group: u32, suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + suffix.len());
    key.extend_from_slice(&group_prefix(group));
    key.extend_from_slice(suffix);
    key
}

pub fn log_key(group: u32, index: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&group.to_be_bytes());
    key[4..].copy_from_slice(&index.to_be_bytes());
    key
}

pub fn log_index(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[4..12].try_into().expect("log keys are 12 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_is_stamped_with_this_format_and_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()).unwrap());
        let db = open(dir.path()).expect("its own format opens");
        assert_eq!(db.get(FORMAT_KEY).unwrap().unwrap(), FORMAT_VERSION.to_be_bytes());
    }

    #[test]
    fn data_of_another_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).unwrap();
        db.put(FORMAT_KEY, (FORMAT_VERSION + 1).to_be_bytes()).unwrap();
        drop(db);
        let error = open(dir.path()).unwrap_err().to_string();
        assert!(error.contains(&format!("storage format {}", FORMAT_VERSION + 1)), "{error}");
        assert!(error.contains("remove the node's data folder"), "{error}");
    }

    #[test]
    fn data_from_before_formats_were_stamped_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).unwrap();
        db.delete(FORMAT_KEY).unwrap();
        db.put_cf(cf(&db, CF_SM), key(1, b"row"), b"old").unwrap();
        drop(db);
        let error = open(dir.path()).unwrap_err().to_string();
        assert!(error.contains("storage format 1 or older"), "{error}");
    }
}

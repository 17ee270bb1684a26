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

/// Opens (or creates) the node's database under `path`.
pub fn open(path: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    // Bounded background work: this machine has 2 cores.
    options.increase_parallelism(2);
    let families = FAMILIES.iter().map(|name| ColumnFamilyDescriptor::new(*name, family_options(name)));
    Ok(Arc::new(DB::open_cf_descriptors(&options, path, families)?))
}

/// Memtable size of the state machine's family. Every ticket change adds an entry to the
/// memtable's skip list, and every read walks it: a smaller memtable keeps the hot path's reads
/// short (a hot event's rows are rewritten all the time, and flushes drop the old versions).
const SM_MEMTABLE_BYTES: usize = 16 << 20;
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

//! The node's search shard: a tantivy index of the events of the inventory groups this node
//! hosts, and the indexer that keeps it in step with them.
//!
//! **The index is derived, and a group is served only once it is complete.** The state machines
//! are the source of truth. The indexer follows their change stream (events created, tickets
//! sold) and rebuilds a group from its replica when the index is missing it or has fallen
//! behind; the shard answers only for the groups it has caught up with, and the answer names
//! them, so that a search never misses events silently: the raft host asks another replica for
//! the others. An index lost or of an older schema is simply rebuilt.
//!
//! The index lives in `<data_dir>/search`; its commit payload records, per group, the applied
//! log index it reflects.
//!
//! Layout, each module using only those listed before it:
//! - `schema`: an event's document, its fields, and how text splits into words and prefixes;
//! - `error`: [`SearchError`], tantivy's errors sorted by what the caller can do;
//! - `columns`: each segment's columns, opened once and kept while the segment lives;
//! - `tally`: counts the matches and their facets in one pass over column ordinals;
//! - `query`: a fan's search as a tantivy query (keywords over names, performers, venues and
//!   descriptions, ranked by BM25, typos looked up only for words no name has, common words
//!   dropped when a rarer one remains, the last word a prefix term; date range and filters),
//!   and its answer;
//! - `shard`: [`SearchShard`], the index, its writer and reader, and the groups it answers for;
//! - `feed`: what the indexer is fed, [`Change`]s through a [`ChangeStream`] and reads of the
//!   node's [`Replicas`], which the node implements over its storage and raft host;
//! - `indexer`: [`Indexer`], which follows the stream, rebuilds groups that fell behind, and
//!   merges the segments into one when the stream goes quiet.
//!
//! This crate knows nothing of raft or storage: the node adapts them to `feed`'s traits, and
//! serves the shard to the raft host.

mod columns;
mod error;
mod feed;
mod indexer;
mod query;
mod schema;
mod shard;
mod tally;

pub use error::SearchError;
pub use feed::{Change, ChangeStream, Next, Replicas};
pub use indexer::Indexer;
pub use shard::SearchShard;

//! Raft for Boxoffice: many openraft groups per node, one connection per pair of nodes.
//!
//! Group 0 holds placement and the catalog; groups 1..=n hold the events spread over them. Every
//! node hosts every group for now. This crate knows nothing of RocksDB: a group's log and state
//! machine come from a [`seams::GroupStorage`] the node passes in (the storage crate).
//!
//! Layout:
//! - [`types`]: the openraft type configuration shared by all groups;
//! - [`seams`]: the traits the node implements for the host (a group's storage, a reader of its
//!   state, the search shard) and their typed errors;
//! - [`config`]: the node's raft settings, every limit named with its unit;
//! - [`consensus`]: the consensus core as the write path needs it (a trait), over openraft;
//! - [`clock`]: the leader's monotonic stamp for each group's entries;
//! - [`wire`]: messages between nodes and their framing;
//! - [`tls`]: mutual TLS between nodes: certificates from the cluster's CA that name a node;
//! - [`link`]: one connection per pair of nodes, authenticated, dialed, kept, and redialed;
//! - [`network`]: openraft's network for one group, over the shared link;
//! - [`proposer`]: leader-side batching of a group's commands into raft entries;
//! - [`reads`]: read-index rounds shared by every linearizable read that comes meanwhile;
//! - [`refusals`]: followers refusing holds for taken seats after one shared read-index round;
//! - `rounds`: serving a queue in rounds, the shape `reads` and `refusals` share;
//! - [`metrics`]: each replica's state and the write path's counters, for `/metrics`;
//! - [`host`]: the groups of a node and the routing of writes and reads to them.

pub mod clock;
pub mod config;
pub mod consensus;
pub mod host;
pub mod link;
pub mod metrics;
pub mod network;
pub mod proposer;
pub mod reads;
pub mod refusals;
mod rounds;
pub mod seams;
pub mod tls;
pub mod types;
pub mod wire;

pub use config::{HostConfig, PeerConfig, RaftConfig};
pub use host::{Host, HostError};
pub use seams::{ErrorKind, GroupParts, GroupStorage, SeamError, Searcher, StateReader};
pub use tls::{LinkTls, TlsError};
pub use types::TypeConfig;

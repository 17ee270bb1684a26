//! The openraft type configuration every group shares.
//!
//! An entry carries a [`model::Batch`] (the leader's time and the commands), apply answers with
//! [`model::Outcomes`], and a snapshot is a byte vector sent whole (openraft's
//! `generic-snapshot-data`), small enough for an event group (a stadium's tickets are a few MB).

use openraft::BasicNode;

openraft::declare_raft_types!(
    /// Type configuration of a Boxoffice raft group.
    pub TypeConfig:
        D = model::Batch,
        R = model::Outcomes,
        NodeId = model::NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Vec<u8>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<model::NodeId>;
pub type Vote = openraft::Vote<model::NodeId>;
pub type StorageError = openraft::StorageError<model::NodeId>;
pub type StoredMembership = openraft::StoredMembership<model::NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<model::NodeId, BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;

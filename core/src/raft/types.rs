//! The raft log's types (`tern_wire`) bound to this node's raft.

pub use tern_wire::command::*;

pub type Raft = openraft::Raft<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

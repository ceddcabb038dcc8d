//! Consensus: openraft over the RocksDB store. One raft group for now; every key already carries its slot.

pub mod network;
pub mod proposer;
pub mod types;

pub use types::*;

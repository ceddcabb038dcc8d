//! Consensus: openraft over the RocksDB store, one raft group for now (every key already carries its
//! slot). Nodes talk over their raft port (`server.rs`, `network.rs`); followers forward writes and
//! read-index requests to the leader (`proposer.rs`, `leader.rs`).

pub mod dial;
pub mod leader;
pub mod membership;
pub mod network;
pub mod peer;
pub mod proposer;
pub mod rpc;
pub mod server;
pub mod transfer;
pub mod types;

pub use types::*;

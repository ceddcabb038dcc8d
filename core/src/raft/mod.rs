//! Consensus: openraft over the RocksDB store, one raft group per slot (`group.rs`). Nodes talk over
//! their raft port (`server.rs`, `network.rs`), every request naming its group; followers forward writes
//! and read-index requests to the group's leader (`proposer.rs`, `leader.rs`).

pub mod dial;
pub mod error;
pub mod group;
pub mod handover;
pub mod leader;
pub mod membership;
pub mod network;
pub mod peer;
pub mod proposer;
pub mod quorum;
pub mod rebalance;
pub mod server;
pub mod transfer;
pub mod types;
pub mod versions;

pub use types::*;

//! tern-core: the central cluster node.
//!
//! ```text
//!  edges ══ links ══▶ link/ ──┐                                  ┌──▶ fanout ──▶ edges (one Deliver per edge)
//!                             ├─▶ rules/ ─▶ raft/proposer ─▶ openraft ─▶ store/ (RocksDB: log + state machine)
//!  business servers ─▶ api/ ──┘              (group commit)                ▲
//!                                                                 reads ───┘
//! ```
//!
//! A write is answered only after its raft entry is synced to the log and applied to the state machine.

pub mod api;
pub mod claims;
pub mod config;
pub mod context;
pub mod fanout;
pub mod link;
pub mod message_json;
pub mod metrics;
pub mod node;
pub mod presence;
pub mod raft;
pub mod rules;
pub mod stop;
pub mod store;
pub mod webhook;

pub use config::CoreConfig;
pub use node::{start, CoreHandle};

//! What core nodes say to each other, kept apart from the store so the decoders can be fuzzed without
//! building RocksDB: the commands a raft entry carries (`command.rs`) and the frames of the raft port
//! (`rpc.rs`).

pub mod command;
pub mod rpc;

pub use command::*;

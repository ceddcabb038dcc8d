//! The rules between the doors (edge links in `link/`, the HTTP API in `api/`) and consensus (`raft/`):
//! which channel a message goes to, whether it may be sent, what its sender is told. Plain functions of
//! their inputs and the time, with no I/O, so both doors apply the same rules and tests need no node.

pub mod conversation;
pub mod send;

/// Seconds since the epoch, as stored message timestamps have it.
pub fn now_secs() -> i32 {
    (tern_shared::client::now_ms() / 1000) as i32
}

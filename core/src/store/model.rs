//! Records kept in the state machine.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub token: String,
    /// 1 = master (a new login kicks older ones on the same device flag), 0 = slave.
    pub device_level: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    pub channel_id: String,
    pub channel_type: u8,
    pub ban: bool,
    pub disband: bool,
    pub send_ban: bool,
    pub large: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub message_id: i64,
    pub message_seq: u64,
    pub client_msg_no: String,
    pub from_uid: String,
    /// The stored id (`a@b` for person channels).
    pub channel_id: String,
    pub channel_type: u8,
    pub header_flags: u8,
    pub setting: u8,
    pub expire: u32,
    pub topic: String,
    /// Seconds since the epoch, set by the proposer.
    pub timestamp: i32,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupRecord {
    pub message_id: i64,
    pub message_seq: u64,
}

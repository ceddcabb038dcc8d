//! Records kept in the state machine.

use serde::{Deserialize, Serialize};

pub use tern_wire::ChannelRecord;

/// A user's token as stored: its hash (`tern_shared::secret::user_token_hash`), never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub hash: [u8; 32],
    /// 1 = master (a new login kicks older ones on the same device flag), 0 = slave.
    pub device_level: u8,
}

/// How records were written before tokens were hashed: the token itself.
#[derive(Deserialize)]
struct PlainTokenRecord {
    token: String,
    device_level: u8,
}

impl TokenRecord {
    const TAG: u8 = b'H';
    const LEN: usize = 34;

    /// The tag, the hash, the level.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.push(Self::TAG);
        out.extend_from_slice(&self.hash);
        out.push(self.device_level);
        out
    }

    /// Reads either form. An older plain record starts with its token's length as a little-endian
    /// u64; at 34 bytes in all that length is 25, never the tag, so the two cannot be confused.
    pub fn decode(uid: &str, bytes: &[u8]) -> Result<TokenRecord, super::StoreError> {
        if bytes.len() == Self::LEN && bytes[0] == Self::TAG {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&bytes[1..33]);
            return Ok(TokenRecord { hash, device_level: bytes[33] });
        }
        let plain: PlainTokenRecord = super::decode("token", bytes)?;
        let hash = tern_shared::secret::user_token_hash(uid, &plain.token);
        Ok(TokenRecord { hash, device_level: plain.device_level })
    }
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

impl StoredMessage {
    /// `msg` as stored under `message_id` and `message_seq` (0 when it is not persisted).
    pub fn new(msg: crate::raft::NewMessage, message_id: i64, message_seq: u64) -> StoredMessage {
        StoredMessage {
            message_id,
            message_seq,
            client_msg_no: msg.client_msg_no,
            from_uid: msg.from_uid,
            channel_id: msg.channel_id,
            channel_type: msg.channel_type,
            header_flags: msg.header_flags,
            setting: msg.setting,
            expire: msg.expire,
            topic: msg.topic,
            timestamp: msg.timestamp,
            payload: msg.payload,
        }
    }
}

/// What an edge needs of a stored message to write its RECVs (the channel id is per target).
impl From<&StoredMessage> for tern_shared::link::DeliveredMessage {
    fn from(m: &StoredMessage) -> Self {
        tern_shared::link::DeliveredMessage {
            message_id: m.message_id,
            message_seq: m.message_seq,
            client_msg_no: m.client_msg_no.clone(),
            from_uid: m.from_uid.clone(),
            channel_type: m.channel_type,
            header_flags: m.header_flags,
            setting: m.setting,
            expire: m.expire,
            topic: m.topic.clone(),
            timestamp: m.timestamp,
            payload: m.payload.clone(),
        }
    }
}

/// A user's conversation in one channel. Read mode: it holds only how far the user has read, so a
/// message to a group writes nothing per member; unread is the channel's last seq minus `read_seq`,
/// computed when asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRecord {
    /// Every message up to this seq counts as read (a user's own sends move it).
    pub read_seq: u64,
    /// Deleted by the user while the channel's last seq was this: hidden until a newer message.
    pub deleted_at_seq: Option<u64>,
    /// When the user last changed it (milliseconds since the epoch; 0 if never), for `version`.
    pub changed_ms: i64,
}

/// An event for the business server's webhook, waiting in its slot's outbox until delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxEvent {
    /// A stored message: `msg.notify`, and `msg.offline` for its recipients without a session.
    Message { channel_id: String, channel_type: u8, message_seq: u64 },
    /// A `user.onlinestatus` line.
    Online(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupRecord {
    pub message_id: i64,
    pub message_seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_records_of_both_forms_read_as_hashes() {
        let hash = tern_shared::secret::user_token_hash("alice", "t");
        let record = TokenRecord { hash, device_level: 1 };
        assert_eq!(TokenRecord::decode("alice", &record.encode()).unwrap(), record);
        #[derive(Serialize)]
        struct Plain<'a> {
            token: &'a str,
            device_level: u8,
        }
        // 25 bytes of token make a plain record exactly as long as a hashed one.
        for token in ["t", "0123456789012345678901234"] {
            let old = super::super::encode(&Plain { token, device_level: 0 });
            let read = TokenRecord::decode("alice", &old).unwrap();
            assert_eq!(
                read,
                TokenRecord { hash: tern_shared::secret::user_token_hash("alice", token), device_level: 0 }
            );
        }
    }
}

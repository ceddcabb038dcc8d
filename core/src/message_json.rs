//! WuKongIM's JSON shape of a stored message, as its APIs and webhooks show one.

use crate::store::model::StoredMessage;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::{Deserialize, Serialize};
use tern_shared::channel::{kind, person_channel_for};
use tern_shared::proto::flag;

#[derive(Deserialize, Serialize, Default)]
pub struct Header {
    #[serde(default)]
    no_persist: u8,
    #[serde(default)]
    red_dot: u8,
    #[serde(default)]
    pub sync_once: u8,
}

impl Header {
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.no_persist != 0 {
            f |= flag::NO_PERSIST;
        }
        if self.red_dot != 0 {
            f |= flag::RED_DOT;
        }
        if self.sync_once != 0 {
            f |= flag::SYNC_ONCE;
        }
        f
    }

    pub fn from_flags(f: u8) -> Self {
        Header {
            no_persist: u8::from(f & flag::NO_PERSIST != 0),
            red_dot: u8::from(f & flag::RED_DOT != 0),
            sync_once: u8::from(f & flag::SYNC_ONCE != 0),
        }
    }
}

#[derive(Serialize)]
pub struct MessageJson {
    header: Header,
    setting: u8,
    message_id: i64,
    message_idstr: String,
    client_msg_no: String,
    pub message_seq: u64,
    from_uid: String,
    channel_id: String,
    channel_type: u8,
    topic: String,
    expire: u32,
    timestamp: i32,
    payload: String,
}

impl MessageJson {
    /// A stored message as `viewer` sees it: a person channel is named by its other party.
    pub fn seen_by(m: StoredMessage, viewer: &str) -> MessageJson {
        let channel_id = match m.channel_type {
            kind::PERSON => person_channel_for(&m.channel_id, viewer).to_string(),
            _ => m.channel_id.clone(),
        };
        Self::new(channel_id, m)
    }

    /// A stored message as WuKongIM shows it to no one in particular (recents, lookups, webhooks): a
    /// person message names the party that did not send it.
    pub fn as_sent(m: StoredMessage) -> MessageJson {
        let sender = m.from_uid.clone();
        Self::seen_by(m, &sender)
    }

    fn new(channel_id: String, m: StoredMessage) -> MessageJson {
        MessageJson {
            header: Header::from_flags(m.header_flags),
            setting: m.setting,
            message_id: m.message_id,
            message_idstr: m.message_id.to_string(),
            channel_id,
            client_msg_no: m.client_msg_no,
            message_seq: m.message_seq,
            from_uid: m.from_uid,
            channel_type: m.channel_type,
            topic: m.topic,
            expire: m.expire,
            timestamp: m.timestamp,
            payload: B64.encode(&m.payload),
        }
    }
}

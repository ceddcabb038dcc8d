//! Queries against the applied state. On the single-voter core every applied write is visible here, so a
//! read after a SENDACK sees that message.

use super::keys::{self, ChannelKeys};
use super::model::{ChannelRecord, ConversationRecord, OutboxEvent, StoredMessage, TokenRecord};
use super::{Db, StoreError, CF_SM};
use rocksdb::{Direction, IteratorMode};

/// How much one read of a channel's messages may return: at most `limit` messages, and no more
/// messages once `max_bytes` of records are reached (one is always returned, whatever its size).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: usize,
    pub max_bytes: usize,
}

/// Messages in the order read, and whether more lie beyond them in that direction.
pub struct Paged {
    pub messages: Vec<StoredMessage>,
    pub more: bool,
}

impl Db {
    fn get_sm(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_SM)?, key)?)
    }

    pub fn token(&self, uid: &str, device_flag: u8) -> Result<Option<TokenRecord>, StoreError> {
        self.get_sm(&keys::token(uid, device_flag, self.slots))?.map(|r| TokenRecord::decode(uid, &r)).transpose()
    }

    pub fn channel(&self, channel_id: &str, channel_type: u8) -> Result<Option<ChannelRecord>, StoreError> {
        let k = ChannelKeys::new(channel_id, channel_type, self.slots);
        self.get_sm(&k.channel())?.map(|r| super::decode("channel", &r)).transpose()
    }

    pub fn subscribers(&self, channel_id: &str, channel_type: u8) -> Result<Vec<String>, StoreError> {
        self.uids_under(&ChannelKeys::new(channel_id, channel_type, self.slots).subscriber_prefix())
    }

    /// The uids at the end of the keys under `prefix`.
    fn uids_under(&self, prefix: &[u8]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_SM)?, IteratorMode::From(prefix, Direction::Forward)) {
            let (k, _) = item?;
            let Some(uid) = keys::subscriber_uid(&k, prefix) else { break };
            out.push(uid.to_string());
        }
        Ok(out)
    }

    /// The uids on a channel's deny list (`keys::DENY`) or allow list (`keys::ALLOW`).
    pub fn list(&self, channel_id: &str, channel_type: u8, list: u8) -> Result<Vec<String>, StoreError> {
        self.uids_under(&ChannelKeys::new(channel_id, channel_type, self.slots).list_prefix(list))
    }

    pub fn is_listed(&self, channel_id: &str, channel_type: u8, list: u8, uid: &str) -> Result<bool, StoreError> {
        let k = ChannelKeys::new(channel_id, channel_type, self.slots);
        Ok(self.get_sm(&k.listed(list, uid))?.is_some())
    }

    pub fn is_system_uid(&self, uid: &str) -> Result<bool, StoreError> {
        Ok(self.get_sm(&keys::system_uid(uid, self.slots))?.is_some())
    }

    pub fn system_uids(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for slot in 0..self.slots {
            let (start, _) = keys::slot_range(b'y', slot);
            out.extend(self.uids_under(&start)?);
        }
        Ok(out)
    }

    pub fn is_subscriber(&self, channel_id: &str, channel_type: u8, uid: &str) -> Result<bool, StoreError> {
        let k = ChannelKeys::new(channel_id, channel_type, self.slots);
        Ok(self.get_sm(&k.subscriber(uid))?.is_some())
    }

    pub fn last_seq(&self, channel_id: &str, channel_type: u8) -> Result<u64, StoreError> {
        let k = ChannelKeys::new(channel_id, channel_type, self.slots);
        self.get_sm(&k.last_seq())?.map(|r| super::decode_u64("channel seq", &r)).transpose().map(|s| s.unwrap_or(0))
    }

    /// `uid`'s conversations, at most `limit`: (stored channel id, channel type, record), a slot at a time.
    pub fn conversations(&self, uid: &str, limit: usize) -> Result<Vec<(String, u8, ConversationRecord)>, StoreError> {
        let mut out = Vec::new();
        for slot in 0..self.slots {
            let prefix = keys::conversations_of(uid, slot);
            for item in self.db.iterator_cf(self.cf(CF_SM)?, IteratorMode::From(&prefix, Direction::Forward)) {
                let (k, v) = item?;
                let Some((channel_type, channel_id)) = keys::conversation_channel(&k, &prefix) else { break };
                if out.len() >= limit {
                    return Ok(out);
                }
                out.push((channel_id.to_string(), channel_type, super::decode("conversation", &v)?));
            }
        }
        Ok(out)
    }

    /// The oldest webhook events of `slot` waiting for delivery with an id from `from` on, at most
    /// `limit`, by id. (Rows delivered are deleted; starting past them skips their tombstones.)
    pub fn outbox(&self, slot: u16, from: u64, limit: usize) -> Result<Vec<(u64, OutboxEvent)>, StoreError> {
        let mut out = Vec::new();
        let start = keys::outbox(slot, from);
        for item in self.db.iterator_cf(self.cf(CF_SM)?, IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item?;
            let Some(id) = keys::outbox_id(&k, slot) else { break };
            if out.len() >= limit {
                break;
            }
            out.push((id, super::decode("outbox event", &v)?));
        }
        Ok(out)
    }

    /// How many webhook events of `slot` wait, counted up to `cap`.
    pub fn outbox_len(&self, slot: u16, from: u64, cap: usize) -> Result<usize, StoreError> {
        let start = keys::outbox(slot, from);
        let mut n = 0;
        for item in self.db.iterator_cf(self.cf(CF_SM)?, IteratorMode::From(&start, Direction::Forward)) {
            let (k, _) = item?;
            if keys::outbox_id(&k, slot).is_none() || n >= cap {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    pub fn message(&self, channel_id: &str, channel_type: u8, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
        let k = ChannelKeys::new(channel_id, channel_type, self.slots);
        self.get_sm(&k.message(seq))?.map(|r| super::decode("message", &r)).transpose()
    }

    /// Messages with `from <= seq < to`, ascending, at most `limit`.
    pub fn messages_up(
        &self,
        channel_id: &str,
        channel_type: u8,
        from: u64,
        to: u64,
        page: Page,
    ) -> Result<Paged, StoreError> {
        let k = ChannelKeys::new(channel_id, channel_type, self.slots);
        let end = k.message(to);
        self.scan_messages(&k.message(from), Direction::Forward, |key| key >= end.as_slice(), page)
    }

    /// Messages with `to < seq <= from`, newest first, at most `limit`.
    pub fn messages_down(
        &self,
        channel_id: &str,
        channel_type: u8,
        from: u64,
        to: u64,
        page: Page,
    ) -> Result<Paged, StoreError> {
        let k = ChannelKeys::new(channel_id, channel_type, self.slots);
        let end = k.message(to);
        self.scan_messages(&k.message(from), Direction::Reverse, |key| key <= end.as_slice(), page)
    }

    /// Both bounds are message keys of one channel, so every key between them is one of its messages.
    fn scan_messages(
        &self,
        start: &[u8],
        direction: Direction,
        past_end: impl Fn(&[u8]) -> bool,
        page: Page,
    ) -> Result<Paged, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for item in self.db.iterator_cf(self.cf(CF_SM)?, IteratorMode::From(start, direction)) {
            let (key, v) = item?;
            if past_end(&key) {
                break;
            }
            bytes += v.len();
            if out.len() >= page.limit || (!out.is_empty() && bytes > page.max_bytes) {
                return Ok(Paged { messages: out, more: true });
            }
            out.push(super::decode("message", &v)?);
        }
        Ok(Paged { messages: out, more: false })
    }
}

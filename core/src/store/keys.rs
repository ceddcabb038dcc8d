//! RocksDB key layout. Every state-machine key starts with a tag byte and the 2-byte slot of the channel
//! (or uid) it belongs to, so moving slots between raft groups later is a range copy, not a rewrite.
//!
//! ```text
//! log CF   : index u64 BE                               -> raft entry
//! meta CF  : "vote" | "committed" | "purged"            -> raft metadata
//! sm CF    : 'A' applied | 'M' membership               -> raft state-machine metadata
//!            'u' slot uid 0 device_flag                 -> token record
//!            'c' slot type id                           -> channel record
//!            's' slot type id 0 uid                     -> subscriber marker
//!            'q' slot type id                           -> last message seq (u64 BE)
//!            'm' slot type id 0 seq(u64 BE)             -> message
//!            'd' slot type id 0 from_uid 0 client_msg_no -> (message id, seq) for dedup
//! ```
//! Channel ids and uids never contain a 0 byte (they are validated), so the 0 separators keep prefixes
//! of different channels apart.

use tern_shared::channel::slot_of;

pub const APPLIED: &[u8] = b"A";
pub const MEMBERSHIP: &[u8] = b"M";

pub const VOTE: &[u8] = b"vote";
pub const COMMITTED: &[u8] = b"committed";
pub const PURGED: &[u8] = b"purged";

pub fn log(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Builds keys for one channel in a cluster with `slots` slots.
#[derive(Debug, Clone)]
pub struct ChannelKeys {
    base: Vec<u8>,
}

fn head(tag: u8, slot: u16) -> Vec<u8> {
    let mut k = Vec::with_capacity(48);
    k.push(tag);
    k.extend_from_slice(&slot.to_be_bytes());
    k
}

impl ChannelKeys {
    pub fn new(channel_id: &str, channel_type: u8, slots: u16) -> Self {
        let mut base = head(0, slot_of(channel_id, slots));
        base.push(channel_type);
        base.extend_from_slice(channel_id.as_bytes());
        ChannelKeys { base }
    }

    fn with(&self, tag: u8, tail: &[&[u8]]) -> Vec<u8> {
        let mut k = self.base.clone();
        k[0] = tag;
        for part in tail {
            k.extend_from_slice(part);
        }
        k
    }

    pub fn channel(&self) -> Vec<u8> {
        self.with(b'c', &[])
    }
    pub fn last_seq(&self) -> Vec<u8> {
        self.with(b'q', &[])
    }
    pub fn subscriber(&self, uid: &str) -> Vec<u8> {
        self.with(b's', &[&[0], uid.as_bytes()])
    }
    pub fn subscriber_prefix(&self) -> Vec<u8> {
        self.with(b's', &[&[0]])
    }
    pub fn message(&self, seq: u64) -> Vec<u8> {
        self.with(b'm', &[&[0], &seq.to_be_bytes()])
    }
    pub fn dedup(&self, from_uid: &str, client_msg_no: &str) -> Vec<u8> {
        self.with(b'd', &[&[0], from_uid.as_bytes(), &[0], client_msg_no.as_bytes()])
    }
}

pub fn token(uid: &str, device_flag: u8, slots: u16) -> Vec<u8> {
    let mut k = head(b'u', slot_of(uid, slots));
    k.extend_from_slice(uid.as_bytes());
    k.push(0);
    k.push(device_flag);
    k
}

/// The uid at the end of a subscriber key that starts with `prefix`.
pub fn subscriber_uid<'a>(key: &'a [u8], prefix: &[u8]) -> Option<&'a str> {
    key.strip_prefix(prefix).and_then(|uid| std::str::from_utf8(uid).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_do_not_collide() {
        let a = ChannelKeys::new("g1", 2, 64);
        let b = ChannelKeys::new("g10", 2, 64);
        assert!(!b.subscriber("x").starts_with(&a.subscriber_prefix()));
        assert!(a.subscriber("u").starts_with(&a.subscriber_prefix()));
        assert_eq!(subscriber_uid(&a.subscriber("u1"), &a.subscriber_prefix()), Some("u1"));
        // Messages of one channel sort by seq.
        assert!(a.message(2) < a.message(10));
    }
}

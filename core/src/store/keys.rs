//! RocksDB key layout. Each slot is its own raft group: every key starts with (or, in the state machine,
//! follows a tag byte with) the 2-byte slot of the channel or uid it belongs to, so a group's data is a
//! handful of key ranges.
//!
//! ```text
//! log CF   : slot index u64 BE                          -> raft entry
//! meta CF  : ("vote" | "committed" | "purged") slot      -> raft metadata
//!            "cluster"                                  -> slot count, recorded at creation
//! sm CF    : 'A' slot applied | 'M' slot membership     -> raft state-machine metadata
//!            'u' slot uid 0 device_flag                 -> token record
//!            'c' slot type id                           -> channel record
//!            's' slot type id 0 uid                     -> subscriber marker
//!            'q' slot type id                           -> last message seq (u64 BE)
//!            'm' slot type id 0 seq(u64 BE)             -> message
//!            'd' slot type id 0 from_uid 0 client_msg_no -> (message id, seq) for dedup
//!            'w' slot uid 0 type id                     -> uid's conversation in the channel (read position)
//!            'o' slot id(u64 BE)                        -> webhook event waiting for delivery (outbox)
//!            'b' slot type id 0 uid                     -> uid is on the channel's deny list
//!            'a' slot type id 0 uid                     -> uid is on the channel's allow list
//!            'y' slot uid                               -> uid is a system uid
//! ```
//! A conversation key lives in its channel's slot (so one raft entry writes a message and its sender's
//! read position), but starts with the uid: a user's conversations are one prefix in each slot.
//! Channel ids and uids never contain a 0 byte (they are validated), so the 0 separators keep prefixes
//! of different channels apart.

use tern_shared::channel::slot_of;

/// The state-machine tags that hold a slot's data (what its snapshot carries).
pub const DATA_TAGS: [u8; 11] = *b"ucsqmdwobay";

pub fn applied(slot: u16) -> Vec<u8> {
    head(b'A', slot)
}
pub fn membership(slot: u16) -> Vec<u8> {
    head(b'M', slot)
}
/// Present while a snapshot is being installed into the slot: the snapshot's id.
pub fn installing(slot: u16) -> Vec<u8> {
    head(b'I', slot)
}

pub const VOTE: &[u8] = b"vote";
pub const COMMITTED: &[u8] = b"committed";
pub const PURGED: &[u8] = b"purged";
pub const CLUSTER: &[u8] = b"cluster";

/// A raft metadata key of one group.
pub fn meta(name: &[u8], slot: u16) -> Vec<u8> {
    let mut k = name.to_vec();
    k.extend_from_slice(&slot.to_be_bytes());
    k
}

pub fn log(slot: u16, index: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(&slot.to_be_bytes());
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The index of a log key of group `slot`; `None` for another group's key.
pub fn log_index(key: &[u8], slot: u16) -> Option<u64> {
    let index = key.strip_prefix(slot.to_be_bytes().as_slice())?;
    index.try_into().ok().map(u64::from_be_bytes)
}

/// Start of the keys under `tag` for `slot`, and the end (exclusive).
pub fn slot_range(tag: u8, slot: u16) -> (Vec<u8>, Vec<u8>) {
    let start = head(tag, slot);
    let end = match slot.checked_add(1) {
        Some(next) => head(tag, next),
        None => vec![tag + 1],
    };
    (start, end)
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
    /// A uid on one of the channel's lists (`DENY` or `ALLOW`), and the start of that list.
    pub fn listed(&self, list: u8, uid: &str) -> Vec<u8> {
        self.with(list, &[&[0], uid.as_bytes()])
    }
    pub fn list_prefix(&self, list: u8) -> Vec<u8> {
        self.with(list, &[&[0]])
    }
    pub fn message(&self, seq: u64) -> Vec<u8> {
        self.with(b'm', &[&[0], &seq.to_be_bytes()])
    }
    pub fn dedup(&self, from_uid: &str, client_msg_no: &str) -> Vec<u8> {
        self.with(b'd', &[&[0], from_uid.as_bytes(), &[0], client_msg_no.as_bytes()])
    }
    pub fn conversation(&self, uid: &str) -> Vec<u8> {
        let mut k = self.base[..3].to_vec();
        k[0] = b'w';
        k.extend_from_slice(uid.as_bytes());
        k.push(0);
        k.extend_from_slice(&self.base[3..]);
        k
    }
}

pub fn system_uid(uid: &str, slots: u16) -> Vec<u8> {
    let mut k = head(b'y', slot_of(uid, slots));
    k.extend_from_slice(uid.as_bytes());
    k
}

/// The tags of a channel's deny list and allow list.
pub const DENY: u8 = b'b';
pub const ALLOW: u8 = b'a';

/// An outbox row of `slot`; ids are the message ids of the entries that wrote them, so they grow.
pub fn outbox(slot: u16, id: u64) -> Vec<u8> {
    let mut k = head(b'o', slot);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The id of an outbox key of `slot`.
pub fn outbox_id(key: &[u8], slot: u16) -> Option<u64> {
    let rest = key.strip_prefix(head(b'o', slot).as_slice())?;
    rest.try_into().ok().map(u64::from_be_bytes)
}

/// Start of `uid`'s conversation keys in `slot`.
pub fn conversations_of(uid: &str, slot: u16) -> Vec<u8> {
    let mut k = head(b'w', slot);
    k.extend_from_slice(uid.as_bytes());
    k.push(0);
    k
}

/// The channel (type, id) of a conversation key that starts with `prefix` (`conversations_of`).
pub fn conversation_channel<'a>(key: &'a [u8], prefix: &[u8]) -> Option<(u8, &'a str)> {
    let (&channel_type, id) = key.strip_prefix(prefix)?.split_first()?;
    Some((channel_type, std::str::from_utf8(id).ok()?))
}

pub fn token(uid: &str, device_flag: u8, slots: u16) -> Vec<u8> {
    let mut k = head(b'u', slot_of(uid, slots));
    k.extend_from_slice(uid.as_bytes());
    k.push(0);
    k.push(device_flag);
    k
}

/// The uid at the end of a subscriber or list key that starts with `prefix`.
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

    #[test]
    fn a_users_conversations_are_one_prefix_per_slot() {
        let k = ChannelKeys::new("g1", 2, 64);
        let prefix = conversations_of("u1", slot_of("g1", 64));
        assert_eq!(conversation_channel(&k.conversation("u1"), &prefix), Some((2, "g1")));
        assert!(!k.conversation("u10").starts_with(&prefix));
        let (start, end) = slot_range(b'w', slot_of("g1", 64));
        assert!(start <= k.conversation("u1") && k.conversation("u1") < end);
    }

    #[test]
    fn a_slot_range_holds_its_slot_only() {
        let k = ChannelKeys::new("g1", 2, 64);
        let slot = slot_of("g1", 64);
        let (start, end) = slot_range(b'm', slot);
        assert!(start <= k.message(1) && k.message(u64::MAX) < end);
        let (next, _) = slot_range(b'm', slot + 1);
        assert_eq!(end, next);
        assert_eq!(log_index(&log(3, 42), 3), Some(42));
        assert_eq!(log_index(&log(4, 42), 3), None);
        assert!(log(3, u64::MAX) < log(4, 0));
    }
}

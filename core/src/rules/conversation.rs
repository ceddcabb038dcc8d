//! Conversation sync in read mode: which of a user's conversations a client is sent, from which seq its
//! recent messages are taken, and how many are unread. Computed when asked from each conversation's
//! read position and its channel's last seq (WuKongIM's rules, `/conversation/sync`).

use crate::store::model::ConversationRecord;
use std::collections::HashMap;
use tern_shared::channel::{kind, person_channel_for};

/// What a client asks of `/conversation/sync`.
#[derive(Debug, Default)]
pub struct SyncQuery {
    pub uid: String,
    /// Above 0: the client has synced before, so only what it has not read is new to it.
    pub version: i64,
    /// The newest seq the client holds, by (channel id as the client names it, channel type).
    pub client_seqs: HashMap<(String, u8), u64>,
    pub only_unread: bool,
    /// Left out, unless the client names the channel in `client_seqs`.
    pub exclude_channel_types: Vec<u8>,
}

/// One of the user's conversations as stored, with its channel's last seq.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The stored channel id (`a@b` for a person channel).
    pub channel_id: String,
    pub channel_type: u8,
    pub record: ConversationRecord,
    pub last_seq: u64,
}

/// A conversation the client is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The channel as the user names it: the other uid for a person channel.
    pub channel_id: String,
    /// Recent messages are taken from this seq up to the last.
    pub from_seq: u64,
    pub unread: u64,
    pub read_to: u64,
}

/// `last_msg_seqs`: `channel_id:channel_type:seq` entries joined by `|`; malformed entries are
/// skipped and unreadable numbers count as 0, as WuKongIM parses them.
pub fn client_seqs(text: &str) -> HashMap<(String, u8), u64> {
    let mut seqs = HashMap::new();
    for entry in text.split('|') {
        let parts: Vec<&str> = entry.split(':').collect();
        if let [id, channel_type, seq] = parts[..] {
            seqs.insert((id.to_string(), channel_type.parse().unwrap_or(0)), seq.parse().unwrap_or(0));
        }
    }
    seqs
}

/// The conversation the client is sent for `c`, if any: one with a message newer than what the client
/// holds (or, after a first sync, has read), and newer than the user's deletion.
pub fn plan(q: &SyncQuery, c: &Stored) -> Option<Planned> {
    let channel_id = match c.channel_type {
        kind::PERSON => person_channel_for(&c.channel_id, &q.uid).to_string(),
        _ => c.channel_id.clone(),
    };
    let held = q.client_seqs.get(&(channel_id.clone(), c.channel_type)).copied();
    if held.is_none() && q.exclude_channel_types.contains(&c.channel_type) {
        return None;
    }
    let read_to = c.record.read_seq.min(c.last_seq);
    let mut from_seq = match held {
        Some(seq) => seq + 1,
        None if q.version > 0 || q.only_unread => read_to + 1,
        None => 1,
    };
    if let Some(deleted) = c.record.deleted_at_seq {
        from_seq = from_seq.max(deleted + 1);
    }
    (c.last_seq >= from_seq).then(|| Planned { channel_id, from_seq, unread: c.last_seq - read_to, read_to })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(channel_id: &str, channel_type: u8, read_seq: u64, last_seq: u64) -> Stored {
        let record = ConversationRecord { read_seq, ..Default::default() };
        Stored { channel_id: channel_id.into(), channel_type, record, last_seq }
    }

    fn query() -> SyncQuery {
        SyncQuery { uid: "alice".into(), ..Default::default() }
    }

    #[test]
    fn unread_is_the_last_seq_past_the_read_position() {
        let p = plan(&query(), &stored("g", kind::GROUP, 3, 10)).unwrap();
        assert_eq!((p.unread, p.read_to, p.from_seq), (7, 3, 1));
        // A person channel is named by the other party.
        let p = plan(&query(), &stored("bob@alice", kind::PERSON, 0, 2)).unwrap();
        assert_eq!((p.channel_id.as_str(), p.unread), ("bob", 2));
        // Nothing in the channel yet: nothing to send.
        assert_eq!(plan(&query(), &stored("g", kind::GROUP, 0, 0)), None);
    }

    #[test]
    fn later_syncs_start_past_what_the_client_holds_or_has_read() {
        let mut q = query();
        q.client_seqs = client_seqs("g:2:8|bad|bob:1:x");
        assert_eq!(q.client_seqs.get(&("bob".to_string(), 1)), Some(&0));
        assert_eq!(plan(&q, &stored("g", kind::GROUP, 3, 10)).unwrap().from_seq, 9);
        assert_eq!(plan(&q, &stored("g", kind::GROUP, 3, 8)), None);
        q.only_unread = true;
        assert_eq!(plan(&q, &stored("h", kind::GROUP, 5, 5)), None);
        assert_eq!(plan(&q, &stored("h", kind::GROUP, 5, 6)).unwrap().from_seq, 6);
    }

    #[test]
    fn a_deleted_conversation_returns_with_a_newer_message() {
        let mut c = stored("g", kind::GROUP, 4, 4);
        c.record.deleted_at_seq = Some(4);
        assert_eq!(plan(&query(), &c), None);
        c.last_seq = 6;
        let p = plan(&query(), &c).unwrap();
        assert_eq!((p.from_seq, p.unread), (5, 2));
    }

    #[test]
    fn excluded_types_stay_out_unless_the_client_names_them() {
        let mut q = query();
        q.exclude_channel_types = vec![kind::GROUP];
        assert_eq!(plan(&q, &stored("g", kind::GROUP, 0, 1)), None);
        q.client_seqs = client_seqs("g:2:0");
        assert!(plan(&q, &stored("g", kind::GROUP, 0, 1)).is_some());
    }
}

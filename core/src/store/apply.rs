//! Deterministic application of commands to the state machine. Every replica runs the same commands in
//! the same order against the same state and so reaches the same result; wall-clock time and randomness
//! come in through the commands, never from here.

use super::keys::{self, ChannelKeys};
use super::model::{ChannelRecord, ConversationRecord, DedupRecord, OutboxEvent, StoredMessage, TokenRecord};
use super::{Db, StoreError, CF_SM};
use crate::raft::{Command, CommandResult, ConversationChange, ListChange, MemberList, NewMessage, Origin};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use std::collections::BTreeMap;
use tern_shared::channel::{kind, person_pair, slot_of};
use tern_shared::proto::{flag, Reason};

/// Most commands one raft entry may hold; message ids are `(log index * MAX_BATCH + position) << 12 | slot`.
pub const MAX_BATCH: usize = 4096;

/// A message just stored, for fan-out.
#[derive(Debug, Clone)]
pub struct Applied {
    pub message: StoredMessage,
    pub origin: Option<Origin>,
}

/// Reads through the writes of the entries applied so far in this call, which are not in RocksDB yet.
pub struct Overlay<'a> {
    db: &'a Db,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    pub fn new(db: &'a Db) -> Self {
        Overlay { db, writes: BTreeMap::new() }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        Ok(self.db.db.get_cf(self.db.cf(CF_SM)?, key)?)
    }

    fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Every key under `prefix`, as the writes so far leave them.
    fn keys_under(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.keys_while(prefix, |k| k.starts_with(prefix))
    }

    /// The keys from `start` on while `within` holds, as the writes so far leave them.
    fn keys_while(&self, start: &[u8], within: impl Fn(&[u8]) -> bool) -> Result<Vec<Vec<u8>>, StoreError> {
        let cf = self.db.cf(CF_SM)?;
        let mut found = std::collections::BTreeSet::new();
        for item in self.db.db.iterator_cf(cf, IteratorMode::From(start, Direction::Forward)) {
            let (k, _) = item?;
            if !within(&k) {
                break;
            }
            found.insert(k.to_vec());
        }
        for (k, v) in self.writes.range(start.to_vec()..).take_while(|(k, _)| within(k)) {
            match v {
                Some(_) => found.insert(k.clone()),
                None => found.remove(k),
            };
        }
        Ok(found.into_iter().collect())
    }

    /// Whether any key lies under `prefix`, as the writes so far leave them (reads one key, not all).
    fn any_under(&self, prefix: &[u8]) -> Result<bool, StoreError> {
        let under = self.writes.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix));
        if under.clone().any(|(_, v)| v.is_some()) {
            return Ok(true);
        }
        let deleted: std::collections::BTreeSet<&Vec<u8>> = under.map(|(k, _)| k).collect();
        let cf = self.db.cf(CF_SM)?;
        for item in self.db.db.iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward)) {
            let (k, _) = item?;
            if !k.starts_with(prefix) {
                return Ok(false);
            }
            if !deleted.contains(&k.to_vec()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StoreError> {
        for k in self.keys_under(prefix)? {
            self.delete(k);
        }
        Ok(())
    }

    pub fn write_into(self, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let cf = self.db.cf(CF_SM)?;
        for (k, v) in self.writes {
            match v {
                Some(v) => batch.put_cf(cf, k, v),
                None => batch.delete_cf(cf, k),
            }
        }
        Ok(())
    }
}

/// Applies one command at `message_id` (used only if it stores a message).
pub fn apply_command(
    st: &mut Overlay<'_>,
    cmd: Command,
    message_id: i64,
    applied: &mut Vec<Applied>,
) -> Result<CommandResult, StoreError> {
    let slots = st.db.slots;
    match cmd {
        Command::SetToken { uid, device_flag, token, device_level } => {
            return apply_command(st, Command::set_token(uid, device_flag, &token, device_level), message_id, applied);
        }
        Command::SetTokenHash { uid, device_flag, hash, device_level } => {
            st.put(keys::token(&uid, device_flag, slots), TokenRecord { hash, device_level }.encode());
        }
        Command::RemoveToken { uid, device_flag } => st.delete(keys::token(&uid, device_flag, slots)),
        Command::UpsertChannel { channel, subscribers } => {
            let k = ChannelKeys::new(&channel.channel_id, channel.channel_type, slots);
            join(st, &k, channel.channel_type, &subscribers)?;
            st.put(k.channel(), super::encode(&channel));
        }
        Command::DeleteChannel { channel_id, channel_type } => {
            let k = ChannelKeys::new(&channel_id, channel_type, slots);
            st.delete(k.channel());
            leave(st, &k, &subscribers(st, &k)?);
            st.delete_prefix(&k.subscriber_prefix())?;
        }
        Command::AddSubscribers { channel_id, channel_type, reset, uids } => {
            let k = ChannelKeys::new(&channel_id, channel_type, slots);
            if !st.exists(&k.channel())? {
                st.put(k.channel(), super::encode(&ChannelRecord { channel_id, channel_type, ..Default::default() }));
            }
            if reset {
                let gone: Vec<String> = subscribers(st, &k)?.into_iter().filter(|u| !uids.contains(u)).collect();
                leave(st, &k, &gone);
                st.delete_prefix(&k.subscriber_prefix())?;
            }
            join(st, &k, channel_type, &uids)?;
        }
        Command::RemoveSubscribers { channel_id, channel_type, uids } => {
            let k = ChannelKeys::new(&channel_id, channel_type, slots);
            leave(st, &k, &uids);
        }
        Command::Send(msg) => return store_message(st, msg, message_id, applied),
        Command::SendWithEvents(msg) => {
            let (slot, channel_id, channel_type) =
                (slot_of(&msg.channel_id, slots), msg.channel_id.clone(), msg.channel_type);
            let result = store_message(st, msg, message_id, applied)?;
            if let CommandResult::Sent { message_seq, duplicate: false, .. } = result {
                // Unstored messages (no_persist) cannot be read back when their event is sent.
                if message_seq > 0 {
                    let event = OutboxEvent::Message { channel_id, channel_type, message_seq };
                    st.put(keys::outbox(slot, message_id as u64), super::encode(&event));
                }
            }
            return Ok(result);
        }
        Command::SetList { channel_id, channel_type, list, change, uids } => {
            let k = ChannelKeys::new(&channel_id, channel_type, slots);
            let tag = match list {
                MemberList::Deny => keys::DENY,
                MemberList::Allow => keys::ALLOW,
            };
            if change == ListChange::Set {
                st.delete_prefix(&k.list_prefix(tag))?;
            }
            for uid in &uids {
                match change {
                    ListChange::Add | ListChange::Set => st.put(k.listed(tag, uid), Vec::new()),
                    ListChange::Remove => st.delete(k.listed(tag, uid)),
                }
            }
            // A denied member no longer has the conversation (as WuKongIM); allowed again, it gets it back.
            if list == MemberList::Deny && channel_type != kind::PERSON {
                match change {
                    ListChange::Add | ListChange::Set => {
                        for uid in &uids {
                            st.delete(k.conversation(uid));
                        }
                    }
                    ListChange::Remove => {
                        let members = subscribers(st, &k)?;
                        let back: Vec<String> = uids.into_iter().filter(|u| members.contains(u)).collect();
                        join(st, &k, channel_type, &back)?;
                    }
                }
            }
        }
        Command::SystemUid { uid, system } => {
            let key = keys::system_uid(&uid, slots);
            if system {
                st.put(key, Vec::new());
            } else {
                st.delete(key);
            }
        }
        Command::PresenceEvent { uid, line } => {
            st.put(keys::outbox(slot_of(&uid, slots), message_id as u64), super::encode(&OutboxEvent::Online(line)));
        }
        Command::OutboxDone { slot, upto } => {
            let done = |key: &[u8]| keys::outbox_id(key, slot).is_some_and(|id| id <= upto);
            for key in st.keys_while(&keys::outbox(slot, 0), done)? {
                st.delete(key);
            }
        }
        Command::SetConversation { uid, channel_id, channel_type, change, at_ms } => {
            let k = ChannelKeys::new(&channel_id, channel_type, slots);
            let last = last_seq(st, &k)?;
            let existing = conversation(st, &k, &uid)?;
            let mut c = match (existing, change) {
                // Deleting a conversation the user does not have changes nothing (as WuKongIM).
                (None, ConversationChange::Delete) => return Ok(CommandResult::Done),
                (c, _) => c.unwrap_or_default(),
            };
            match change {
                ConversationChange::Unread(n) => c.read_seq = last.saturating_sub(n),
                ConversationChange::Delete => {
                    c.read_seq = last;
                    c.deleted_at_seq = Some(last);
                }
            }
            c.changed_ms = at_ms;
            st.put(k.conversation(&uid), super::encode(&c));
        }
    }
    Ok(CommandResult::Done)
}

fn subscribers(st: &Overlay<'_>, k: &ChannelKeys) -> Result<Vec<String>, StoreError> {
    let prefix = k.subscriber_prefix();
    let keys = st.keys_under(&prefix)?;
    Ok(keys.iter().filter_map(|key| keys::subscriber_uid(key, &prefix)).map(str::to_string).collect())
}

fn last_seq(st: &Overlay<'_>, k: &ChannelKeys) -> Result<u64, StoreError> {
    st.get(&k.last_seq())?.map(|raw| super::decode_u64("channel seq", &raw)).transpose().map(|s| s.unwrap_or(0))
}

fn conversation(st: &Overlay<'_>, k: &ChannelKeys, uid: &str) -> Result<Option<ConversationRecord>, StoreError> {
    st.get(&k.conversation(uid))?.map(|raw| super::decode("conversation", &raw)).transpose()
}

/// New members: subscribed, with a conversation in which what came before them counts as read (none
/// in a temporary channel, as WuKongIM).
fn join(st: &mut Overlay<'_>, k: &ChannelKeys, channel_type: u8, uids: &[String]) -> Result<(), StoreError> {
    let read = ConversationRecord { read_seq: last_seq(st, k)?, ..Default::default() };
    for uid in uids {
        st.put(k.subscriber(uid), Vec::new());
        if channel_type != kind::TEMP && conversation(st, k, uid)?.is_none() {
            st.put(k.conversation(uid), super::encode(&read));
        }
    }
    Ok(())
}

fn leave(st: &mut Overlay<'_>, k: &ChannelKeys, uids: &[String]) {
    for uid in uids {
        st.delete(k.subscriber(uid));
        st.delete(k.conversation(uid));
    }
}

/// A stored message's effect on conversations: a person channel's parties get one on its first
/// message; the sender has read everything up to what it sent. Nothing is written per group member.
fn on_message(st: &mut Overlay<'_>, k: &ChannelKeys, msg: &NewMessage, seq: u64) -> Result<(), StoreError> {
    if msg.channel_type == kind::PERSON {
        for uid in person_pair(&msg.channel_id).into_iter().flat_map(|(a, b)| [a, b]) {
            if uid != msg.from_uid && conversation(st, k, uid)?.is_none() {
                st.put(k.conversation(uid), super::encode(&ConversationRecord::default()));
            }
        }
    }
    let sender = conversation(st, k, &msg.from_uid)?;
    let party = msg.channel_type == kind::PERSON || st.exists(&k.subscriber(&msg.from_uid))?;
    if sender.is_some() || (party && !msg.from_uid.is_empty()) {
        let mut c = sender.unwrap_or_default();
        c.read_seq = c.read_seq.max(seq);
        st.put(k.conversation(&msg.from_uid), super::encode(&c));
    }
    Ok(())
}

fn may_send(st: &Overlay<'_>, k: &ChannelKeys, msg: &NewMessage) -> Result<Option<Reason>, StoreError> {
    if msg.channel_type == kind::PERSON {
        let member = person_pair(&msg.channel_id).is_some_and(|(a, b)| a == msg.from_uid || b == msg.from_uid);
        return Ok((msg.check_sender && !member).then_some(Reason::ChannelIdError));
    }
    let Some(raw) = st.get(&k.channel())? else {
        return Ok(Some(Reason::ChannelNotExist));
    };
    let channel: ChannelRecord = super::decode("channel", &raw)?;
    // WuKongIM's order. A business server's sends pass the sender checks.
    if channel.ban {
        return Ok(Some(Reason::Ban));
    }
    if channel.disband {
        return Ok(Some(Reason::Disband));
    }
    if !msg.check_sender {
        return Ok(None);
    }
    if channel.send_ban {
        return Ok(Some(Reason::SendBan));
    }
    if st.exists(&k.listed(keys::DENY, &msg.from_uid))? {
        return Ok(Some(Reason::InDenyList));
    }
    if !st.exists(&k.subscriber(&msg.from_uid))? {
        return Ok(Some(Reason::SubscriberNotExist));
    }
    if st.any_under(&k.list_prefix(keys::ALLOW))? && !st.exists(&k.listed(keys::ALLOW, &msg.from_uid))? {
        return Ok(Some(Reason::NotInAllowList));
    }
    Ok(None)
}

fn store_message(
    st: &mut Overlay<'_>,
    msg: NewMessage,
    message_id: i64,
    applied: &mut Vec<Applied>,
) -> Result<CommandResult, StoreError> {
    let k = ChannelKeys::new(&msg.channel_id, msg.channel_type, st.db.slots);
    if let Some(reason) = may_send(st, &k, &msg)? {
        return Ok(CommandResult::Rejected(reason.code()));
    }
    let dedup_key = (!msg.client_msg_no.is_empty()).then(|| k.dedup(&msg.from_uid, &msg.client_msg_no));
    if let Some(key) = &dedup_key {
        if let Some(raw) = st.get(key)? {
            let d: DedupRecord = super::decode("dedup", &raw)?;
            return Ok(CommandResult::Sent { message_id: d.message_id, message_seq: d.message_seq, duplicate: true });
        }
    }
    let persist = msg.header_flags & flag::NO_PERSIST == 0;
    let mut message_seq = 0;
    if persist {
        // A corrupt counter fails the apply: guessing a seq could overwrite stored messages.
        message_seq = match st.get(&k.last_seq())? {
            Some(raw) => super::decode_u64("channel seq", &raw)? + 1,
            None => 1,
        };
        st.put(k.last_seq(), message_seq.to_be_bytes().to_vec());
        on_message(st, &k, &msg, message_seq)?;
    }
    let origin = msg.origin.clone();
    let stored = StoredMessage::new(msg, message_id, message_seq);
    if persist {
        st.put(k.message(message_seq), super::encode(&stored));
        if let Some(key) = dedup_key {
            st.put(key, super::encode(&DedupRecord { message_id, message_seq }));
        }
    }
    applied.push(Applied { message: stored, origin });
    Ok(CommandResult::Sent { message_id, message_seq, duplicate: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::ChannelRecord;

    /// Applies `cmd` and writes it to the db; returns how many keys it wrote.
    fn apply(db: &Db, cmd: Command) -> usize {
        let mut st = Overlay::new(db);
        apply_command(&mut st, cmd, 1, &mut Vec::new()).unwrap();
        let written = st.writes.len();
        let mut batch = WriteBatch::default();
        st.write_into(&mut batch).unwrap();
        db.db.write(batch).unwrap();
        written
    }

    fn to_group(id: &str, from: &str, no: &str) -> Command {
        Command::Send(NewMessage {
            from_uid: from.into(),
            channel_id: id.into(),
            channel_type: kind::GROUP,
            client_msg_no: no.into(),
            payload: b"{}".to_vec(),
            check_sender: true,
            ..Default::default()
        })
    }

    #[test]
    fn a_group_message_writes_the_same_keys_whatever_the_group_s_size() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db"), 8).unwrap();
        for (id, members) in [("g10", 10), ("g100", 100), ("g10k", 10_000), ("g100k", 100_000)] {
            let channel = ChannelRecord { channel_id: id.into(), channel_type: kind::GROUP, ..Default::default() };
            let subscribers = (0..members).map(|i| format!("u{i}")).collect();
            // Joining writes per member (a subscriber marker and a conversation each), once.
            assert_eq!(apply(&db, Command::UpsertChannel { channel, subscribers }), 2 * members + 1);
            // A message: itself, the channel's last seq, its dedup record and its sender's read position.
            assert_eq!(apply(&db, to_group(id, "u1", "m1")), 4, "{id}");
            assert_eq!(apply(&db, to_group(id, "u1", "m2")), 4, "{id}");
        }
        let read = db.conversations("u1", 10).unwrap();
        assert!(read.iter().all(|(_, _, c)| c.read_seq == 2), "{read:?}");
        let unread = db.conversations("u2", 10).unwrap();
        assert!(unread.iter().all(|(_, _, c)| c.read_seq == 0), "{unread:?}");
    }
}

//! Deterministic application of commands to the state machine. Every replica runs the same commands in
//! the same order against the same state and so reaches the same result; wall-clock time and randomness
//! come in through the commands, never from here.

use super::keys::{self, ChannelKeys};
use super::model::{ChannelRecord, DedupRecord, StoredMessage, TokenRecord};
use super::{Db, StoreError, CF_SM};
use crate::raft::{Command, CommandResult, NewMessage, Origin};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use std::collections::BTreeMap;
use tern_shared::channel::{kind, person_pair};
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

    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StoreError> {
        let cf = self.db.cf(CF_SM)?;
        let mut doomed = Vec::new();
        for item in self.db.db.iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward)) {
            let (k, _) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            doomed.push(k.to_vec());
        }
        doomed.extend(self.writes.keys().filter(|k| k.starts_with(prefix)).cloned());
        for k in doomed {
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
            for uid in subscribers {
                st.put(k.subscriber(&uid), Vec::new());
            }
            st.put(k.channel(), super::encode(&channel));
        }
        Command::DeleteChannel { channel_id, channel_type } => {
            let k = ChannelKeys::new(&channel_id, channel_type, slots);
            st.delete(k.channel());
            st.delete_prefix(&k.subscriber_prefix())?;
        }
        Command::AddSubscribers { channel_id, channel_type, reset, uids } => {
            let k = ChannelKeys::new(&channel_id, channel_type, slots);
            if !st.exists(&k.channel())? {
                st.put(k.channel(), super::encode(&ChannelRecord { channel_id, channel_type, ..Default::default() }));
            }
            if reset {
                st.delete_prefix(&k.subscriber_prefix())?;
            }
            for uid in uids {
                st.put(k.subscriber(&uid), Vec::new());
            }
        }
        Command::RemoveSubscribers { channel_id, channel_type, uids } => {
            let k = ChannelKeys::new(&channel_id, channel_type, slots);
            for uid in uids {
                st.delete(k.subscriber(&uid));
            }
        }
        Command::Send(msg) => return store_message(st, msg, message_id, applied),
    }
    Ok(CommandResult::Done)
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
    if channel.disband {
        return Ok(Some(Reason::Disband));
    }
    if !msg.check_sender {
        return Ok(None);
    }
    if channel.ban {
        return Ok(Some(Reason::Ban));
    }
    if channel.send_ban {
        return Ok(Some(Reason::SendBan));
    }
    if !st.exists(&k.subscriber(&msg.from_uid))? {
        return Ok(Some(Reason::SubscriberNotExist));
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
    }
    let stored = StoredMessage {
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
    };
    if persist {
        st.put(k.message(message_seq), super::encode(&stored));
        if let Some(key) = dedup_key {
            st.put(key, super::encode(&DedupRecord { message_id, message_seq }));
        }
    }
    applied.push(Applied { message: stored, origin: msg.origin });
    Ok(CommandResult::Sent { message_id, message_seq, duplicate: false })
}

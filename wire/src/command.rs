//! What the raft log carries: batches of commands (group commit), and one result per command.

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Batch,
        R = BatchResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;

/// One raft entry: commands applied in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch(pub Vec<Command>);

/// One result per command of the batch; empty for blank and membership entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult(pub Vec<CommandResult>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Written by nodes from before tokens were hashed; still applied (hashing the token) so their
    /// logs replay. New tokens come as `SetTokenHash`.
    SetToken {
        uid: String,
        device_flag: u8,
        token: String,
        device_level: u8,
    },
    RemoveToken {
        uid: String,
        device_flag: u8,
    },
    /// Create or update a channel; `subscribers`, when given, are added.
    UpsertChannel {
        channel: ChannelRecord,
        subscribers: Vec<String>,
    },
    DeleteChannel {
        channel_id: String,
        channel_type: u8,
    },
    AddSubscribers {
        channel_id: String,
        channel_type: u8,
        reset: bool,
        uids: Vec<String>,
    },
    RemoveSubscribers {
        channel_id: String,
        channel_type: u8,
        uids: Vec<String>,
    },
    Send(NewMessage),
    /// A user's token, hashed (`tern_shared::secret::user_token_hash`) before it is proposed, so neither
    /// the log nor the store nor snapshots hold it.
    SetTokenHash {
        uid: String,
        device_flag: u8,
        hash: [u8; 32],
        device_level: u8,
    },
    /// `Send`, and the message goes into its slot's webhook outbox in the same entry.
    SendWithEvents(NewMessage),
    /// Outbox rows up to `upto` (ids) of the group of `slot` were delivered: they are removed. Routed
    /// by slot, not by key.
    OutboxDone {
        slot: u16,
        upto: u64,
    },
    /// Changes a channel's deny list or allow list. A person channel's lists are its owner's: the
    /// channel id is the uid whose senders they filter.
    SetList {
        channel_id: String,
        channel_type: u8,
        list: MemberList,
        change: ListChange,
        uids: Vec<String>,
    },
    /// `uid` becomes a system uid (or stops being one).
    SystemUid {
        uid: String,
        system: bool,
    },
    /// A session of `uid` came or went: a `user.onlinestatus` line for the webhook outbox.
    PresenceEvent {
        uid: String,
        line: String,
    },
    /// A user changes their conversation in a channel (the stored id); `at_ms` is when, set by the
    /// proposer.
    SetConversation {
        uid: String,
        channel_id: String,
        channel_type: u8,
        change: ConversationChange,
        at_ms: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberList {
    /// Its uids may not send to the channel (nor read a group).
    Deny,
    /// When not empty, only its uids may send.
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListChange {
    Add,
    Remove,
    /// The list becomes exactly the uids given (none: empty).
    Set,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationChange {
    /// Leave this many of the newest messages unread (0: everything read).
    Unread(u64),
    /// Hide the conversation until a newer message arrives, everything in it read.
    Delete,
}

impl Command {
    /// Sets `uid`'s token for one device flag, keeping only its hash.
    pub fn set_token(uid: String, device_flag: u8, token: &str, device_level: u8) -> Command {
        let hash = tern_shared::secret::user_token_hash(&uid, token);
        Command::SetTokenHash { uid, device_flag, hash, device_level }
    }

    /// The channel id or uid whose slot the command belongs to.
    pub fn key(&self) -> &str {
        match self {
            Command::SetToken { uid, .. } | Command::SetTokenHash { uid, .. } | Command::RemoveToken { uid, .. } => uid,
            Command::UpsertChannel { channel, .. } => &channel.channel_id,
            Command::DeleteChannel { channel_id, .. }
            | Command::AddSubscribers { channel_id, .. }
            | Command::RemoveSubscribers { channel_id, .. } => channel_id,
            Command::Send(m) | Command::SendWithEvents(m) => &m.channel_id,
            Command::OutboxDone { .. } => "",
            Command::PresenceEvent { uid, .. } => uid,
            Command::SetList { channel_id, .. } => channel_id,
            Command::SystemUid { uid, .. } => uid,
            Command::SetConversation { channel_id, .. } => channel_id,
        }
    }
}

/// Where a message came from, so fan-out can skip the sending connection itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub edge_id: String,
    pub session: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub from_uid: String,
    /// The stored channel id (already `a@b` for person channels).
    pub channel_id: String,
    pub channel_type: u8,
    pub client_msg_no: String,
    pub header_flags: u8,
    pub setting: u8,
    pub expire: u32,
    pub topic: String,
    pub payload: Vec<u8>,
    pub timestamp: i32,
    pub origin: Option<Origin>,
    /// Client sends must come from a member of the channel; business-server sends skip that check.
    pub check_sender: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Done,
    Sent {
        message_id: i64,
        message_seq: u64,
        duplicate: bool,
    },
    /// Refused by the state machine; the protocol reason code says why.
    Rejected(u8),
}

/// A channel's settings, as a command carries them and the store keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    pub channel_id: String,
    pub channel_type: u8,
    pub ban: bool,
    pub disband: bool,
    pub send_ban: bool,
    pub large: bool,
}

//! The frames exchanged on an edge↔core link. One link carries many client sessions; every frame that
//! concerns a session names it by the edge-assigned session id.

use serde::{Deserialize, Serialize};

/// The link version this release speaks. A link speaks the version the edge offered in the `Hello`
/// the core accepted; frames added in a version (marked "since") are sent only on links at that version
/// or later, so an edge and a core node of adjacent releases work together during an upgrade.
pub const LINK_VERSION: u16 = 7;
/// The oldest link version this release still speaks (the previous release's).
pub const MIN_LINK_VERSION: u16 = 6;

/// Whether this release speaks link version `v`.
pub fn speaks(v: u16) -> bool {
    (MIN_LINK_VERSION..=LINK_VERSION).contains(&v)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkFrame {
    /// First frame from the edge.
    Hello {
        version: u16,
        edge_id: String,
        addrs: EdgeAddrs,
        /// An edge keeps several links to each node. Lane 0 carries presence (the node counts the
        /// edge's sessions from it and sends deliveries over it); other lanes carry requests only.
        lane: u8,
        /// Random per edge process, the same on all its links: a core refuses a link that claims an
        /// edge id whose live links belong to another instance (two edges configured alike).
        instance: u64,
    },
    /// The core's answer to `Hello`.
    HelloAck {
        node_id: u64,
    },
    Ping(u64),
    /// Answer to `Ping`, with the leader of every slot's raft group as this node sees it (0: none), so
    /// the edge sends each request to the node leading the group it touches.
    Pong {
        nonce: u64,
        leaders: Vec<u64>,
    },
    /// Check a client's token.
    Auth {
        req: u64,
        uid: String,
        device_flag: u8,
        token: String,
    },
    AuthResult {
        req: u64,
        reason: u8,
        device_level: u8,
    },
    /// Presence: a session came up or went away on this edge. A session whose proof does not match the
    /// uid's token is not recorded (and, in a snapshot, kicked: its token changed while the link was down).
    SessionOpen(SessionInfo),
    SessionClose {
        session: u64,
    },
    /// Presence: every live session of this edge, sent after each (re)connect: the first chunk, which
    /// replaces what the core knew of this edge, ...
    PresenceSnapshot(Vec<SessionInfo>),
    /// ... and the chunks after it, so a snapshot of any size stays within the frame limit.
    PresenceMore(Vec<SessionInfo>),
    /// A client's SEND, already decrypted and checked by the edge.
    Send {
        req: u64,
        msg: OutgoingMessage,
    },
    /// Answer to `Send`; `reason` is a protocol reason code (1 = stored).
    SendResult {
        req: u64,
        reason: u8,
        message_id: i64,
        message_seq: u64,
    },
    /// A stored message for some sessions of this edge.
    Deliver(Delivery),
    /// Close a session (e.g. the same uid and device logged in elsewhere).
    Kick {
        session: u64,
        reason_code: u8,
        reason: String,
    },
    /// The core's answer to a `Hello` it turns away, and why; the link then closes.
    Refused(String),
    /// Since version 7, every second on the presence lane: the round trip the edge last measured on
    /// this link (ping to pong), on its presence lane to every core node (by node id), and the client
    /// connections it has accepted since it started, so any core node can show how far each edge is
    /// from each node and how fast clients arrive.
    LinkReport {
        micros: u64,
        by_node: Vec<(u64, u64)>,
        connects: u64,
    },
}

/// Addresses an edge advertises to clients (empty = not offered).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeAddrs {
    pub tcp: String,
    pub ws: String,
    pub wss: String,
    pub tls: String,
    pub quic: String,
    /// The edge's region: `/route` offers edges of the chosen one's region first as fallbacks.
    pub region: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session: u64,
    pub uid: String,
    pub device_flag: u8,
    pub device_level: u8,
    /// `tern_shared::secret::session_proof`: the core keeps only sessions whose proof matches the
    /// uid's stored token.
    pub proof: [u8; 32],
    /// The client's CONNECT `device_id`: a new login from the same device replaces the old one.
    pub device_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    pub session: u64,
    pub from_uid: String,
    pub device_flag: u8,
    /// Header flag bits of the SEND (redDot, syncOnce, noPersist).
    pub header_flags: u8,
    pub setting: u8,
    pub client_msg_no: String,
    /// As the client wrote it: for a person channel, the peer's uid.
    pub channel_id: String,
    pub channel_type: u8,
    pub expire: u32,
    pub topic: String,
    /// Plaintext payload.
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub message: DeliveredMessage,
    pub targets: Vec<DeliverTarget>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredMessage {
    pub message_id: i64,
    pub message_seq: u64,
    pub client_msg_no: String,
    pub from_uid: String,
    pub channel_type: u8,
    pub header_flags: u8,
    pub setting: u8,
    pub expire: u32,
    pub topic: String,
    pub timestamp: i32,
    pub payload: Vec<u8>,
}

/// Sessions that see the message under one channel id (person channels show each side the other uid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverTarget {
    pub channel_id: String,
    /// The sender's own other devices get no red dot.
    pub clear_red_dot: bool,
    pub sessions: Vec<u64>,
}

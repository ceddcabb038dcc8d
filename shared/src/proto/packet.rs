//! The packets of the client protocol, as plain data. Layout rules live in `codec.rs`.

/// Header flag bits (low nibble of the first byte).
pub mod flag {
    pub const DUP: u8 = 0x08;
    pub const SYNC_ONCE: u8 = 0x04;
    pub const RED_DOT: u8 = 0x02;
    pub const NO_PERSIST: u8 = 0x01;
    /// On CONNACK bit 0 means "a server version byte follows".
    pub const HAS_SERVER_VERSION: u8 = 0x01;
}

/// Bits of the per-message `setting` byte.
pub mod setting {
    pub const RECEIPT: u8 = 0x80;
    pub const SIGNAL: u8 = 0x20;
    pub const NO_ENCRYPT: u8 = 0x10;
    pub const TOPIC: u8 = 0x08;
    /// SDK 1.0.4 marks streams with 0x04, newer SDKs with 0x02; both are accepted.
    pub const STREAM: u8 = 0x04 | 0x02;
}

/// Lowest and highest protocol versions served; higher client versions are clamped to the latter.
pub const MIN_VERSION: u8 = 2;
pub const MAX_VERSION: u8 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    Connect = 1,
    Connack = 2,
    Send = 3,
    Sendack = 4,
    Recv = 5,
    Recvack = 6,
    Ping = 7,
    Pong = 8,
    Disconnect = 9,
    Sub = 10,
    Suback = 11,
    Event = 12,
}

impl PacketType {
    pub fn from_u8(v: u8) -> Option<Self> {
        use PacketType::*;
        Some(match v {
            1 => Connect,
            2 => Connack,
            3 => Send,
            4 => Sendack,
            5 => Recv,
            6 => Recvack,
            7 => Ping,
            8 => Pong,
            9 => Disconnect,
            10 => Sub,
            11 => Suback,
            12 => Event,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    Connack(Connack),
    Send(Send),
    Sendack(Sendack),
    Recv(Recv),
    Recvack(Recvack),
    Ping,
    Pong,
    Disconnect(Disconnect),
    Sub(Sub),
    Suback(Suback),
    Event(Event),
}

impl Packet {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::Connack(_) => PacketType::Connack,
            Packet::Send(_) => PacketType::Send,
            Packet::Sendack(_) => PacketType::Sendack,
            Packet::Recv(_) => PacketType::Recv,
            Packet::Recvack(_) => PacketType::Recvack,
            Packet::Ping => PacketType::Ping,
            Packet::Pong => PacketType::Pong,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Sub(_) => PacketType::Sub,
            Packet::Suback(_) => PacketType::Suback,
            Packet::Event(_) => PacketType::Event,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    pub flags: u8,
    pub version: u8,
    pub device_flag: u8,
    pub device_id: String,
    pub uid: String,
    pub token: String,
    pub client_timestamp: i64,
    pub client_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connack {
    /// Present on the wire only when the connection version is above 3.
    pub server_version: Option<u8>,
    pub time_diff: i64,
    pub reason_code: u8,
    pub server_key: String,
    pub salt: String,
    /// Present on the wire only when the connection version is 4 or more.
    pub node_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Send {
    pub flags: u8,
    pub setting: u8,
    pub client_seq: u32,
    pub client_msg_no: String,
    /// Only for 2 ≤ version < 5 with a stream bit in `setting`.
    pub stream_no: String,
    pub channel_id: String,
    pub channel_type: u8,
    /// Only for version ≥ 3.
    pub expire: u32,
    pub msg_key: String,
    /// Only with the topic bit in `setting`.
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sendack {
    pub flags: u8,
    pub message_id: i64,
    pub client_seq: u32,
    pub message_seq: u32,
    pub reason_code: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recv {
    pub flags: u8,
    pub setting: u8,
    pub msg_key: String,
    pub from_uid: String,
    pub channel_id: String,
    pub channel_type: u8,
    /// Only for version ≥ 3.
    pub expire: u32,
    pub client_msg_no: String,
    pub message_id: i64,
    pub message_seq: u32,
    pub timestamp: i32,
    /// Only with the topic bit in `setting`.
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recvack {
    pub flags: u8,
    pub message_id: i64,
    pub message_seq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason_code: u8,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sub {
    pub setting: u8,
    pub sub_no: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub action: u8,
    pub param: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suback {
    pub sub_no: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub action: u8,
    pub reason_code: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub timestamp: i64,
    pub data: Vec<u8>,
}

//! The client wire protocol, compatible with WuKongIM's binary protocol (see docs/PROTOCOL.md).

pub mod codec;
pub mod crypto;
pub mod packet;
pub mod reason;
pub mod varint;

#[cfg(test)]
mod codec_tests;

pub use codec::{decode, encode, encode_to_vec, DEFAULT_MAX_FRAME};
pub use packet::*;
pub use reason::Reason;

/// Why a frame could not be decoded. Every variant closes the connection that sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown packet type {0}")]
    UnknownPacketType(u8),
    #[error("remaining length is longer than 4 bytes")]
    VarintTooLong,
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("{packet:?} frame ends inside field {field}")]
    Truncated { packet: PacketType, field: &'static str },
    #[error("{packet:?} field {field} is not UTF-8")]
    InvalidUtf8 { packet: PacketType, field: &'static str },
    #[error("stream messages are not supported")]
    UnsupportedStream,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("field {field} is {len} bytes, longer than a protocol string may be")]
    StringTooLong { field: &'static str, len: usize },
    #[error("frame body of {0} bytes is too large to encode")]
    FrameTooLarge(usize),
    #[error("stream messages are not supported")]
    UnsupportedStream,
}

/// The version a connection speaks after CONNECT: clients above [`MAX_VERSION`] are served at it.
pub fn negotiate_version(client_version: u8) -> Option<u8> {
    match client_version {
        v if v < MIN_VERSION => None,
        v => Some(v.min(MAX_VERSION)),
    }
}

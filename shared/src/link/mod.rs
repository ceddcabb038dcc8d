//! The edge↔core link protocol: sans-IO codec plus a thin tokio reader/writer.

pub mod codec;
mod frame;
pub mod io;

pub use codec::{decode, encode, LinkCodecError, MAX_LINK_FRAME};
pub use frame::*;

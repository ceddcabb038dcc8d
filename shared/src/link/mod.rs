//! The edge↔core link protocol (sans-IO).

pub mod codec;
mod frame;

pub use codec::{decode, encode, LinkCodecError, MAX_LINK_FRAME};
pub use frame::*;

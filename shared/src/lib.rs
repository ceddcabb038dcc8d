//! tern-shared: what the edge, the core and the tools all speak.
//!
//! ```text
//!  client ──(proto: WuKongIM frames, encrypted payloads)──▶ edge ──(link: multiplexed frames)──▶ core
//! ```
//!
//! `proto` and `link` are sans-IO codecs (bytes in, packets out) so they can be fuzzed and
//! property-tested without sockets; `transport` and `client` put them on tokio sockets.

pub mod channel;
pub mod client;
pub mod config;
pub mod deployment;
pub mod limits;
pub mod link;
pub mod pki;
pub mod proto;
pub mod proxy;
pub mod quic;
pub mod records;
pub mod secret;
pub mod tls;
pub mod transport;

//! Messages between core nodes: raft's own RPCs, plus writes forwarded to the leader and read-index
//! requests. Each is one length-prefixed bincode frame, a request prefixed by its raft group (slot); a
//! connection carries one request at a time.
//!
//! Versions: a connection of raft port version 2 or later opens with `Hello`, which the other node
//! answers with the version both speak (or why it will not talk). Version 1, the releases before the
//! greeting, sends requests from the first frame and closes a connection on any frame it cannot read,
//! `Hello` included; a node that sees that falls back to version 1 for that address.

use crate::command::{Batch, BatchResult, NodeId, TypeConfig};
use bincode::Options;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::LogId;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The newest raft port version this release speaks.
pub const RAFT_PORT_VERSION: u16 = 2;
/// The oldest: version 1 has no greeting, so a connection whose first frame is a request is one.
pub const MIN_RAFT_PORT_VERSION: u16 = 1;
/// The raft log's command set (`command.rs`). A release that adds a command raises it; nodes tell
/// each other theirs in `Hello`, and `/cluster` shows every node's, so a command a voter cannot read is
/// not proposed while that voter runs an older release.
pub const LOG_VERSION: u16 = 1;

/// Bound on one frame; snapshot chunks (3 MiB by default) are the largest.
pub const MAX_RPC_FRAME: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A batch a follower received, for the leader to commit.
    Propose(Batch),
    /// "Confirm you lead and tell me the log position a linearizable read must wait for."
    ReadIndex,
    /// A membership change asked of a follower, for the leader to carry out.
    Membership(MembershipChange),
    /// A leadership transfer asked of a follower, for the leader to carry out.
    Transfer(NodeId),
    /// The leader's instructions to the other nodes during a transfer.
    Step(Step),
    /// The first frame of a connection from version 2 on (its group is ignored).
    Hello(Hello),
}

/// Who dials, and what it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub node: NodeId,
    /// The raft port versions the dialing node speaks, oldest and newest.
    pub min: u16,
    pub max: u16,
    pub log: u16,
}

/// The answer to `Hello`: the version the connection speaks from now on, and who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreed {
    pub node: NodeId,
    pub version: u16,
    pub log: u16,
}

/// The newest version both ranges hold.
pub fn agree(ours: (u16, u16), theirs: (u16, u16)) -> Option<u16> {
    let version = ours.1.min(theirs.1);
    (version >= ours.0.max(theirs.0)).then_some(version)
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Propose(Result<BatchResult, String>),
    ReadIndex(Result<Option<LogId<NodeId>>, String>),
    Membership(Result<(), String>),
    Done(Result<(), String>),
    Hello(Result<Agreed, String>),
}

/// A change of the voters, asked of whichever node leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Replicate to the node as a learner until it has caught up (by snapshot if the log was compacted),
    /// then make it a voter.
    Add { id: NodeId, raft_addr: String },
    /// Take the node out of the voters (and the cluster).
    Remove { id: NodeId },
}

/// What the leader asks of the other nodes during a transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Step {
    /// Do not start elections for this long.
    Hold { ms: u64 },
    /// Campaign after `after_ms`, until this node leads or `TAKE_OVER` has passed.
    Campaign { after_ms: u64 },
    /// Nothing: asked of the target first, so an unreachable one fails the transfer before anything
    /// is held.
    Probe,
}

pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, value: &T) -> io::Result<()> {
    let body = bincode::serialize(value).map_err(io::Error::other)?;
    if body.len() > MAX_RPC_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("rpc frame of {} bytes", body.len())));
    }
    w.write_all(&(body.len() as u32).to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await
}

/// The next frame, or `None` when the peer closed between frames.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(r: &mut R) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_RPC_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("rpc frame of {len} bytes is over the limit")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    decode(&body).map(Some)
}

/// A frame body from another node. bincode's plain encoding, with every length it reads bounded by
/// the frame limit so a bad frame is an error rather than a huge allocation.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(MAX_RPC_FRAME as u64)
        .deserialize(body)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_body_decodes_or_errs(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<(u16, RaftRequest)>(&body);
            let _ = decode::<RaftResponse>(&body);
        }

        #[test]
        fn requests_survive_the_trip(group in any::<u16>(), target in any::<u64>()) {
            let body = bincode::serialize(&(group, RaftRequest::Transfer(target))).unwrap();
            let (g, req) = decode::<(u16, RaftRequest)>(&body).unwrap();
            prop_assert_eq!(g, group);
            prop_assert!(matches!(req, RaftRequest::Transfer(t) if t == target));
        }
    }

    #[test]
    fn versions_agree_on_the_newest_both_speak() {
        assert_eq!(agree((1, 2), (1, 2)), Some(2));
        assert_eq!(agree((1, 3), (2, 2)), Some(2));
        assert_eq!(agree((1, 2), (1, 1)), Some(1));
        assert_eq!(agree((3, 4), (1, 2)), None);
        assert_eq!(agree((1, 2), (3, 5)), None);
    }

    #[test]
    fn a_claimed_length_past_the_body_is_an_error() {
        // Group 0, `Propose` (variant 3), a batch claiming 2^40 commands.
        let mut body = vec![0, 0, 3, 0, 0, 0];
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode::<(u16, RaftRequest)>(&body).is_err());
    }
}

//! Finding the leader, and reads that must see every write acknowledged before they started.

use super::dial::Dial;
use super::error::ProposeError;
use super::peer::Peer;
use super::types::{NodeId, Raft};
use openraft::LogId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tern_wire::rpc::{RaftRequest, RaftResponse};

/// How long a request waits for an election to finish before it fails.
pub const ELECTION_WAIT: Duration = Duration::from_secs(3);
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// The leader this node knows of, with the address to reach it at.
pub fn leader_of(raft: &Raft, dial: &Dial) -> Option<(NodeId, String)> {
    let m = raft.metrics();
    let m = m.borrow();
    let id = m.current_leader?;
    let addr = dial.addr(id, &m.membership_config.membership().get_node(&id)?.addr);
    Some((id, addr))
}

/// A connection to the current leader, replaced when another node takes over.
#[derive(Default)]
pub struct LeaderConn(Option<(NodeId, Peer)>);

impl LeaderConn {
    pub fn to(&mut self, id: NodeId, addr: String, dial: &Dial) -> &mut Peer {
        if self.0.as_ref().is_some_and(|(cached, _)| *cached != id) {
            self.0 = None;
        }
        &mut self.0.get_or_insert_with(|| (id, dial.peer(addr))).1
    }
}

/// Waits (up to [`ELECTION_WAIT`]) until some node leads.
pub async fn await_leader(raft: &Raft) -> Option<NodeId> {
    raft.wait(Some(ELECTION_WAIT)).metrics(|m| m.current_leader.is_some(), "a leader").await.ok()?.current_leader
}

/// Linearizable reads: on the leader, a leadership check; on a follower, the leader's read index, then
/// wait until this node has applied that far.
pub struct ReadBarrier {
    raft: Raft,
    dial: Dial,
    node_id: NodeId,
    leader: tokio::sync::Mutex<LeaderConn>,
    /// Leadership checks run as the leader.
    checks: Checks,
    /// Read indexes asked of the leader as a follower.
    asks: Checks,
}

/// One read index at a time serves every read that arrived before it was asked for: on the leader a
/// leadership check (a round of heartbeats to the voters; one per read cost a round per login), on a
/// follower a `ReadIndex` request to the leader (one per read would cap a slot's reads at one per
/// round trip).
struct Checks {
    /// The number of the last check that started.
    started: AtomicU64,
    /// Held while a check runs: the last check that finished, and how.
    done: tokio::sync::Mutex<(u64, ReadIndex)>,
}

/// Where a linearizable read must wait for this node to have applied: the leader's read log id.
type ReadIndex = Result<Option<LogId<NodeId>>, ProposeError>;

impl Default for Checks {
    fn default() -> Self {
        Checks { started: AtomicU64::new(0), done: tokio::sync::Mutex::new((0, Ok(None))) }
    }
}

impl Checks {
    /// The read index `ask` finds, asked no earlier than this call.
    async fn run<F: std::future::Future<Output = ReadIndex>>(&self, ask: impl FnOnce() -> F) -> ReadIndex {
        // An index asked for before this read arrived may predate a write this read must see: only
        // a later one will do.
        let wanted = self.started.load(Ordering::Acquire) + 1;
        let mut done = self.done.lock().await;
        if done.0 >= wanted {
            return done.1.clone();
        }
        let number = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        let result = ask().await;
        *done = (number, result.clone());
        result
    }
}

impl ReadBarrier {
    pub fn new(raft: Raft, node_id: NodeId, dial: Dial) -> Self {
        let leader = tokio::sync::Mutex::default();
        ReadBarrier { raft, dial, node_id, leader, checks: Checks::default(), asks: Checks::default() }
    }

    /// On the leader, the read index for a follower's linearizable read (the raft port's `ReadIndex`).
    pub async fn read_index(&self) -> ReadIndex {
        self.checks.run(|| self.check_leadership()).await
    }

    async fn check_leadership(&self) -> ReadIndex {
        self.raft
            .ensure_linearizable()
            .await
            .map_err(|e| ProposeError::NotLeader(e.forward_to_leader().and_then(|f| f.leader_id)))
    }

    /// As a follower, the leader's read index.
    async fn ask_leader(&self) -> ReadIndex {
        let (id, addr) = leader_of(&self.raft, &self.dial).ok_or(ProposeError::NotLeader(None))?;
        let mut conn = self.leader.lock().await;
        match conn.to(id, addr, &self.dial).call(&RaftRequest::ReadIndex, RPC_TIMEOUT).await {
            Ok(RaftResponse::ReadIndex(Ok(log_id))) => Ok(log_id),
            // The node we asked no longer leads: ask again once the new leader is known.
            Ok(RaftResponse::ReadIndex(Err(_))) => Err(ProposeError::NotLeader(None)),
            Ok(other) => Err(ProposeError::Fatal(format!("read index: unexpected {other:?}"))),
            Err(e) => {
                tracing::debug!(leader = id, error = %e, "read index: leader unreachable");
                Err(ProposeError::NotLeader(None))
            }
        }
    }

    /// Retries while leadership is moving (a node that just lost it answers "not the leader").
    pub async fn wait(&self) -> Result<(), ProposeError> {
        let deadline = tokio::time::Instant::now() + ELECTION_WAIT;
        loop {
            match self.once().await {
                Err(ProposeError::NotLeader(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    async fn once(&self) -> Result<(), ProposeError> {
        let leader = await_leader(&self.raft).await.ok_or(ProposeError::NotLeader(None))?;
        if leader == self.node_id {
            return self.read_index().await.map(|_| ());
        }
        let index = self.asks.run(|| self.ask_leader()).await?.map(|l| l.index);
        self.raft
            .wait(Some(RPC_TIMEOUT))
            .applied_index_at_least(index, "catch up to the read index")
            .await
            .map(|_| ())
            .map_err(|e| ProposeError::Fatal(e.to_string()))
    }
}

//! Leaving without an error anyone can see (SIGTERM, a rolling restart). In order:
//! 1. the node stops campaigning and refuses to take leadership (`Groups::leave`), and its `/health`
//!    answers 503 so HTTP balancers send new requests elsewhere;
//! 2. every group it leads is handed to the most caught-up other voter (`raft/transfer.rs`); writes
//!    arriving meanwhile are held, then forwarded to the new leader;
//! 3. it keeps serving a little longer, so every edge has heard from some node's pong who leads each
//!    group now and HTTP balancers have seen its `/health` fail;
//! 4. links and the HTTP API stop accepting, answer what is in flight and close; an edge sends any SEND
//!    still unanswered again over another node (dedup by client msg no);
//! 5. raft stops in every group. Every task holding the node's state has ended (or ends as its
//!    connection closes), so its RocksDB closes and the node can be started again in the same process.
//!
//! A node that cannot hand a group over (no other voter reachable) still stops: the voters left elect
//! a leader as they would after a crash.

use crate::context::Core;
use crate::raft::group::Group;
use crate::raft::transfer::transfer;
use crate::raft::types::NodeId;
use futures_util::future::join_all;
use std::time::{Duration, Instant};

/// Edges ping every core link each second (a pong names every group's leader), and the edge's access
/// layer probes `/health` each second by default: two of either have passed after this.
const KEEP_SERVING: Duration = Duration::from_secs(2);
/// How long links and HTTP connections get to answer what is in flight.
const CLOSE_FOR: Duration = Duration::from_secs(10);

/// What a stop did, for its log line.
#[derive(Debug, Default)]
pub struct Stopped {
    /// Groups whose leadership went to another voter.
    pub handed: usize,
    /// Groups led here that could not be handed over, and why.
    pub not_handed: Vec<String>,
    /// Links or HTTP connections still open when the node gave up waiting.
    pub cut_short: bool,
    pub took: Duration,
}

pub async fn stop(core: &Core, http: tokio::task::JoinHandle<()>) -> Stopped {
    let started = Instant::now();
    let me = core.config.node_id;
    let lease = Duration::from_millis(core.config.raft.election_max_ms);
    core.groups.leave();
    let led: Vec<&Group> = core.groups.all().iter().filter(|g| g.leads()).collect();
    tracing::info!(leading = led.len(), "stopping: handing group leadership to the other voters");
    let results = join_all(led.iter().map(|g| hand_off(g, me, lease))).await;
    let mut stopped = Stopped::default();
    for (g, r) in led.iter().zip(results) {
        match r {
            Ok(to) => {
                stopped.handed += 1;
                tracing::debug!(slot = g.slot, to, "group leadership handed over");
            }
            Err(e) => stopped.not_handed.push(format!("slot {}: {e}", g.slot)),
        }
    }
    tokio::time::sleep(KEEP_SERVING).await;
    core.closing.send_replace(true);
    let deadline = tokio::time::Instant::now() + CLOSE_FOR;
    let http_closed = tokio::time::timeout_at(deadline, http).await.is_ok();
    let links_closed = wait_until(deadline, || core.metrics.edge_links.get() == 0).await;
    stopped.cut_short = !(http_closed && links_closed);
    for g in core.groups.all() {
        if let Err(e) = g.raft.shutdown().await {
            tracing::warn!(slot = g.slot, error = %e, "raft did not stop cleanly");
        }
    }
    stopped.took = started.elapsed();
    stopped
}

/// Hands `g`'s leadership to the other voters, most caught-up first, until one takes it.
async fn hand_off(g: &Group, me: NodeId, lease: Duration) -> Result<NodeId, String> {
    let candidates: Vec<NodeId> = {
        let m = g.raft.metrics().borrow().clone();
        let matched =
            |id: &NodeId| m.replication.as_ref().and_then(|r| r.get(id).copied().flatten()).map_or(0, |l| l.index);
        let mut voters: Vec<NodeId> = m.membership_config.membership().voter_ids().filter(|v| *v != me).collect();
        voters.sort_by_key(|v| std::cmp::Reverse(matched(v)));
        voters
    };
    let mut why = String::from("no other voter");
    for target in candidates {
        match transfer(g, me, target, lease).await {
            Ok(()) => return Ok(target),
            Err(e) => why = e,
        }
    }
    Err(why)
}

async fn wait_until(deadline: tokio::time::Instant, done: impl Fn() -> bool) -> bool {
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

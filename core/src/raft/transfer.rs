//! Leadership transfer. openraft 0.9 has no TimeoutNow message, and a follower refuses votes while the
//! leader's lease (`election_max_ms` since it last heard from the leader) lasts. So the leader steps
//! aside in stages: it holds the election timers of the other voters, stops its heartbeats, and asks the
//! target to campaign once the lease has run out. Meanwhile the leader's proposer holds new writes
//! (appends would renew the lease); once the target leads they are forwarded to it.

use super::group::{Group, Groups};
use super::leader::{await_leader, leader_of};
use super::types::{NodeId, Raft};
use futures_util::future::join_all;
use std::time::Duration;
use tern_wire::rpc::{RaftRequest, RaftResponse, Step};

const RPC_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the target keeps campaigning, and past the lease how long the leader waits for it.
const TAKE_OVER: Duration = Duration::from_secs(3);
/// How long a transfer waits for the leader's own entries to be applied before it steps aside.
const SETTLE: Duration = Duration::from_secs(1);
/// Entries the target may still lack when the transfer starts (it catches up while the lease runs out).
const MAX_LAG: u64 = 100;

/// Carries out a step on this node; returns at once.
pub fn on_step(raft: &Raft, node_id: NodeId, step: Step) {
    let raft = raft.clone();
    match step {
        Step::Hold { ms } => {
            raft.runtime_config().elect(false);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                raft.runtime_config().elect(true);
            });
        }
        Step::Campaign { after_ms } => {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                let deadline = tokio::time::Instant::now() + TAKE_OVER;
                while tokio::time::Instant::now() < deadline && raft.metrics().borrow().current_leader != Some(node_id)
                {
                    let _ = raft.trigger().elect().await;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
        }
        Step::Probe => {}
    }
}

/// Moves the group's leadership to `target`, from whichever node leads; returns once `target` leads.
pub async fn transfer(group: &Group, node_id: NodeId, target: NodeId, lease: Duration) -> Result<(), String> {
    let (raft, dial, handover) = (&group.raft, &group.dial, &group.handover);
    let leader = await_leader(raft).await.ok_or("no leader")?;
    if leader == target {
        return Ok(());
    }
    if leader != node_id {
        let (id, addr) = leader_of(raft, dial).ok_or("no leader")?;
        return match dial.peer(addr).call(&RaftRequest::Transfer(target), lease + TAKE_OVER + RPC_TIMEOUT).await {
            Ok(RaftResponse::Done(r)) => r,
            Ok(other) => Err(format!("leader {id} answered {other:?}")),
            Err(e) => Err(format!("cannot reach leader {id}: {e}")),
        };
    }
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let addr_of = |id: NodeId| membership.get_node(&id).map(|n| dial.addr(id, &n.addr));
    if !membership.voter_ids().any(|v| v == target) {
        return Err(format!("node {target} is not a voter"));
    }
    let last = m.last_log_index.unwrap_or(0);
    let matched = m.replication.as_ref().and_then(|r| r.get(&target).copied().flatten()).map_or(0, |l| l.index);
    if last.saturating_sub(matched) > MAX_LAG {
        return Err(format!("node {target} is {} entries behind", last - matched));
    }
    let target_addr = addr_of(target).ok_or_else(|| format!("no address for node {target}"))?;
    match dial.peer(target_addr.clone()).call(&RaftRequest::Step(Step::Probe), PROBE_TIMEOUT).await {
        Ok(RaftResponse::Done(Ok(()))) => {}
        Ok(other) => return Err(format!("node {target} answered {other:?}")),
        Err(e) => return Err(format!("cannot reach node {target}: {e}")),
    }
    let hold = Step::Hold { ms: (lease * 2 + TAKE_OVER).as_millis() as u64 };
    for voter in membership.voter_ids().filter(|v| *v != node_id && *v != target) {
        if let Some(addr) = addr_of(voter) {
            // An unreachable voter cannot compete for votes either.
            let _ = dial.peer(addr).call(&RaftRequest::Step(hold.clone()), RPC_TIMEOUT).await;
        }
    }
    let _raised = handover.raise();
    settle(raft).await;
    raft.runtime_config().heartbeat(false);
    let campaign = Step::Campaign { after_ms: (lease + Duration::from_millis(100)).as_millis() as u64 };
    let asked = dial.peer(target_addr).call(&RaftRequest::Step(campaign), RPC_TIMEOUT).await;
    let taken = match asked {
        Ok(_) => raft
            .wait(Some(lease + TAKE_OVER))
            .metrics(|m| m.current_leader == Some(target), "the target leads")
            .await
            .map(|_| ())
            .map_err(|e| format!("node {target} did not take over: {e}")),
        Err(e) => Err(format!("cannot reach node {target}: {e}")),
    };
    raft.runtime_config().heartbeat(true);
    taken
}

/// With new writes held: waits (briefly) until what this leader appended is applied, then tells the
/// followers the commit index before heartbeats stop. Otherwise the target could learn of the last
/// commits only once it leads, apply them as the leader and push those messages a second time (the old
/// leader pushed them when it applied them).
async fn settle(raft: &Raft) {
    let _ = raft
        .wait(Some(SETTLE))
        .metrics(|m| m.last_applied.map(|l| l.index) >= m.last_log_index, "own entries applied")
        .await;
    let _ = raft.trigger().heartbeat().await;
    tokio::time::sleep(Duration::from_millis(raft.config().heartbeat_interval)).await;
}

/// Spreads leadership evenly: group `slot` goes to the voter at `slot % voters` (in id order). Returns
/// where each group's leadership went.
pub async fn balance(
    groups: &Groups,
    node_id: NodeId,
    preferred: &[NodeId],
    lease: Duration,
) -> Result<Vec<(u16, NodeId)>, String> {
    let plan: Vec<(&Group, NodeId)> = groups
        .all()
        .iter()
        .filter_map(|g| {
            let mut voters: Vec<NodeId> =
                g.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
            if voters.iter().any(|v| preferred.contains(v)) {
                voters.retain(|v| preferred.contains(v));
            }
            (!voters.is_empty()).then(|| (g, voters[usize::from(g.slot) % voters.len()]))
        })
        .collect();
    let results = join_all(plan.iter().map(|(g, to)| transfer(g, node_id, *to, lease))).await;
    let failed: Vec<String> = plan
        .iter()
        .zip(&results)
        .filter_map(|((g, _), r)| r.as_ref().err().map(|e| format!("slot {}: {e}", g.slot)))
        .collect();
    if !failed.is_empty() {
        return Err(failed.join("; "));
    }
    Ok(plan.iter().map(|(g, to)| (g.slot, *to)).collect())
}

//! Adding and removing core nodes at run time. Changes run on the leader; a follower forwards them.

use super::dial::Dial;
use super::leader::{await_leader, leader_of};
use super::types::{NodeId, Raft};
use openraft::{BasicNode, ChangeMembers};
use std::collections::BTreeSet;
use std::time::Duration;
use tern_wire::rpc::{MembershipChange, RaftRequest, RaftResponse};

/// A membership change can take as long as a new node needs to catch up.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(120);

/// Carries out `change` on this node, which must lead.
pub async fn apply(raft: &Raft, change: MembershipChange) -> Result<(), String> {
    match change {
        MembershipChange::Add { id, raft_addr } => {
            raft.add_learner(id, BasicNode::new(raft_addr), true).await.map_err(|e| e.to_string())?;
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
                .map_err(|e| e.to_string())?;
        }
        MembershipChange::Remove { id } => {
            raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Carries out `change` wherever the leader is.
pub async fn change(raft: &Raft, node_id: NodeId, dial: &Dial, change: MembershipChange) -> Result<(), String> {
    let leader = await_leader(raft).await.ok_or("no leader")?;
    if leader == node_id {
        return apply(raft, change).await;
    }
    let (id, addr) = leader_of(raft, dial).ok_or("no leader")?;
    match dial.peer(addr).call(&RaftRequest::Membership(change), CHANGE_TIMEOUT).await {
        Ok(RaftResponse::Membership(r)) => r,
        Ok(other) => Err(format!("leader {id} answered {other:?}")),
        Err(e) => Err(format!("cannot reach leader {id}: {e}")),
    }
}

//! A node cut off from the other voters must not raise its term. Raft without pre-vote campaigns on
//! every election timeout while isolated; when the node returns, its higher term unseats every leader
//! it replies to, so every slot elects again at once and nothing commits for seconds (healing a cut
//! region did that to every client). openraft 0.9 has no pre-vote, so each node probes the other voters
//! itself and allows elections only while it has recently reached enough of them to win one.

use super::group::Groups;
use super::types::NodeId;
use std::sync::Arc;
use std::time::Duration;
use tern_wire::rpc::{RaftRequest, Step};
use tokio::time::Instant;

/// Whether a node that reached `reached` other voters of `voters` could win an election.
pub fn could_win(reached: usize, voters: usize) -> bool {
    (reached + 1) * 2 > voters
}

/// Whether elections are allowed at `now`: a majority was reachable within `grace` (one missed probe
/// round must not stop a node from replacing a dead leader).
pub fn may_elect(last_majority: Option<Instant>, now: Instant, grace: Duration) -> bool {
    last_majority.is_some_and(|t| now.saturating_duration_since(t) <= grace)
}

/// Probes the other voters every `every` and turns elections on or off in every group accordingly.
pub async fn run(groups: Arc<Groups>, node_id: NodeId, every: Duration, grace: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_majority = Some(Instant::now());
    let mut allowed = true;
    loop {
        tick.tick().await;
        let Some(first) = groups.all().first() else { return };
        let others: Vec<(NodeId, String)> = {
            let m = first.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            let voters: Vec<NodeId> = membership.voter_ids().collect();
            if voters.len() <= 1 {
                continue;
            }
            voters
                .iter()
                .filter(|id| **id != node_id)
                .filter_map(|id| membership.get_node(id).map(|n| (*id, first.dial.addr(*id, &n.addr))))
                .collect()
        };
        let voters = others.len() + 1;
        let probes = others.into_iter().map(|(id, addr)| {
            let mut peer = first.dial.peer(addr);
            async move { (id, peer.call(&RaftRequest::Step(Step::Probe), every).await.is_ok()) }
        });
        let results = futures_util::future::join_all(probes).await;
        let reached = results.iter().filter(|(_, ok)| *ok).count();
        groups.set_reachable(results.into_iter().collect());
        let now = Instant::now();
        if could_win(reached, voters) {
            last_majority = Some(now);
        }
        let allow = may_elect(last_majority, now, grace);
        if groups.leaving() {
            return;
        }
        if allow != allowed {
            allowed = allow;
            for g in groups.all() {
                g.raft.runtime_config().elect(allow);
            }
            match allow {
                true => tracing::info!(reached, voters, "other voters reachable again: elections allowed"),
                false => {
                    tracing::warn!(reached, voters, "too few voters reachable to win an election: not campaigning")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_campaigns_only_while_a_majority_was_reached_lately() {
        assert!(could_win(1, 3) && !could_win(0, 3));
        assert!(could_win(2, 5) && !could_win(1, 5));
        assert!(could_win(1, 2) && !could_win(0, 2));
        let t0 = Instant::now();
        let grace = Duration::from_millis(800);
        assert!(may_elect(Some(t0), t0 + Duration::from_millis(800), grace));
        assert!(!may_elect(Some(t0), t0 + Duration::from_millis(801), grace));
        assert!(!may_elect(None, t0, grace));
    }
}

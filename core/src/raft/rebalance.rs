//! Keeps group leadership spread over the voters. Leadership moves on its own only when a leader
//! fails, so after a node returns it leads nothing while the others lead everything. Every
//! `raft.balance_interval_ms`, a node that leads at least two groups more than some voter hands one of
//! them to that voter; repeated on every node, leadership evens out a group at a time.
//!
//! With `raft.preferred_leaders` (the voters of the deployment's home region), leadership is spread
//! over those voters only: any other node hands every group it leads to them while one is up, so most
//! writes commit in one short round trip from there.

use super::group::Groups;
use super::types::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(groups: Arc<Groups>, node_id: NodeId, preferred: Vec<NodeId>, lease: Duration, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if groups.leaving() {
            return;
        }
        match step(&groups, node_id, &preferred, lease).await {
            Ok(moved) => {
                for (slot, to) in moved {
                    tracing::info!(slot, to, "handed group leadership to a voter leading fewer or preferred");
                }
            }
            // Typically the voter is down or behind; the next round tries again.
            Err(e) => tracing::debug!(error = %e, "leadership balance step skipped"),
        }
    }
}

/// Which voters should take leadership from `me`, best first: with preferred leaders and `me` not one
/// of them, every preferred voter (fewest led first) for every group `me` leads; otherwise the voters
/// (preferred ones only, if any) leading at least two fewer, for one group. `led` counts the groups each
/// voter leads.
pub fn plan(led: &BTreeMap<NodeId, usize>, me: NodeId, preferred: &[NodeId]) -> (Vec<NodeId>, bool) {
    let preferred: Vec<NodeId> = preferred.iter().copied().filter(|p| led.contains_key(p)).collect();
    let eligible = |id: &NodeId| preferred.is_empty() || preferred.contains(id);
    let mine = led.get(&me).copied().unwrap_or(0);
    let mut by_load: Vec<(usize, NodeId)> =
        led.iter().filter(|(id, _)| **id != me && eligible(id)).map(|(id, n)| (*n, *id)).collect();
    by_load.sort();
    if !eligible(&me) {
        return (by_load.into_iter().map(|(_, id)| id).collect(), mine > 0);
    }
    (by_load.into_iter().filter(|(n, _)| n + 2 <= mine).map(|(_, id)| id).collect(), false)
}

/// Hands groups over as `plan` says; a voter that cannot take one (down, behind) is passed over for the
/// next. Returns which groups went where.
async fn step(
    groups: &Groups,
    node_id: NodeId,
    preferred: &[NodeId],
    lease: Duration,
) -> Result<Vec<(u16, NodeId)>, String> {
    let mut led: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut mine = Vec::new();
    for g in groups.all() {
        let m = g.raft.metrics().borrow().clone();
        for voter in m.membership_config.membership().voter_ids() {
            led.entry(voter).or_default();
        }
        if let Some(leader) = m.current_leader {
            *led.entry(leader).or_default() += 1;
            if leader == node_id {
                mine.push(g);
            }
        }
    }
    let (candidates, all) = plan(&led, node_id, preferred);
    let mine = if all { &mine[..] } else { &mine[..mine.len().min(1)] };
    let (mut moved, mut failures) = (Vec::new(), Vec::new());
    for group in mine {
        for &target in &candidates {
            match super::transfer::transfer(group, node_id, target, lease).await {
                Ok(()) => {
                    moved.push((group.slot, target));
                    break;
                }
                Err(e) => failures.push(e),
            }
        }
    }
    if moved.is_empty() && !failures.is_empty() {
        Err(failures.join("; "))
    } else {
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_evens_out_or_goes_to_the_preferred_voters() {
        let led: BTreeMap<NodeId, usize> = [(1, 0), (2, 5), (3, 3)].into();
        assert_eq!(plan(&led, 2, &[]), (vec![1, 3], false));
        assert_eq!(plan(&led, 3, &[]), (vec![1], false));
        assert_eq!(plan(&led, 1, &[]), (vec![], false));
        // Node 1 preferred: the others hand it everything; it keeps what it leads.
        assert_eq!(plan(&led, 2, &[1]), (vec![1], true));
        assert_eq!(plan(&led, 3, &[1]), (vec![1], true));
        assert_eq!(plan(&led, 1, &[1]), (vec![], false));
        // Two preferred voters balance between themselves.
        let led: BTreeMap<NodeId, usize> = [(1, 6), (2, 1), (3, 1)].into();
        assert_eq!(plan(&led, 1, &[1, 2]), (vec![2], false));
        assert_eq!(plan(&led, 3, &[1, 2]), (vec![2, 1], true));
        // A preferred id that is not a voter is ignored.
        assert_eq!(plan(&led, 1, &[9]), (vec![2, 3], false));
    }
}

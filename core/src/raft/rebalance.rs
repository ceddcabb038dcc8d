//! Keeps group leadership spread over the voters. Leadership moves on its own only when a leader
//! fails, so after a node returns it leads nothing while the others lead everything. Every
//! `raft.balance_interval_ms`, a node that leads at least two groups more than some voter hands one of
//! them to that voter; repeated on every node, leadership evens out a group at a time.

use super::group::Groups;
use super::types::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(groups: Arc<Groups>, node_id: NodeId, lease: Duration, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match step(&groups, node_id, lease).await {
            Ok(Some((slot, to))) => tracing::info!(slot, to, "handed group leadership to a voter leading fewer"),
            Ok(None) => {}
            // Typically the voter is down or behind; the next round tries again.
            Err(e) => tracing::debug!(error = %e, "leadership balance step skipped"),
        }
    }
}

/// Hands over one group to the voter leading fewest, if this node leads at least two more; a voter that
/// cannot take it (down, behind) is passed over for the next. Returns which group went where.
async fn step(groups: &Groups, node_id: NodeId, lease: Duration) -> Result<Option<(u16, NodeId)>, String> {
    let mut led: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut mine = None;
    for g in groups.all() {
        let m = g.raft.metrics().borrow().clone();
        for voter in m.membership_config.membership().voter_ids() {
            led.entry(voter).or_default();
        }
        if let Some(leader) = m.current_leader {
            *led.entry(leader).or_default() += 1;
            if leader == node_id {
                mine = Some(g);
            }
        }
    }
    let (Some(group), Some(&my_count)) = (mine, led.get(&node_id)) else { return Ok(None) };
    let mut candidates: Vec<(usize, NodeId)> =
        led.iter().filter(|(id, n)| **id != node_id && **n + 2 <= my_count).map(|(id, n)| (*n, *id)).collect();
    candidates.sort();
    let mut failures = Vec::new();
    for (_, target) in candidates {
        match super::transfer::transfer(group, node_id, target, lease).await {
            Ok(()) => return Ok(Some((group.slot, target))),
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        Ok(None)
    } else {
        Err(failures.join("; "))
    }
}

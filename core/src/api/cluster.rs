//! Cluster administration: status, adding and removing core nodes, moving and balancing leadership.
//! Every slot is a raft group, so each change is carried out in every group.

use super::{ok, ApiError, ApiJson, AppState};
use crate::raft::group::Group;
use crate::raft::membership;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use futures_util::future::join_all;
use serde::Deserialize;
use std::collections::BTreeMap;
use tern_wire::rpc::MembershipChange;

/// This node's view: the nodes, how many groups each leads, and per group its leader, term, log
/// positions and, where this node leads it, how far each follower has replicated.
pub async fn status(State(core): State<AppState>) -> Json<serde_json::Value> {
    Json(view(&core))
}

pub(super) fn view(core: &crate::context::Core) -> serde_json::Value {
    let mut leaders: BTreeMap<String, usize> = BTreeMap::new();
    let mut groups = Vec::new();
    let mut nodes = Vec::new();
    for g in core.groups.all() {
        let m = g.raft.metrics().borrow().clone();
        if let Some(l) = m.current_leader {
            *leaders.entry(l.to_string()).or_default() += 1;
        }
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        if g.slot == 0 {
            let versions = g.dial.versions();
            nodes = membership
                .nodes()
                .map(|(id, n)| {
                    let known = versions.of(*id, &g.dial.addr(*id, &n.addr));
                    serde_json::json!({
                        "id": id,
                        "raft_addr": n.addr,
                        "voter": voters.contains(id),
                        "raft_version": known.map(|k| k.port),
                        "log_version": known.map(|k| k.log),
                    })
                })
                .collect();
        }
        let last_log = m.last_log_index.unwrap_or(0);
        let replication: Option<serde_json::Value> = m.replication.as_ref().map(|r| {
            r.iter()
                .map(|(id, matched)| {
                    let matched = matched.map(|l| l.index).unwrap_or(0);
                    (id.to_string(), serde_json::json!({"matched": matched, "lag": last_log.saturating_sub(matched)}))
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        });
        groups.push(serde_json::json!({
            "slot": g.slot,
            "state": format!("{:?}", m.state),
            "leader": m.current_leader,
            "term": m.current_term,
            "voters": voters,
            "last_log": last_log,
            "last_applied": m.last_applied.map(|l| l.index),
            "snapshot": m.snapshot.map(|l| l.index),
            "purged": m.purged.map(|l| l.index),
            "replication": replication,
        }));
    }
    serde_json::json!({
        "node_id": core.config.node_id,
        "slots": core.config.slots,
        "nodes": nodes,
        "leaders": leaders,
        "groups": groups,
    })
}

#[derive(Deserialize)]
pub struct AddReq {
    id: u64,
    raft_addr: String,
}

#[derive(Deserialize)]
pub struct RemoveReq {
    id: u64,
}

/// Runs `f` on every group at once; the first failure, naming its slot.
async fn every_group<'a, F, Fut>(core: &'a AppState, f: F) -> Result<(), String>
where
    F: Fn(&'a Group) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let results = join_all(core.groups.all().iter().map(|g| {
        let done = f(g);
        async move { done.await.map_err(|e| format!("slot {}: {e}", g.slot)) }
    }))
    .await;
    results.into_iter().collect()
}

async fn change(core: &AppState, change: MembershipChange) -> Result<Response, ApiError> {
    let me = core.config.node_id;
    every_group(core, |g| membership::change(&g.raft, me, &g.dial, change.clone()))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("membership change failed: {e}")))?;
    Ok(ok())
}

/// Adds a node (started with `join = true`) as a voter of every group once it has caught up.
pub async fn add(State(core): State<AppState>, ApiJson(req): ApiJson<AddReq>) -> Result<Response, ApiError> {
    if req.id == 0 {
        return Err(ApiError::bad_request("id must be greater than 0"));
    }
    tern_shared::config::check_addr("raft_addr", &req.raft_addr, false)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    tracing::info!(id = req.id, raft_addr = %req.raft_addr, "operator: node addition");
    change(&core, MembershipChange::Add { id: req.id, raft_addr: req.raft_addr }).await
}

pub async fn remove(State(core): State<AppState>, ApiJson(req): ApiJson<RemoveReq>) -> Result<Response, ApiError> {
    tracing::info!(id = req.id, "operator: node removal");
    change(&core, MembershipChange::Remove { id: req.id }).await
}

#[derive(Deserialize)]
pub struct TransferReq {
    node_id: u64,
    /// One group; without it, every group.
    slot: Option<u16>,
}

fn lease(core: &AppState) -> std::time::Duration {
    std::time::Duration::from_millis(core.config.raft.election_max_ms)
}

fn transfer_failed(e: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, format!("leadership transfer failed: {e}"))
}

/// Moves the leadership of one group (or of all) to a voter; answers once it leads.
pub async fn transfer(State(core): State<AppState>, ApiJson(req): ApiJson<TransferReq>) -> Result<Response, ApiError> {
    tracing::info!(to = req.node_id, slot = ?req.slot, "operator: leadership transfer");
    let (me, lease) = (core.config.node_id, lease(&core));
    let to = req.node_id;
    match req.slot {
        Some(slot) => {
            let g = core.groups.get(slot).ok_or_else(|| ApiError::bad_request(format!("no slot {slot}")))?;
            crate::raft::transfer::transfer(g, me, to, lease).await.map_err(transfer_failed)?
        }
        None => {
            every_group(&core, |g| crate::raft::transfer::transfer(g, me, to, lease)).await.map_err(transfer_failed)?
        }
    }
    Ok(ok())
}

/// Spreads leadership evenly over the voters (the preferred leaders, when set and up); answers with
/// where each group's leadership went.
pub async fn balance(State(core): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    tracing::info!("operator: leadership balance");
    let preferred = &core.config.raft.preferred_leaders;
    let moved = crate::raft::transfer::balance(&core.groups, core.config.node_id, preferred, lease(&core))
        .await
        .map_err(transfer_failed)?;
    let moved: BTreeMap<String, u64> = moved.into_iter().map(|(slot, to)| (slot.to_string(), to)).collect();
    Ok(Json(serde_json::json!({ "status": 200, "leaders": moved })))
}

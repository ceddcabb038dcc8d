//! Cluster administration: status, adding and removing core nodes.

use super::{ok, ApiError, ApiJson, AppState};
use crate::raft::membership::{self, MembershipChange};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

/// This node's view: leader, term, log positions, voters and learners, and on the leader how far each
/// node has replicated.
pub async fn status(State(core): State<AppState>) -> Json<serde_json::Value> {
    let m = core.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let nodes: Vec<serde_json::Value> = membership
        .nodes()
        .map(|(id, n)| serde_json::json!({"id": id, "raft_addr": n.addr, "voter": voters.contains(id)}))
        .collect();
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
    Json(serde_json::json!({
        "node_id": core.config.node_id,
        "state": format!("{:?}", m.state),
        "leader": m.current_leader,
        "term": m.current_term,
        "last_log": last_log,
        "last_applied": m.last_applied.map(|l| l.index),
        "snapshot": m.snapshot.map(|l| l.index),
        "slots": core.config.slots,
        "nodes": nodes,
        "replication": replication,
    }))
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

async fn run(core: &AppState, change: MembershipChange) -> Result<Response, ApiError> {
    membership::change(&core.raft, core.config.node_id, &core.dial, change)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("membership change failed: {e}")))?;
    Ok(ok())
}

/// Adds a node (started with `join = true`) as a voter once it has caught up.
pub async fn add(State(core): State<AppState>, ApiJson(req): ApiJson<AddReq>) -> Result<Response, ApiError> {
    if req.id == 0 {
        return Err(ApiError::bad_request("id must be greater than 0"));
    }
    tern_shared::config::check_addr("raft_addr", &req.raft_addr, false)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    run(&core, MembershipChange::Add { id: req.id, raft_addr: req.raft_addr }).await
}

pub async fn remove(State(core): State<AppState>, ApiJson(req): ApiJson<RemoveReq>) -> Result<Response, ApiError> {
    run(&core, MembershipChange::Remove { id: req.id }).await
}

#[derive(Deserialize)]
pub struct TransferReq {
    node_id: u64,
}

/// Moves raft leadership to a voter; answers once it leads.
pub async fn transfer(State(core): State<AppState>, ApiJson(req): ApiJson<TransferReq>) -> Result<Response, ApiError> {
    let lease = std::time::Duration::from_millis(core.config.raft.election_max_ms);
    crate::raft::transfer::transfer(&core.raft, core.config.node_id, &core.dial, &core.handover, req.node_id, lease)
        .await
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, format!("leadership transfer failed: {e}")))?;
    Ok(ok())
}

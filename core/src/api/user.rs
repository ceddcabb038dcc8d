use super::{ok, ApiError, ApiJson, AppState};
use crate::raft::Command;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use tern_shared::channel::valid_uid;
use tern_shared::link::LinkFrame;
use tern_shared::proto::Reason;

#[derive(Deserialize)]
pub struct TokenReq {
    uid: String,
    token: String,
    #[serde(default)]
    device_flag: u8,
    #[serde(default = "master")]
    device_level: u8,
}

fn master() -> u8 {
    1
}

fn check_uid(uid: &str) -> Result<(), ApiError> {
    if valid_uid(uid) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("uid `{uid}` must be 1-64 bytes without '@', '#' or '&'")))
    }
}

pub async fn token(State(core): State<AppState>, ApiJson(req): ApiJson<TokenReq>) -> Result<Response, ApiError> {
    check_uid(&req.uid)?;
    if req.token.is_empty() {
        return Err(ApiError::bad_request("token must not be empty"));
    }
    let cmd = Command::set_token(req.uid, req.device_flag, &req.token, req.device_level);
    core.groups.propose(cmd).await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct DeviceQuitReq {
    uid: String,
    /// -1: every device (app, web, pc), as WuKongIM.
    #[serde(default)]
    device_flag: i16,
}

/// Revokes the token of one device (or all) and disconnects its sessions.
pub async fn device_quit(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<DeviceQuitReq>,
) -> Result<Response, ApiError> {
    check_uid(&req.uid)?;
    tracing::info!(uid = %req.uid, device_flag = req.device_flag, "device quit: token revoked, sessions kicked");
    let flags: Vec<u8> = match req.device_flag {
        -1 => vec![0, 1, 2],
        f => vec![u8::try_from(f).map_err(|_| ApiError::bad_request("device_flag must be 0-255, or -1 for all"))?],
    };
    for flag in flags {
        quit(&core, &req.uid, flag).await?;
    }
    Ok(ok())
}

async fn quit(core: &AppState, uid: &str, device_flag: u8) -> Result<(), ApiError> {
    core.groups.propose(Command::RemoveToken { uid: uid.to_string(), device_flag }).await?;
    for s in core.presence.device_sessions(uid, device_flag) {
        if let Some(link) = core.presence.link_of(&s.edge_id) {
            let kick = LinkFrame::Kick {
                session: s.session,
                reason_code: Reason::ConnectKick.code(),
                reason: "device quit".into(),
            };
            let _ = link.send(kick).await;
        }
        core.presence.close(&s.edge_id, s.session);
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct SystemUidsReq {
    #[serde(default)]
    uids: Vec<String>,
}

/// Adds or removes system uids: their clients' sends skip the membership, deny and allow checks, and
/// nobody's deny list keeps them out (WuKongIM's system accounts).
async fn system_uids(core: AppState, req: SystemUidsReq, system: bool) -> Result<Response, ApiError> {
    for uid in &req.uids {
        check_uid(uid)?;
    }
    for uid in req.uids {
        core.groups.propose(Command::SystemUid { uid, system }).await?;
    }
    Ok(ok())
}

pub async fn system_uids_add(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<SystemUidsReq>,
) -> Result<Response, ApiError> {
    system_uids(core, req, true).await
}

pub async fn system_uids_remove(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<SystemUidsReq>,
) -> Result<Response, ApiError> {
    system_uids(core, req, false).await
}

/// `GET /user/systemuids`: a bare array of uids.
pub async fn system_uids_list(State(core): State<AppState>) -> Result<Json<Vec<String>>, ApiError> {
    core.groups.wait_all().await?;
    Ok(Json(core.db.system_uids()?))
}

#[derive(Serialize)]
pub struct OnlineStatus {
    uid: String,
    device_flag: u8,
    online: u8,
}

pub async fn online_status(
    State(core): State<AppState>,
    ApiJson(uids): ApiJson<Vec<String>>,
) -> Json<Vec<OnlineStatus>> {
    let mut out = Vec::new();
    for uid in uids {
        let mut flags: Vec<u8> = core.presence.sessions_of(&uid).iter().map(|s| s.device_flag).collect();
        flags.sort_unstable();
        flags.dedup();
        out.extend(flags.into_iter().map(|device_flag| OnlineStatus { uid: uid.clone(), device_flag, online: 1 }));
    }
    Json(out)
}

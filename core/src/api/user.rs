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
    #[serde(default)]
    device_flag: u8,
}

/// Revokes the token of one device and disconnects its sessions.
pub async fn device_quit(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<DeviceQuitReq>,
) -> Result<Response, ApiError> {
    check_uid(&req.uid)?;
    core.groups.propose(Command::RemoveToken { uid: req.uid.clone(), device_flag: req.device_flag }).await?;
    for s in core.presence.device_sessions(&req.uid, req.device_flag) {
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
    Ok(ok())
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

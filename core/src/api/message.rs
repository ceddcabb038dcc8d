use super::{ApiError, ApiJson, AppState};
use crate::message_json::{Header, MessageJson};
use crate::raft::NewMessage;
use crate::rules::now_secs;
use crate::rules::send::Outcome;
use crate::store::reads::{Page, Paged};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::{Deserialize, Serialize};
use tern_shared::channel::{kind, stored_channel_id};

#[derive(Deserialize)]
pub struct SendReq {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    client_msg_no: String,
    #[serde(default)]
    from_uid: String,
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
    #[serde(default)]
    expire: u32,
    #[serde(default)]
    subscribers: Vec<String>,
    payload: String,
}

#[derive(Serialize)]
pub struct SendResp {
    message_id: i64,
    client_msg_no: String,
    message_seq: u64,
}

/// The sender of a business server's message that names none.
pub const SYSTEM_UID: &str = "____system";

/// Stored id of the channel a request names; for person channels `viewer` is the other party.
pub(super) fn stored_channel(viewer: &str, channel_id: &str, channel_type: u8) -> Result<String, ApiError> {
    stored_channel_id(viewer, channel_id, channel_type).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A business server sends a message as `from_uid`.
///
/// With `subscribers` (and no channel), the message goes to those uids only, as WuKongIM does it: in a
/// temporary channel (type 8) named after the list (`temp_channel_id`), whose members become exactly
/// those uids, with `sync_once` required, and no conversation for anyone. The answer is then
/// `{"status": 200}` with the ids.
pub async fn send(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<SendReq>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let payload = B64.decode(req.payload.as_bytes()).map_err(|_| ApiError::bad_request("payload must be base64"))?;
    if payload.is_empty() {
        return Err(ApiError::bad_request("payload cannot be empty"));
    }
    // No sender: the system sends it (WuKongIM's `____system`).
    let mut req = if req.from_uid.trim().is_empty() { SendReq { from_uid: SYSTEM_UID.into(), ..req } } else { req };
    let to_list = !req.subscribers.is_empty();
    if to_list {
        req.channel_id = to_subscribers(&core, &req).await?;
        req.channel_type = kind::TEMP;
    } else if req.channel_id.is_empty() {
        return Err(ApiError::bad_request("channel_id or subscribers is required"));
    }
    let channel_id = stored_channel(&req.from_uid, &req.channel_id, req.channel_type)?;
    let client_msg_no =
        if req.client_msg_no.is_empty() { tern_shared::client::random_msg_no() } else { req.client_msg_no };
    let msg = NewMessage {
        from_uid: req.from_uid,
        channel_id,
        channel_type: req.channel_type,
        client_msg_no: client_msg_no.clone(),
        header_flags: req.header.flags(),
        expire: req.expire,
        payload,
        timestamp: now_secs(),
        ..Default::default()
    };
    let done = core.settle(&core.groups.propose(core.send_command(msg)).await);
    let status = match done {
        Outcome::Sent { message_id, message_seq } => {
            let sent = SendResp { message_id, client_msg_no, message_seq };
            let mut body = serde_json::to_value(sent).map_err(ApiError::internal)?;
            if to_list {
                body["status"] = 200.into();
            }
            return Ok(Json(body));
        }
        Outcome::Refused(_) => StatusCode::BAD_REQUEST,
        // Worth sending again (same client_msg_no): the leader is moving, or the entry did not commit.
        Outcome::NotLeader | Outcome::Failed => StatusCode::SERVICE_UNAVAILABLE,
    };
    Err(ApiError::new(status, format!("message refused: reason code {}", done.reason())))
}

/// The temporary channel of `req.subscribers`, its members set to them.
async fn to_subscribers(core: &AppState, req: &SendReq) -> Result<String, ApiError> {
    if !req.channel_id.is_empty() {
        return Err(ApiError::bad_request("channel_id must be empty when subscribers are given"));
    }
    if req.header.sync_once != 1 {
        return Err(ApiError::bad_request("a message to subscribers needs header.sync_once = 1"));
    }
    if req.subscribers.len() > MAX_BATCH_UIDS {
        return Err(ApiError::bad_request(format!("at most {MAX_BATCH_UIDS} subscribers at once")));
    }
    if let Some(bad) = req.subscribers.iter().find(|u| !tern_shared::channel::valid_uid(u)) {
        return Err(ApiError::bad_request(format!("subscriber {bad:?} is not a valid uid")));
    }
    let channel_id = tern_shared::channel::temp_channel_id(&req.subscribers);
    let members = crate::raft::Command::AddSubscribers {
        channel_id: channel_id.clone(),
        channel_type: kind::TEMP,
        reset: true,
        uids: req.subscribers.clone(),
    };
    core.groups.propose(members).await?;
    Ok(channel_id)
}

#[derive(Deserialize)]
pub struct SendBatchReq {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    from_uid: String,
    #[serde(default)]
    subscribers: Vec<String>,
    #[serde(default)]
    payload: String,
}

/// Uids one `/message/sendbatch` may name.
const MAX_BATCH_UIDS: usize = 10_000;

/// `POST /message/sendbatch`: the same message from `from_uid` to each uid's person channel. The answer
/// is WuKongIM's bare `{"fail_uids": [...], "reason": [...]}`, a reason per uid that failed.
pub async fn send_batch(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<SendBatchReq>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if req.from_uid.is_empty() {
        return Err(ApiError::bad_request("from_uid cannot be empty"));
    }
    if req.subscribers.is_empty() {
        return Err(ApiError::bad_request("subscribers cannot be empty"));
    }
    if req.subscribers.len() > MAX_BATCH_UIDS {
        return Err(ApiError::bad_request(format!("at most {MAX_BATCH_UIDS} subscribers at once")));
    }
    let payload = B64.decode(req.payload.as_bytes()).map_err(|_| ApiError::bad_request("payload must be base64"))?;
    if payload.is_empty() {
        return Err(ApiError::bad_request("payload cannot be empty"));
    }
    let (mut fail_uids, mut reasons) = (Vec::new(), Vec::new());
    // Proposed together, so group commit packs them into few entries.
    let mut pending = Vec::new();
    for uid in req.subscribers {
        let channel_id = match stored_channel_id(&req.from_uid, &uid, kind::PERSON) {
            Ok(id) => id,
            Err(e) => {
                fail_uids.push(uid);
                reasons.push(e.to_string());
                continue;
            }
        };
        let msg = NewMessage {
            from_uid: req.from_uid.clone(),
            channel_id,
            channel_type: kind::PERSON,
            client_msg_no: tern_shared::client::random_msg_no(),
            header_flags: req.header.flags(),
            payload: payload.clone(),
            timestamp: now_secs(),
            ..Default::default()
        };
        let cmd = core.send_command(msg);
        pending.push((uid, cmd.clone(), core.groups.submit(cmd).await));
    }
    for (uid, cmd, submitted) in pending {
        let result = match submitted {
            Ok(p) => p.wait().await,
            Err(e) => Err(e),
        };
        // One at a time from here, retried while leadership moves; dedup keeps a retry single.
        let result = match result {
            Err(e) if e.leader_moving() => core.groups.propose(cmd).await,
            other => other,
        };
        let done = core.settle(&result);
        if !matches!(done, Outcome::Sent { .. }) {
            fail_uids.push(uid);
            reasons.push(format!("reason code {}", done.reason()));
        }
    }
    Ok(Json(serde_json::json!({"fail_uids": fail_uids, "reason": reasons})))
}

#[derive(Deserialize)]
pub struct SyncReq {
    #[serde(default)]
    login_uid: String,
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    start_message_seq: u64,
    #[serde(default)]
    end_message_seq: u64,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    pull_mode: u8,
}

#[derive(Serialize)]
pub struct SyncResp {
    start_message_seq: u64,
    end_message_seq: u64,
    more: u8,
    messages: Vec<MessageJson>,
}

const MAX_SYNC_LIMIT: usize = 10_000;
/// Stored bytes one sync answer carries at most (its JSON, with base64 payloads, is about a third
/// larger); past it `more` is set and the caller pages on.
const MAX_SYNC_BYTES: usize = 4 << 20;

/// Pages through a channel's messages. pull_mode 1 (up): `start <= seq < end` ascending; pull_mode 0
/// (down): `end < seq <= start` (start 0 = newest). Either way messages come back in seq order.
pub async fn sync(State(core): State<AppState>, ApiJson(req): ApiJson<SyncReq>) -> Result<Json<SyncResp>, ApiError> {
    let stored = stored_channel(&req.login_uid, &req.channel_id, req.channel_type)?;
    // Every message acked before this request is visible, whichever node answers.
    core.groups.of(&stored).reads.wait().await?;
    // A group (or temporary channel) is read by its members, the deny list's aside; without a login_uid
    // the business server reads.
    if req.channel_type != kind::PERSON && !req.login_uid.is_empty() {
        let member = core.db.is_subscriber(&stored, req.channel_type, &req.login_uid)?;
        if !member || core.db.is_listed(&stored, req.channel_type, crate::store::keys::DENY, &req.login_uid)? {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{} may not read {}", req.login_uid, req.channel_id),
            ));
        }
    }
    let limit = if req.limit == 0 { 100 } else { req.limit.min(MAX_SYNC_LIMIT) };
    let page = Page { limit, max_bytes: MAX_SYNC_BYTES };
    let Paged { mut messages, more } = if req.pull_mode == 1 {
        let end = if req.end_message_seq == 0 { u64::MAX } else { req.end_message_seq };
        core.db.messages_up(&stored, req.channel_type, req.start_message_seq, end, page)?
    } else {
        let start = if req.start_message_seq == 0 { u64::MAX } else { req.start_message_seq };
        core.db.messages_down(&stored, req.channel_type, start, req.end_message_seq, page)?
    };
    if req.pull_mode != 1 {
        messages.reverse();
    }
    let messages: Vec<MessageJson> = messages.into_iter().map(|m| MessageJson::seen_by(m, &req.login_uid)).collect();
    Ok(Json(SyncResp {
        start_message_seq: messages.first().map(|m| m.message_seq).unwrap_or(0),
        end_message_seq: messages.last().map(|m| m.message_seq).unwrap_or(0),
        more: u8::from(more),
        messages,
    }))
}

#[derive(Deserialize)]
pub struct MaxSeqQuery {
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    login_uid: String,
}

pub async fn max_seq(
    State(core): State<AppState>,
    Query(q): Query<MaxSeqQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let stored = stored_channel(&q.login_uid, &q.channel_id, q.channel_type)?;
    core.groups.of(&stored).reads.wait().await?;
    Ok(Json(serde_json::json!({"message_seq": core.db.last_seq(&stored, q.channel_type)?})))
}

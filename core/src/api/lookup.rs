//! Looking messages up (WuKongIM's `/messages`, `/message`, `/message/byclientmsgno`,
//! `/channel/last_message`): by seq directly, by message id or client msg no among a channel's newest
//! messages.

use super::message::stored_channel;
use super::{ApiError, ApiJson, AppState};
use crate::message_json::MessageJson;
use crate::store::model::StoredMessage;
use crate::store::reads::Page;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tern_shared::channel::kind;

/// How far back a lookup by message id or client msg no searches a channel, in messages (and at most
/// 16 MiB of them): ids do not give their seqs.
const SEARCH_DEPTH: usize = 10_000;
/// Seqs, ids and client msg nos one `/messages` call may ask for.
const MAX_LOOKUPS: usize = 1000;

/// The message, or `{"status":404}` with HTTP 200, as WuKongIM answers a message it does not have.
fn one(found: Option<StoredMessage>) -> Response {
    match found {
        Some(m) => Json(MessageJson::as_sent(m)).into_response(),
        None => Json(serde_json::json!({"status": 404})).into_response(),
    }
}

/// WuKongIM's checks of the channel a lookup names, in its order and words; `login_uid` when a person
/// channel is named from that user's side.
fn check(channel_id: &str, channel_type: u8, type_required: bool, login_uid: Option<&str>) -> Result<(), ApiError> {
    if channel_id.is_empty() {
        return Err(ApiError::bad_request("channel_id cannot be empty"));
    }
    if type_required && channel_type == 0 {
        return Err(ApiError::bad_request("channel_type cannot be 0"));
    }
    if channel_type == kind::PERSON && login_uid == Some("") {
        return Err(ApiError::bad_request("login_uid cannot be empty"));
    }
    Ok(())
}

/// The channel's newest messages (up to `SEARCH_DEPTH`) that `wanted` picks, newest first.
fn search(
    core: &crate::context::Core,
    stored: &str,
    channel_type: u8,
    mut wanted: impl FnMut(&StoredMessage) -> bool,
) -> Result<Vec<StoredMessage>, ApiError> {
    let page = Page { limit: SEARCH_DEPTH, max_bytes: 16 << 20 };
    let newest = core.db.messages_down(stored, channel_type, u64::MAX, 0, page)?.messages;
    Ok(newest.into_iter().filter(|m| wanted(m)).collect())
}

#[derive(Deserialize)]
pub struct MessagesReq {
    #[serde(default)]
    login_uid: String,
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
    #[serde(default)]
    message_seqs: Vec<u64>,
    #[serde(default)]
    message_ids: Vec<i64>,
    #[serde(default)]
    client_msg_nos: Vec<String>,
}

/// `POST /messages`: the messages with these seqs, then ids, then client msg nos; missing ones skipped.
pub async fn messages(State(core): State<AppState>, ApiJson(req): ApiJson<MessagesReq>) -> Result<Response, ApiError> {
    check(&req.channel_id, req.channel_type, false, None)?;
    if req.message_seqs.len() + req.message_ids.len() + req.client_msg_nos.len() > MAX_LOOKUPS {
        return Err(ApiError::bad_request(format!("at most {MAX_LOOKUPS} seqs, ids and client_msg_nos at once")));
    }
    let stored = stored_channel(&req.login_uid, &req.channel_id, req.channel_type)?;
    core.groups.of(&stored).reads.wait().await?;
    let mut found = Vec::new();
    for seq in &req.message_seqs {
        found.extend(core.db.message(&stored, req.channel_type, *seq)?);
    }
    if !req.message_ids.is_empty() || !req.client_msg_nos.is_empty() {
        // One read of the channel's newest messages serves both lists.
        let by_id = |m: &StoredMessage| req.message_ids.contains(&m.message_id);
        let by_no = |m: &StoredMessage| req.client_msg_nos.contains(&m.client_msg_no);
        let hits = search(&core, &stored, req.channel_type, |m| by_id(m) || by_no(m))?;
        let mut ids: Vec<StoredMessage> = hits.iter().filter(|m| by_id(m)).cloned().collect();
        ids.sort_by_key(|m| req.message_ids.iter().position(|id| *id == m.message_id));
        let mut nos: Vec<StoredMessage> = hits.into_iter().filter(|m| by_no(m)).collect();
        nos.sort_by_key(|m| req.client_msg_nos.iter().position(|no| *no == m.client_msg_no));
        found.extend(ids.into_iter().chain(nos));
    }
    let messages: Vec<MessageJson> = found.into_iter().map(MessageJson::as_sent).collect();
    Ok(Json(serde_json::json!({"start_message_seq": 0, "end_message_seq": 0, "more": 0, "messages": messages}))
        .into_response())
}

#[derive(Deserialize)]
pub struct MessageReq {
    #[serde(default)]
    login_uid: String,
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
    #[serde(default)]
    message_id: i64,
    #[serde(default)]
    client_msg_no: String,
}

/// `POST /message`: one message by id or client msg no.
pub async fn message(State(core): State<AppState>, ApiJson(req): ApiJson<MessageReq>) -> Result<Response, ApiError> {
    check(&req.channel_id, req.channel_type, true, Some(&req.login_uid))?;
    let stored = stored_channel(&req.login_uid, &req.channel_id, req.channel_type)?;
    core.groups.of(&stored).reads.wait().await?;
    let hit = search(&core, &stored, req.channel_type, |m| {
        (req.message_id != 0 && m.message_id == req.message_id)
            || (!req.client_msg_no.is_empty() && m.client_msg_no == req.client_msg_no)
    })?;
    Ok(one(hit.into_iter().next()))
}

#[derive(Deserialize)]
pub struct ByClientMsgNo {
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
    #[serde(default)]
    client_msg_no: String,
}

/// `GET /message/byclientmsgno`: a person channel is named by its stored id (`a@b`), as WuKongIM.
pub async fn by_client_msg_no(
    State(core): State<AppState>,
    Query(q): Query<ByClientMsgNo>,
) -> Result<Response, ApiError> {
    check(&q.channel_id, q.channel_type, true, None)?;
    if q.client_msg_no.is_empty() {
        return Err(ApiError::bad_request("client_msg_no cannot be empty"));
    }
    core.groups.of(&q.channel_id).reads.wait().await?;
    let hit = search(&core, &q.channel_id, q.channel_type, |m| m.client_msg_no == q.client_msg_no)?;
    Ok(one(hit.into_iter().next()))
}

#[derive(Deserialize)]
pub struct LastMessage {
    #[serde(default)]
    login_uid: String,
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
}

/// `GET /channel/last_message`.
pub async fn last_message(State(core): State<AppState>, Query(q): Query<LastMessage>) -> Result<Response, ApiError> {
    check(&q.channel_id, q.channel_type, false, Some(&q.login_uid))?;
    let stored = stored_channel(&q.login_uid, &q.channel_id, q.channel_type)?;
    core.groups.of(&stored).reads.wait().await?;
    let last = core.db.last_seq(&stored, q.channel_type)?;
    let message = if last == 0 { None } else { core.db.message(&stored, q.channel_type, last)? };
    Ok(one(message))
}

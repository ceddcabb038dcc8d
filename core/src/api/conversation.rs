//! Conversations in read mode (WuKongIM's `/conversation/sync` and `/conversations/*`): a user's
//! conversations with their unread counts and recent messages, and the user's changes to them.

use super::message::stored_channel;
use super::{ok, ApiError, ApiJson, AppState};
use crate::message_json::MessageJson;
use crate::raft::{Command, ConversationChange};
use crate::rules::conversation::{client_seqs, plan, Stored, SyncQuery};
use crate::store::reads::Page;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

/// Conversations one sync looks at, as WuKongIM (its `UserMaxCount`).
const MAX_CONVERSATIONS: usize = 1000;
const MAX_PAGE_SIZE: usize = 500;
/// Recent messages per conversation at most.
const MAX_MSG_COUNT: usize = 100;

#[derive(Deserialize)]
pub struct SyncReq {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    version: i64,
    #[serde(default)]
    last_msg_seqs: String,
    #[serde(default)]
    msg_count: usize,
    #[serde(default)]
    only_unread: u8,
    #[serde(default)]
    exclude_channel_types: Vec<u8>,
    #[serde(default)]
    page: usize,
    #[serde(default)]
    page_size: usize,
}

#[derive(Serialize)]
pub struct Conversation {
    channel_id: String,
    channel_type: u8,
    unread: u64,
    /// Of the last message, in seconds.
    timestamp: i64,
    last_msg_seq: u64,
    last_client_msg_no: String,
    offset_msg_seq: u64,
    readed_to_msg_seq: u64,
    /// Nanoseconds: of the last message, or of the user's last change to the conversation if later.
    version: i64,
    recents: Vec<MessageJson>,
}

pub async fn sync(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<SyncReq>,
) -> Result<Json<Vec<Conversation>>, ApiError> {
    if req.uid.is_empty() {
        return Err(ApiError::bad_request("uid cannot be empty"));
    }
    // A user's conversations live in the slots of their channels: every acked change is visible.
    core.groups.wait_all().await?;
    let q = SyncQuery {
        uid: req.uid,
        version: req.version,
        client_seqs: client_seqs(&req.last_msg_seqs),
        only_unread: req.only_unread == 1,
        exclude_channel_types: req.exclude_channel_types,
    };
    let msg_count = req.msg_count.min(MAX_MSG_COUNT);
    let mut out = Vec::new();
    for (channel_id, channel_type, record) in core.db.conversations(&q.uid, MAX_CONVERSATIONS)? {
        let last_seq = core.db.last_seq(&channel_id, channel_type)?;
        let stored = Stored { channel_id, channel_type, record, last_seq };
        let Some(p) = plan(&q, &stored) else { continue };
        // The newest messages from `from_seq` on, newest first; at least the last one, for the times.
        let page = Page { limit: msg_count.max(1), max_bytes: usize::MAX };
        let newest = core.db.messages_down(&stored.channel_id, channel_type, u64::MAX, p.from_seq - 1, page)?.messages;
        let Some(last) = newest.first() else { continue };
        let (timestamp, last_client_msg_no) = (i64::from(last.timestamp), last.client_msg_no.clone());
        let version = (timestamp * 1_000_000_000).max(stored.record.changed_ms * 1_000_000);
        let recents = newest.into_iter().take(msg_count).map(MessageJson::as_sent).collect();
        out.push(Conversation {
            channel_id: p.channel_id,
            channel_type,
            unread: p.unread,
            timestamp,
            last_msg_seq: last_seq,
            last_client_msg_no,
            offset_msg_seq: 0,
            readed_to_msg_seq: p.read_to,
            version,
            recents,
        });
    }
    out.sort_by_key(|c| std::cmp::Reverse((c.timestamp, c.version)));
    if req.page > 0 {
        let size = if req.page_size == 0 { 100 } else { req.page_size.min(MAX_PAGE_SIZE) };
        out = out.into_iter().skip((req.page - 1) * size).take(size).collect();
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct ChangeReq {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
    /// setUnread: how many of the newest messages stay unread.
    #[serde(default)]
    unread: u64,
}

/// The command for `uid`'s change to a conversation, with the channel by its stored id.
fn change(req: ChangeReq, change: ConversationChange) -> Result<Command, ApiError> {
    if req.uid.is_empty() {
        return Err(ApiError::bad_request("uid cannot be empty"));
    }
    if req.channel_id.is_empty() || req.channel_type == 0 {
        return Err(ApiError::bad_request("channel_id or channel_type cannot be empty"));
    }
    let channel_id = stored_channel(&req.uid, &req.channel_id, req.channel_type)?;
    let at_ms = tern_shared::client::now_ms() as i64;
    Ok(Command::SetConversation { uid: req.uid, channel_id, channel_type: req.channel_type, change, at_ms })
}

/// Leaves `unread` of the newest messages unread (0: all read).
pub async fn set_unread(State(core): State<AppState>, ApiJson(req): ApiJson<ChangeReq>) -> Result<Response, ApiError> {
    let unread = req.unread;
    core.groups.propose(change(req, ConversationChange::Unread(unread))?).await?;
    Ok(ok())
}

pub async fn clear_unread(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<ChangeReq>,
) -> Result<Response, ApiError> {
    core.groups.propose(change(req, ConversationChange::Unread(0))?).await?;
    Ok(ok())
}

/// Hides the conversation until a newer message arrives.
pub async fn delete(State(core): State<AppState>, ApiJson(req): ApiJson<ChangeReq>) -> Result<Response, ApiError> {
    core.groups.propose(change(req, ConversationChange::Delete)?).await?;
    Ok(ok())
}

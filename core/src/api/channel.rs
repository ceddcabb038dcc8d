use super::{ok, ApiError, ApiJson, AppState};
use crate::raft::{Command, ListChange, MemberList};
use crate::store::keys;
use crate::store::model::ChannelRecord;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use serde::Deserialize;
use tern_shared::channel::{kind, valid_channel_id, valid_uid};

#[derive(Deserialize)]
pub struct ChannelReq {
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    large: u8,
    #[serde(default)]
    ban: u8,
    #[serde(default)]
    disband: u8,
    #[serde(default)]
    send_ban: u8,
    #[serde(default)]
    subscribers: Vec<String>,
}

#[derive(Deserialize)]
pub struct SubscribersReq {
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    reset: u8,
    #[serde(default)]
    subscribers: Vec<String>,
}

#[derive(Deserialize)]
pub struct ChannelRef {
    channel_id: String,
    channel_type: u8,
}

/// Channels created through the API are groups; person channels exist implicitly.
pub(super) fn check_channel(channel_id: &str, channel_type: u8) -> Result<(), ApiError> {
    if !valid_channel_id(channel_id) {
        return Err(ApiError::bad_request("channel_id must be 1-128 bytes without control characters"));
    }
    if channel_type != kind::GROUP {
        return Err(ApiError::bad_request(format!(
            "channel_type {channel_type} is not supported here: only groups (2) are created; person channels (1) need no creation"
        )));
    }
    Ok(())
}

fn check_uids(uids: &[String]) -> Result<(), ApiError> {
    match uids.iter().find(|u| !valid_uid(u)) {
        Some(bad) => Err(ApiError::bad_request(format!("subscriber `{bad}` is not a valid uid"))),
        None => Ok(()),
    }
}

fn record(req: &ChannelReq) -> ChannelRecord {
    ChannelRecord {
        channel_id: req.channel_id.clone(),
        channel_type: req.channel_type,
        ban: req.ban != 0,
        disband: req.disband != 0,
        send_ban: req.send_ban != 0,
        large: req.large != 0,
    }
}

/// Creates or updates a channel and adds the given subscribers.
pub async fn upsert(State(core): State<AppState>, ApiJson(req): ApiJson<ChannelReq>) -> Result<Response, ApiError> {
    check_channel(&req.channel_id, req.channel_type)?;
    check_uids(&req.subscribers)?;
    let channel = record(&req);
    core.groups.propose(Command::UpsertChannel { channel, subscribers: req.subscribers }).await?;
    Ok(ok())
}

/// Updates a channel's settings only. A person channel named by one uid holds that user's own settings
/// (as WuKongIM): `ban` keeps the user from connecting, `send_ban` from sending.
pub async fn info(State(core): State<AppState>, ApiJson(req): ApiJson<ChannelReq>) -> Result<Response, ApiError> {
    if req.channel_type == kind::PERSON {
        check_list_channel(&req.channel_id, req.channel_type)?;
    } else {
        check_channel(&req.channel_id, req.channel_type)?;
    }
    core.groups.propose(Command::UpsertChannel { channel: record(&req), subscribers: Vec::new() }).await?;
    Ok(ok())
}

pub async fn delete(State(core): State<AppState>, ApiJson(req): ApiJson<ChannelRef>) -> Result<Response, ApiError> {
    check_channel(&req.channel_id, req.channel_type)?;
    core.groups.propose(Command::DeleteChannel { channel_id: req.channel_id, channel_type: req.channel_type }).await?;
    Ok(ok())
}

pub async fn subscriber_add(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<SubscribersReq>,
) -> Result<Response, ApiError> {
    check_channel(&req.channel_id, req.channel_type)?;
    check_uids(&req.subscribers)?;
    let cmd = Command::AddSubscribers {
        channel_id: req.channel_id,
        channel_type: req.channel_type,
        reset: req.reset != 0,
        uids: req.subscribers,
    };
    core.groups.propose(cmd).await?;
    Ok(ok())
}

pub async fn subscriber_remove(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<SubscribersReq>,
) -> Result<Response, ApiError> {
    check_channel(&req.channel_id, req.channel_type)?;
    let cmd = Command::RemoveSubscribers {
        channel_id: req.channel_id,
        channel_type: req.channel_type,
        uids: req.subscribers,
    };
    core.groups.propose(cmd).await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct ListReq {
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
    #[serde(default)]
    uids: Vec<String>,
}

/// A group's lists, or a user's (channel type 1, the channel id being the uid whose senders they filter).
fn check_list_channel(channel_id: &str, channel_type: u8) -> Result<(), ApiError> {
    if channel_id.is_empty() {
        return Err(ApiError::bad_request("channel_id cannot be empty"));
    }
    match channel_type {
        0 => Err(ApiError::bad_request("channel_type cannot be 0")),
        kind::PERSON if !valid_uid(channel_id) => {
            Err(ApiError::bad_request("a person channel's lists are its owner's: channel_id must be a uid"))
        }
        kind::PERSON => Ok(()),
        _ => check_channel(channel_id, channel_type),
    }
}

async fn change_list(core: AppState, req: ListReq, list: MemberList, change: ListChange) -> Result<Response, ApiError> {
    check_list_channel(&req.channel_id, req.channel_type)?;
    if change != ListChange::Set && req.uids.is_empty() {
        return Err(ApiError::bad_request("uids cannot be empty"));
    }
    check_uids(&req.uids)?;
    let cmd =
        Command::SetList { channel_id: req.channel_id, channel_type: req.channel_type, list, change, uids: req.uids };
    core.groups.propose(cmd).await?;
    Ok(ok())
}

/// The route of one change to one list; `clear` empties it whatever `uids` says (`*_remove_all`).
pub fn list_route(list: MemberList, change: ListChange, clear: bool) -> MethodRouter<AppState> {
    post(move |State(core): State<AppState>, ApiJson(mut req): ApiJson<ListReq>| async move {
        if clear {
            req.uids.clear();
        }
        change_list(core, req, list, change).await
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    channel_type: u8,
}

/// `GET /channel/whitelist`: the allow list as WuKongIM gives it, `[{"uid": …}, …]`.
pub async fn allow_list(
    State(core): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<serde_json::Value>>, ApiError> {
    check_list_channel(&q.channel_id, q.channel_type)?;
    core.groups.of(&q.channel_id).reads.wait().await?;
    let uids = core.db.list(&q.channel_id, q.channel_type, keys::ALLOW)?;
    Ok(axum::Json(uids.into_iter().map(|uid| serde_json::json!({ "uid": uid })).collect()))
}

/// Removes every subscriber of a group (their conversations too).
pub async fn subscriber_remove_all(
    State(core): State<AppState>,
    ApiJson(req): ApiJson<ChannelRef>,
) -> Result<Response, ApiError> {
    if req.channel_type == kind::PERSON {
        return Err(ApiError::bad_request("person channels have no subscribers to remove"));
    }
    check_channel(&req.channel_id, req.channel_type)?;
    let cmd = Command::AddSubscribers {
        channel_id: req.channel_id,
        channel_type: req.channel_type,
        reset: true,
        uids: Vec::new(),
    };
    core.groups.propose(cmd).await?;
    Ok(ok())
}

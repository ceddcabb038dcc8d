use super::{ok, ApiError, ApiJson, AppState};
use crate::raft::Command;
use crate::store::model::ChannelRecord;
use axum::extract::State;
use axum::response::Response;
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

/// Updates a channel's settings only.
pub async fn info(State(core): State<AppState>, ApiJson(req): ApiJson<ChannelReq>) -> Result<Response, ApiError> {
    check_channel(&req.channel_id, req.channel_type)?;
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

//! The business HTTP API (WuKongIM's paths and JSON shapes).

mod auth;
mod channel;
mod cluster;
mod console;
mod conversation;
mod error;
mod lookup;
mod message;
mod route;
pub mod serve;
mod user;

use crate::context::Core;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
pub use error::{ApiError, ApiJson};
use std::sync::Arc;

type AppState = Arc<Core>;

pub fn router(core: Arc<Core>) -> Router {
    use crate::raft::{ListChange::*, MemberList::*};
    let managed = Router::new()
        .route("/user/token", post(user::token))
        .route("/user/device_quit", post(user::device_quit))
        .route("/user/onlinestatus", post(user::online_status))
        .route("/user/systemuids_add", post(user::system_uids_add))
        .route("/user/systemuids_remove", post(user::system_uids_remove))
        .route("/user/systemuids", get(user::system_uids_list))
        .route("/channel", post(channel::upsert))
        .route("/channel/info", post(channel::info))
        .route("/channel/delete", post(channel::delete))
        .route("/channel/subscriber_add", post(channel::subscriber_add))
        .route("/channel/subscriber_remove", post(channel::subscriber_remove))
        .route("/channel/subscriber_remove_all", post(channel::subscriber_remove_all))
        .route("/channel/blacklist_add", channel::list_route(Deny, Add, false))
        .route("/channel/blacklist_set", channel::list_route(Deny, Set, false))
        .route("/channel/blacklist_remove", channel::list_route(Deny, Remove, false))
        .route("/channel/blacklist_remove_all", channel::list_route(Deny, Set, true))
        .route("/channel/whitelist_add", channel::list_route(Allow, Add, false))
        .route("/channel/whitelist_set", channel::list_route(Allow, Set, false))
        .route("/channel/whitelist_remove", channel::list_route(Allow, Remove, false))
        .route("/channel/whitelist_remove_all", channel::list_route(Allow, Set, true))
        .route("/channel/whitelist", get(channel::allow_list))
        .route("/channel/messagesync", post(message::sync))
        .route("/channel/max_message_seq", get(message::max_seq))
        .route("/message/send", post(message::send))
        .route("/message/sendbatch", post(message::send_batch))
        .route("/messages", post(lookup::messages))
        .route("/message", post(lookup::message))
        .route("/message/byclientmsgno", get(lookup::by_client_msg_no))
        .route("/channel/last_message", get(lookup::last_message))
        .route("/conversation/sync", post(conversation::sync))
        .route("/conversations/setUnread", post(conversation::set_unread))
        .route("/conversations/clearUnread", post(conversation::clear_unread))
        .route("/conversations/delete", post(conversation::delete))
        .route_layer(middleware::from_fn_with_state(core.clone(), auth::require_business_token))
        .route_layer(middleware::from_fn_with_state(
            std::time::Duration::from_millis(core.config.http.request_timeout_ms),
            serve::deadline,
        ));
    let admin = Router::new()
        .route("/cluster", get(cluster::status))
        .route("/cluster/nodes/add", post(cluster::add))
        .route("/cluster/nodes/remove", post(cluster::remove))
        .route("/cluster/leader/transfer", post(cluster::transfer))
        .route("/cluster/leader/balance", post(cluster::balance))
        .route("/console/api/overview", get(console::overview))
        .route("/console/api/user", get(console::user))
        .route("/console/api/channel", get(console::channel))
        .route_layer(middleware::from_fn_with_state(core.clone(), auth::require_admin_token));
    Router::new()
        .merge(managed)
        .merge(admin)
        .route("/route", get(route::route))
        .route("/route/batch", post(route::route_batch))
        .route("/console", get(console::page))
        .route("/console/app.js", get(console::script))
        .route("/console/app.css", get(console::style))
        .route("/health", get(route::health))
        .route("/metrics", get(route::metrics))
        .with_state(core)
}

/// `{"status":200}`, WuKongIM's plain success answer.
fn ok() -> Response {
    axum::Json(serde_json::json!({"status": 200})).into_response()
}

//! The operator's console: a page served at `/console` (its assets are compiled into the binary; no
//! CDN, no bundler) and the data it shows. The page holds no data: everything comes from the endpoints
//! below and the operator API, each behind the admin token, which the page's login form keeps in the
//! browser session. Actions (leadership transfer, balance, device kick, ban) call the existing API.

use super::{ApiError, AppState};
use crate::store::keys;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");

/// Everything the page loads comes from this node; nothing runs inline.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, body).into_response()
}

pub async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// This node's view of the cluster (as `/cluster`), the edges linked to it with their sessions, and
/// counters the page turns into rates.
pub async fn overview(State(core): State<AppState>) -> Json<serde_json::Value> {
    let stats = core.presence.edge_stats();
    let edges: Vec<serde_json::Value> = core
        .presence
        .edge_addrs()
        .into_iter()
        .map(|(id, addrs)| {
            let (sessions, report) = stats.get(&id).cloned().unwrap_or_default();
            let ms = |us: u64| us as f64 / 1000.0;
            let by_node: serde_json::Map<String, serde_json::Value> =
                report.iter().flat_map(|r| &r.by_node).map(|(node, us)| (node.to_string(), ms(*us).into())).collect();
            serde_json::json!({
                "id": id,
                "region": addrs.region,
                "sessions": sessions,
                "rtt_ms": report.as_ref().map(|r| ms(r.micros)),
                "rtt_ms_by_node": by_node,
                "connects": report.as_ref().map(|r| r.connects),
                "tcp": addrs.tcp,
            })
        })
        .collect();
    let m = &core.metrics;
    let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Json(serde_json::json!({
        "cluster": super::cluster::view(&core),
        // Whether each other voter answered this node's last probe (every heartbeat).
        "reachable": core.groups.reachable(),
        "edges": edges,
        "at_ms": at_ms,
        "counters": {
            "messages_stored": m.messages_stored.get(),
            "deliveries": m.deliveries.get(),
            "raft_commits": m.commit_latency.get_sample_count(),
            "wal_syncs": core.db.wal_syncs().get(),
            "forwarded_batches": m.forwarded_batches.get(),
            "online_sessions": m.online_sessions.get(),
        },
    }))
}

#[derive(Deserialize)]
pub struct UidQuery {
    uid: String,
}

/// A user's live sessions, as this node's presence knows them (every node hears every edge).
pub async fn user(
    State(core): State<AppState>,
    Query(q): Query<UidQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !tern_shared::channel::valid_uid(&q.uid) {
        return Err(ApiError::bad_request("not a valid uid"));
    }
    let sessions: Vec<serde_json::Value> = core
        .presence
        .sessions_of(&q.uid)
        .into_iter()
        .map(|s| serde_json::json!({"edge_id": s.edge_id, "device_flag": s.device_flag, "session": s.session}))
        .collect();
    let banned = core.db.channel(&q.uid, tern_shared::channel::kind::PERSON)?.is_some_and(|c| c.ban);
    Ok(Json(serde_json::json!({"uid": q.uid, "sessions": sessions, "banned": banned})))
}

#[derive(Deserialize)]
pub struct ChannelQuery {
    channel_id: String,
    channel_type: u8,
}

/// Members shown at most; the total is always given.
const MEMBERS_SHOWN: usize = 200;

/// A channel's settings, members and deny and allow lists; for a person channel (a uid), the user's
/// own ban and lists.
pub async fn channel(
    State(core): State<AppState>,
    Query(q): Query<ChannelQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // A person channel's lists are its owner's, kept under the uid (`/channel/blacklist_*`).
    let id = match q.channel_type {
        tern_shared::channel::kind::PERSON if tern_shared::channel::valid_uid(&q.channel_id) => q.channel_id.clone(),
        tern_shared::channel::kind::PERSON => return Err(ApiError::bad_request("not a valid uid")),
        _ => super::message::stored_channel("", &q.channel_id, q.channel_type)?,
    };
    core.groups.of(&id).reads.wait().await?;
    let record = core.db.channel(&id, q.channel_type)?;
    let members = core.db.subscribers(&id, q.channel_type)?;
    let total = members.len();
    Ok(Json(serde_json::json!({
        "channel_id": id,
        "channel_type": q.channel_type,
        "exists": record.is_some(),
        "ban": record.as_ref().is_some_and(|r| r.ban),
        "last_seq": core.db.last_seq(&id, q.channel_type)?,
        "members_total": total,
        "members": members.into_iter().take(MEMBERS_SHOWN).collect::<Vec<_>>(),
        "deny": core.db.list(&id, q.channel_type, keys::DENY)?,
        "allow": core.db.list(&id, q.channel_type, keys::ALLOW)?,
    })))
}

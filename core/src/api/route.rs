use super::{ApiError, ApiJson, AppState};
use crate::config::RouteRegion;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use tern_shared::link::EdgeAddrs;

#[derive(Deserialize)]
pub struct RouteQuery {
    #[serde(default)]
    uid: String,
}

/// WuKongIM's fields (`tcp_addr`, `ws_addr`, `wss_addr`) for the chosen edge, Tern's `tls_addr` and
/// `quic_addr`, the other edges to try in order, and the other regions by their stable DNS names,
/// nearest first (a client resolves those when the edges it was given are gone).
#[derive(Serialize)]
pub struct Route {
    #[serde(flatten)]
    primary: EdgeRoute,
    fallback: Vec<EdgeRoute>,
    fallback_regions: Vec<RegionRoute>,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct RegionRoute {
    region: String,
    dns_name: String,
}

#[derive(Serialize, Debug)]
pub struct EdgeRoute {
    tcp_addr: String,
    ws_addr: String,
    wss_addr: String,
    tls_addr: String,
    quic_addr: String,
    region: String,
}

impl From<EdgeAddrs> for EdgeRoute {
    fn from(a: EdgeAddrs) -> Self {
        EdgeRoute {
            tcp_addr: a.tcp,
            ws_addr: a.ws,
            wss_addr: a.wss,
            tls_addr: a.tls,
            quic_addr: a.quic,
            region: a.region,
        }
    }
}

/// The edge whose access layer forwarded the request: the one the client reached, so the nearest.
const VIA_EDGE: &str = "x-tern-edge";

/// Picks an edge for `uid` among the connected ones: the edge the request came through, else one
/// stable per uid.
fn route_for(core: &AppState, uid: &str, via: Option<&str>) -> Result<Route, ApiError> {
    let edges = core.presence.edge_addrs();
    if edges.is_empty() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no edge is connected to this core"));
    }
    let nearest = via.and_then(|id| edges.iter().position(|(e, _)| e == id));
    let first = nearest.unwrap_or(tern_shared::channel::crc(uid) as usize % edges.len());
    arrange(edges, first, &core.config.regions).ok_or_else(|| ApiError::internal("no edge"))
}

/// Edge `first` and the rest as fallbacks: those of its region, then the other regions' nearest first
/// (regions the deployment does not list last); within each region in a rotation starting at `first`,
/// so each uid spreads differently.
fn arrange(mut edges: Vec<(String, EdgeAddrs)>, first: usize, regions: &[RouteRegion]) -> Option<Route> {
    edges.rotate_left(first);
    let mut it = edges.into_iter().map(|(_, a)| EdgeRoute::from(a));
    let primary = it.next()?;
    let fallback_regions: Vec<RegionRoute> = regions
        .iter()
        .find(|r| r.id == primary.region)
        .map(|r| r.fallback.iter().filter_map(|id| regions.iter().find(|x| &x.id == id)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|r| RegionRoute { region: r.id.clone(), dns_name: r.dns_name.clone() })
        .collect();
    let rank = |region: &str| match region == primary.region {
        true => 0,
        false => fallback_regions.iter().position(|r| r.region == region).map_or(usize::MAX, |i| i + 1),
    };
    let mut fallback: Vec<EdgeRoute> = it.collect();
    fallback.sort_by_key(|e| rank(&e.region)); // stable: the rotation stays within each region
    Some(Route { primary, fallback, fallback_regions })
}

fn via(headers: &HeaderMap) -> Option<&str> {
    headers.get(VIA_EDGE).and_then(|v| v.to_str().ok())
}

pub async fn route(
    State(core): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RouteQuery>,
) -> Result<Json<Route>, ApiError> {
    Ok(Json(route_for(&core, &q.uid, via(&headers))?))
}

#[derive(Serialize)]
pub struct UidRoute {
    uids: Vec<String>,
    #[serde(flatten)]
    route: Route,
}

pub async fn route_batch(
    State(core): State<AppState>,
    headers: HeaderMap,
    ApiJson(uids): ApiJson<Vec<String>>,
) -> Result<Json<Vec<UidRoute>>, ApiError> {
    uids.into_iter()
        .map(|uid| Ok(UidRoute { route: route_for(&core, &uid, via(&headers))?, uids: vec![uid] }))
        .collect::<Result<_, _>>()
        .map(Json)
}

/// 200 once every raft group has a leader; 503 while any is electing one (the access layer's health
/// check, so a proxy avoids a node that cannot serve every channel yet).
pub async fn health(State(core): State<AppState>) -> impl IntoResponse {
    let me = core.config.node_id;
    let leaders: Vec<Option<u64>> =
        core.groups.all().iter().map(|g| g.raft.metrics().borrow().current_leader).collect();
    let without = leaders.iter().filter(|l| l.is_none()).count();
    let leaving = core.groups.leaving();
    let status = match (leaving, without) {
        (true, _) => "stopping",
        (false, 0) => "ok",
        (false, _) => "no-leader",
    };
    let body = serde_json::json!({
        "status": status,
        "node_id": me,
        "slots": leaders.len(),
        "without_leader": without,
        "leading": leaders.iter().filter(|l| **l == Some(me)).count(),
    });
    let code = if status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}

pub async fn metrics(State(core): State<AppState>) -> impl IntoResponse {
    let gm = &core.metrics;
    let me = core.config.node_id;
    gm.raft_replication_lag.reset();
    let mut led = 0;
    for g in core.groups.all() {
        let m = g.raft.metrics().borrow().clone();
        let slot = g.slot.to_string();
        let slot = [slot.as_str()];
        gm.raft_term.with_label_values(&slot).set(m.current_term as i64);
        gm.raft_last_applied.with_label_values(&slot).set(m.last_applied.map_or(0, |l| l.index as i64));
        gm.raft_is_leader.with_label_values(&slot).set(i64::from(m.current_leader == Some(me)));
        gm.raft_leader_id.with_label_values(&slot).set(m.current_leader.unwrap_or(0) as i64);
        led += usize::from(m.current_leader == Some(me));
        let last_log = m.last_log_index.unwrap_or(0);
        gm.raft_last_log_index.with_label_values(&slot).set(last_log as i64);
        let applied = m.last_applied.map_or(0, |l| l.index);
        gm.raft_apply_lag.with_label_values(&slot).set(last_log.saturating_sub(applied) as i64);
        for (peer, matched) in m.replication.iter().flatten() {
            let lag = last_log.saturating_sub(matched.map_or(0, |l| l.index));
            gm.raft_replication_lag.with_label_values(&[slot[0], &peer.to_string()]).set(lag as i64);
        }
    }
    gm.raft_groups_led.set(led as i64);
    gm.db_size_bytes.set(core.db.live_size() as i64);
    let (_, sessions) = core.presence.counts();
    gm.online_sessions.set(sessions as i64);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], gm.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(id: &str, region: &str) -> (String, EdgeAddrs) {
        (id.into(), EdgeAddrs { tcp: format!("{id}:5100"), region: region.into(), ..Default::default() })
    }

    #[test]
    fn fallbacks_go_by_region_nearest_first() {
        let regions: Vec<RouteRegion> = [("eu", ["us", "ap"]), ("us", ["eu", "ap"]), ("ap", ["eu", "us"])]
            .into_iter()
            .map(|(id, fallback)| RouteRegion {
                id: id.into(),
                dns_name: format!("{id}.im.example"),
                fallback: fallback.iter().map(|f| f.to_string()).collect(),
            })
            .collect();
        let edges =
            vec![edge("ap-1", "ap"), edge("us-1", "us"), edge("eu-1", "eu"), edge("x-1", "x"), edge("eu-2", "eu")];
        let r = arrange(edges.clone(), 0, &regions).unwrap();
        assert_eq!(r.primary.tcp_addr, "ap-1:5100");
        let order: Vec<&str> = r.fallback.iter().map(|e| e.tcp_addr.as_str()).collect();
        assert_eq!(order, ["eu-1:5100", "eu-2:5100", "us-1:5100", "x-1:5100"]);
        let names: Vec<&str> = r.fallback_regions.iter().map(|r| r.dns_name.as_str()).collect();
        assert_eq!(names, ["eu.im.example", "us.im.example"]);

        let r = arrange(edges.clone(), 4, &regions).unwrap();
        let order: Vec<&str> = r.fallback.iter().map(|e| e.tcp_addr.as_str()).collect();
        assert_eq!(order, ["eu-1:5100", "us-1:5100", "ap-1:5100", "x-1:5100"]);

        // Without regions (a deployment not described in deploy/regions): same region first, nothing else.
        let r = arrange(edges, 2, &[]).unwrap();
        assert_eq!(r.fallback[0].tcp_addr, "eu-2:5100");
        assert!(r.fallback_regions.is_empty());
    }
}

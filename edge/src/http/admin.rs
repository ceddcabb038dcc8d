//! The edge's admin endpoints: `/healthz` (503 while the core is unreachable or the edge drains) and
//! `/metrics`.

use crate::Edge;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

pub fn router(edge: Arc<Edge>) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics)).with_state(edge)
}

async fn healthz(State(edge): State<Arc<Edge>>) -> impl IntoResponse {
    let draining = edge.draining();
    let up = edge.link.is_up() && !draining;
    let status = match (draining, up) {
        (true, _) => "draining",
        (false, true) => "ok",
        (false, false) => "core-unreachable",
    };
    let body = serde_json::json!({
        "status": status,
        "edge_id": edge.config.edge_id,
        "region": edge.config.region,
        "sessions": edge.registry.len(),
        "rss_bytes": tern_shared::limits::rss_bytes(),
    });
    (if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, axum::Json(body))
}

async fn metrics(State(edge): State<Arc<Edge>>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], edge.metrics.render())
}

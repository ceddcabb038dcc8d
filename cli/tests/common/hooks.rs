//! A business server's webhook endpoint for tests: takes every POST whose signature holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const SECRET: &str = "hook-secret";

/// One POST the receiver took.
#[derive(Debug, Clone)]
pub struct Hook {
    pub event: String,
    pub ids: Vec<u64>,
    pub body: serde_json::Value,
}

pub type Hooks = Arc<Mutex<Vec<Hook>>>;

/// The business server: takes every POST on `port` whose signature holds (others get 401).
pub async fn receiver(port: u16, hooks: Hooks) -> tokio::task::JoinHandle<()> {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    async fn take(
        State(hooks): State<Hooks>,
        Query(q): Query<BTreeMap<String, String>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        if header("x-tern-signature") != tern_core::webhook::plan::signature(SECRET.as_bytes(), &body) {
            return StatusCode::UNAUTHORIZED;
        }
        let ids = header("x-tern-event-id").split(',').filter_map(|s| s.parse().ok()).collect();
        let body = serde_json::from_slice(&body).unwrap_or_default();
        hooks.lock().unwrap().push(Hook { event: q.get("event").cloned().unwrap_or_default(), ids, body });
        StatusCode::OK
    }
    let app = axum::Router::new().route("/hook", axum::routing::post(take)).with_state(hooks);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("receiver port");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

pub fn hook_toml(port: u16) -> String {
    format!(
        "[webhook]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{SECRET}\"\ninterval_ms = 100\n\
         retry_min_ms = 200\nretry_max_ms = 1000\nbatch_size = 20\n"
    )
}

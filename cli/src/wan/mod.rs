//! Simulated wide-area paths for deployments run on one machine: a relay per cross-region path adds
//! the described round trip, jitter and loss (`pace.rs`), counts bytes and can be cut and healed
//! (`relay.rs`). `tern wan relay` runs one with a small admin API.

pub mod pace;
pub mod relay;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use pace::Shape;
use relay::Relay;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct RelayArgs {
    /// Where clients of the path connect.
    #[arg(long)]
    listen: SocketAddr,
    /// Where the path leads (host:port).
    #[arg(long)]
    to: String,
    #[arg(long, default_value_t = 80)]
    rtt_ms: u64,
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Share of chunks delayed by a retransmission timeout (0 ≤ loss < 1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Admin API: `GET /` (bytes carried, cut or partitioned), `POST /cut`, `POST /partition`,
    /// `POST /heal`. Loopback only.
    #[arg(long, default_value = "127.0.0.1:0")]
    admin: SocketAddr,
}

pub async fn relay(a: RelayArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&a.loss) {
        anyhow::bail!("--loss must be at least 0 and below 1");
    }
    if !a.admin.ip().is_loopback() {
        anyhow::bail!("--admin must be a loopback address: the admin API has no authentication");
    }
    let shape =
        Shape { rtt: Duration::from_millis(a.rtt_ms), jitter: Duration::from_millis(a.jitter_ms), loss: a.loss };
    let relay = Arc::new(Relay::start(a.listen, a.to, shape).await?);
    let app = Router::new()
        .route("/", get(status))
        .route("/cut", post(|State(r): State<Arc<Relay>>| async move { r.set_cut(true) }))
        .route("/partition", post(|State(r): State<Arc<Relay>>| async move { r.set_partitioned(true) }))
        .route(
            "/heal",
            post(|State(r): State<Arc<Relay>>| async move {
                r.set_cut(false);
                r.set_partitioned(false);
            }),
        )
        .with_state(relay.clone());
    let admin = tokio::net::TcpListener::bind(a.admin).await?;
    println!(
        "TERN_READY {}",
        serde_json::json!({"relay": relay.addr.to_string(), "admin": admin.local_addr()?.to_string()})
    );
    tokio::select! {
        r = axum::serve(admin, app) => r?,
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

async fn status(State(r): State<Arc<Relay>>) -> Json<serde_json::Value> {
    Json(r.status())
}

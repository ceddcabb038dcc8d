//! `tern core` and `tern edge`: a TOML file, then flags (or env) on top, then validation.

use crate::deploy::{self, LayoutArgs, Part};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use tern_core::CoreConfig;
use tern_edge::EdgeConfig;
use tern_shared::config::{self, Validate};

#[derive(Args)]
pub struct CoreArgs {
    /// TOML settings file (see docs/CONFIG.md).
    #[arg(long, env = "TERN_CORE_CONFIG")]
    config: Option<PathBuf>,
    /// A deployment description (`deploy/regions/<name>`): addresses, peers, raft timings and
    /// certificate paths of `--node-id` come from it, under the file and the flags.
    #[arg(long, env = "TERN_DEPLOYMENT", requires = "node_id")]
    deployment: Option<PathBuf>,
    #[command(flatten)]
    layout: LayoutArgs,
    #[arg(long, env = "TERN_NODE_ID")]
    node_id: Option<u64>,
    #[arg(long, env = "TERN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, env = "TERN_HTTP_ADDR")]
    http_addr: Option<String>,
    #[arg(long, env = "TERN_LINK_ADDR")]
    link_addr: Option<String>,
    #[arg(long, env = "TERN_RAFT_ADDR")]
    raft_addr: Option<String>,
    /// Every voter, this node included: `1=host:port,2=host:port,3=host:port` (raft addresses).
    #[arg(long, env = "TERN_PEERS")]
    peers: Option<String>,
    /// Peers to dial at another address than they advertise: `2=host:port,...`.
    #[arg(long, env = "TERN_DIAL")]
    dial: Option<String>,
    /// Join a running cluster: wait to be added instead of creating one.
    #[arg(long)]
    join: bool,
    /// The business token (WuKongIM's manager token) for users, channels and messages.
    #[arg(long, env = "TERN_MANAGER_TOKEN")]
    manager_token: Option<String>,
    /// The operator's token for `/cluster/*`.
    #[arg(long, env = "TERN_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Any setting, over the file: `--set raft.heartbeat_ms=100` (a TOML value; repeat the flag).
    /// Without flags, TERN_CORE_SET holds them, separated by `;`.
    #[arg(long = "set", value_name = "KEY=VALUE", env = "TERN_CORE_SET", value_delimiter = ';')]
    set: Vec<String>,
}

#[derive(Args)]
pub struct EdgeArgs {
    #[arg(long, env = "TERN_EDGE_CONFIG")]
    config: Option<PathBuf>,
    /// A deployment description: this edge's (`--edge-id`) listeners, region, core addresses and
    /// certificate paths come from it, under the file and the flags.
    #[arg(long, env = "TERN_DEPLOYMENT", requires = "edge_id")]
    deployment: Option<PathBuf>,
    #[command(flatten)]
    layout: LayoutArgs,
    #[arg(long, env = "TERN_EDGE_ID")]
    edge_id: Option<String>,
    #[arg(long, env = "TERN_TCP_ADDR")]
    tcp_addr: Option<String>,
    #[arg(long, env = "TERN_WS_ADDR")]
    ws_addr: Option<String>,
    #[arg(long, env = "TERN_EDGE_HTTP_ADDR")]
    http_addr: Option<String>,
    /// Core link addresses, comma-separated; the edge keeps a link to each.
    #[arg(long, env = "TERN_CORE_ADDR")]
    core_addr: Option<String>,
    /// Any setting, over the file: `--set http_proxy.addr="0.0.0.0:5090"` (a TOML value; repeat the
    /// flag). Without flags, TERN_EDGE_SET holds them, separated by `;`.
    #[arg(long = "set", value_name = "KEY=VALUE", env = "TERN_EDGE_SET", value_delimiter = ';')]
    set: Vec<String>,
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// One machine-readable line on stdout once listeners are bound, for scripts and tests.
fn announce_ready(fields: serde_json::Value) {
    println!("TERN_READY {fields}");
}

pub async fn core(a: CoreArgs) -> anyhow::Result<()> {
    let base = match (&a.deployment, a.node_id) {
        (Some(dir), Some(id)) => deploy::base(dir, Part::Node(id), &a.layout.clone().into())?,
        _ => toml::Table::new(),
    };
    let mut c: CoreConfig = config::load_layered(base, a.config.as_deref(), &a.set)?;
    set(&mut c.node_id, a.node_id);
    set(&mut c.data_dir, a.data_dir);
    set(&mut c.http_addr, a.http_addr);
    set(&mut c.link_addr, a.link_addr);
    set(&mut c.raft_addr, a.raft_addr);
    c.join |= a.join;
    if let Some(d) = a.dial {
        c.dial = tern_core::config::PeerConfig::parse_list(&d)?;
    }
    if let Some(p) = a.peers {
        c.peers = tern_core::config::PeerConfig::parse_list(&p)?;
    }
    if a.manager_token.is_some() {
        c.manager_token = a.manager_token;
    }
    if a.admin_token.is_some() {
        c.admin_token = a.admin_token;
    }
    c.validate()?;
    let h = tern_core::start(c).await.context("starting core")?;
    announce_ready(serde_json::json!({
        "http": h.http_addr.to_string(), "link": h.link_addr.to_string(), "raft": h.raft_addr.to_string(),
        "link_quic": h.link_quic_addr.map(|a| a.to_string()).unwrap_or_default(),
    }));
    shutdown_signal().await;
    let stopped = h.stop().await;
    if stopped.not_handed.is_empty() && !stopped.cut_short {
        tracing::info!(handed = stopped.handed, took = ?stopped.took, "core node stopped");
    } else {
        tracing::warn!(
            handed = stopped.handed, not_handed = ?stopped.not_handed, cut_short = stopped.cut_short,
            took = ?stopped.took, "core node stopped; leadership or requests in flight not all handed over"
        );
    }
    Ok(())
}

pub async fn edge(a: EdgeArgs) -> anyhow::Result<()> {
    let base = match (&a.deployment, &a.edge_id) {
        (Some(dir), Some(id)) => deploy::base(dir, Part::Edge(id), &a.layout.clone().into())?,
        _ => toml::Table::new(),
    };
    let mut c: EdgeConfig = config::load_layered(base, a.config.as_deref(), &a.set)?;
    set(&mut c.edge_id, a.edge_id);
    set(&mut c.tcp_addr, a.tcp_addr);
    set(&mut c.ws_addr, a.ws_addr);
    set(&mut c.http_addr, a.http_addr);
    set(&mut c.core_addr, a.core_addr);
    c.validate()?;
    let h = tern_edge::start(c).await.context("starting edge")?;
    let show = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    announce_ready(serde_json::json!({
        "tcp": show(h.tcp_addr), "ws": show(h.ws_addr), "tls": show(h.tls_addr), "wss": show(h.wss_addr),
        "quic": show(h.quic_addr),
        "http": show(h.http_addr), "proxy": show(h.proxy_addr), "proxy_tls": show(h.proxy_tls_addr),
    }));
    shutdown_signal().await;
    h.edge.drain().await;
    Ok(())
}

/// SIGTERM (what service managers send) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

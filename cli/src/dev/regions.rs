//! `tern dev --regions DIR`: every region of a deployment description on its own loopback addresses,
//! in one process, with a WAN relay (`wan/`) on every cross-region path, raft and edge links alike. An
//! admin API shows the paths and cuts, partitions or heals a region.

use crate::deploy::configs::{self, Layout};
use crate::wan::pace::Shape;
use crate::wan::relay::Relay;
use anyhow::Context;
use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tern_core::CoreConfig;
use tern_edge::EdgeConfig;
use tern_shared::config::Validate;
use tern_shared::deployment::{join, Deployment};
use tern_shared::pki::{Ca, Identity};

/// A relay on the path from one region to an address in another.
struct Crossing {
    from: String,
    to: String,
    relay: Relay,
}

type Paths = Arc<Vec<Crossing>>;

pub struct Running {
    pub cores: Vec<tern_core::CoreHandle>,
    pub edges: Vec<(String, tern_edge::EdgeHandle)>,
    pub admin: SocketAddr,
}

/// Starts the deployment in `dir` with its data under `data_dir`.
pub async fn start(dir: &Path, data_dir: &Path, set: &[String], admin: SocketAddr) -> anyhow::Result<Running> {
    anyhow::ensure!(admin.ip().is_loopback(), "--wan-admin must be a loopback address: its API has no authentication");
    let d = Deployment::load(dir)?;
    for (_, v) in d.voters() {
        local(&v.listen, &format!("voter {}", v.id))?;
    }
    for (_, e) in d.edges() {
        local(&e.listen, &format!("edge {}", e.id))?;
    }
    let certs = data_dir.join("certs");
    let ca = Ca::open_or_init(&certs, "Tern dev CA").with_context(|| format!("the CA in {}", certs.display()))?;
    let layout = |data: &Path| Layout { cert_dir: certs.clone(), tls_dir: data_dir.join("tls"), data_dir: data.into() };
    let mut wan = Vec::new();

    let mut cores = Vec::new();
    // The lowest id creates the cluster and campaigns at once: the others start first.
    let mut voters: Vec<_> = d.voters().collect();
    voters.reverse();
    for &(r, v) in &voters {
        ca.issue(&Identity::Node(v.id), std::slice::from_ref(&v.listen), 365)?;
        let mut base = configs::core(&d, v.id, &layout(&data_dir.join(format!("node-{}", v.id))))?;
        let mut dial = Vec::new();
        for &(w_region, w) in &voters {
            if w_region.id != r.id {
                let relay =
                    cross(&mut wan, &d, &r.id, &v.listen, &w_region.id, join(&w.listen, d.ports.core_raft)).await?;
                let mut t = toml::Table::new();
                t.insert("id".into(), toml::Value::Integer(w.id as i64));
                t.insert("raft_addr".into(), toml::Value::String(relay));
                dial.push(toml::Value::Table(t));
            }
        }
        base.insert("dial".into(), toml::Value::Array(dial));
        let cfg: CoreConfig = tern_shared::config::load_layered(base, None, set)?;
        cfg.validate()?;
        cores.push(tern_core::start(cfg).await.with_context(|| format!("starting core node {}", v.id))?);
    }
    cores.reverse();
    let mut edges = Vec::new();
    for (region, e) in d.edges() {
        let id = &e.id;
        ca.issue(&Identity::Edge { id: id.clone(), region: Some(region.id.clone()) }, &[], 365)?;
        let mut base = configs::edge(&d, id, &layout(data_dir))?;
        let mut cores = Vec::new();
        for (w_region, w) in d.voters() {
            let target = join(&w.listen, d.ports.core_link);
            cores.push(if w_region.id == region.id {
                target
            } else {
                cross(&mut wan, &d, &region.id, &e.listen, &w_region.id, target).await?
            });
        }
        base.insert("core_addr".into(), toml::Value::String(cores.join(",")));
        let cfg: EdgeConfig = tern_shared::config::load_layered(base, None, &[])?;
        cfg.validate()?;
        edges.push((id.clone(), tern_edge::start(cfg).await.with_context(|| format!("starting edge {id}"))?));
    }

    let paths: Paths = Arc::new(wan);
    let app = Router::new()
        .route("/wan", get(status))
        .route("/wan/cut/{region}", post(|s, r| steer(s, r, Some(true), None)))
        .route("/wan/partition/{region}", post(|s, r| steer(s, r, None, Some(true))))
        .route("/wan/heal/{region}", post(|s, r| steer(s, r, Some(false), Some(false))))
        .with_state(paths);
    let listener = tokio::net::TcpListener::bind(admin).await.with_context(|| format!("the admin API on {admin}"))?;
    let admin = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "dev admin API stopped");
        }
    });
    Ok(Running { cores, edges, admin })
}

/// A relay, bound at `local_ip` in region `from`, on the path to `target` in region `to`; the address
/// to dial instead of `target`.
async fn cross(
    wan: &mut Vec<Crossing>,
    d: &Deployment,
    from: &str,
    local_ip: &str,
    to: &str,
    target: String,
) -> anyhow::Result<String> {
    let p = d.path(from, to);
    let shape = Shape {
        rtt: Duration::from_millis(p.map_or(0, |p| u64::from(p.rtt_ms))),
        jitter: Duration::from_millis(p.map_or(0, |p| u64::from(p.jitter_ms))),
        loss: p.map_or(0.0, |p| p.loss),
    };
    let listen: SocketAddr = format!("{}:0", join_ip(local_ip)).parse()?;
    let relay = Relay::start(listen, target, shape).await.with_context(|| format!("a relay on {local_ip}"))?;
    let addr = relay.addr.to_string();
    wan.push(Crossing { from: from.into(), to: to.into(), relay });
    Ok(addr)
}

fn local(ip: &str, what: &str) -> anyhow::Result<()> {
    let ip: std::net::IpAddr = ip.parse()?;
    anyhow::ensure!(ip.is_loopback(), "{what} listens on {ip}: `tern dev --regions` runs on loopback addresses only");
    Ok(())
}

fn join_ip(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

async fn status(State(paths): State<Paths>) -> Json<serde_json::Value> {
    let list: Vec<_> = paths
        .iter()
        .map(|p| {
            let mut status = p.relay.status();
            status["from"] = json!(p.from);
            status["to"] = json!(p.to);
            status
        })
        .collect();
    Json(json!({ "paths": list }))
}

/// Cuts, partitions or heals every path into and out of `region`.
async fn steer(
    State(paths): State<Paths>,
    UrlPath(region): UrlPath<String>,
    cut: Option<bool>,
    partitioned: Option<bool>,
) -> Json<serde_json::Value> {
    let mut n = 0;
    for p in paths.iter().filter(|p| p.from == region || p.to == region) {
        if let Some(c) = cut {
            p.relay.set_cut(c);
        }
        if let Some(h) = partitioned {
            p.relay.set_partitioned(h);
        }
        n += 1;
    }
    Json(json!({ "region": region, "paths": n }))
}

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
    let mut paths = Vec::new();
    let shape = |a: &str, b: &str| {
        let p = d.path(a, b);
        Shape {
            rtt: Duration::from_millis(p.map_or(0, |p| u64::from(p.rtt_ms))),
            jitter: Duration::from_millis(p.map_or(0, |p| u64::from(p.jitter_ms))),
            loss: p.map_or(0.0, |p| p.loss),
        }
    };
    // A connection from `from` (bound at `local_ip`) to `target` in region `to`: direct within a
    // region, through a relay bound in the source region across regions.
    let mut route = |from: &str, local_ip: &str, to: &str, target: String| -> Option<usize> {
        if from == to {
            return None;
        }
        paths.push((from.to_string(), to.to_string(), local_ip.to_string(), target, shape(from, to)));
        Some(paths.len() - 1)
    };

    // Paths are planned before any relay starts, so that each node's `dial` list and each edge's
    // `core_addr` can name the relay (by index) that its cross-region connections go through.
    let mut node_dials = Vec::new();
    for (r, v) in d.voters() {
        let mut dials = Vec::new();
        for (w_region, w) in d.voters() {
            let target = join(&w.listen, d.ports.core_raft);
            if let Some(i) = route(&r.id, &v.listen, &w_region.id, target) {
                dials.push((w.id, i));
            }
        }
        node_dials.push((v.id, dials));
    }
    let mut edge_links = Vec::new();
    for (r, e) in d.edges() {
        let mut links = Vec::new();
        for (w_region, w) in d.voters() {
            let target = join(&w.listen, d.ports.core_link);
            links.push(route(&r.id, &e.listen, &w_region.id, target.clone()).ok_or(target));
        }
        edge_links.push((e.id.clone(), links));
    }
    let mut relays = Vec::new();
    for (from, to, ip, target, shape) in paths {
        let listen: SocketAddr = format!("{}:0", join_ip(&ip)).parse()?;
        let relay = Relay::start(listen, target, shape).await.with_context(|| format!("a relay on {ip}"))?;
        relays.push(Crossing { from, to, relay });
    }

    let mut cores = Vec::new();
    // The lowest id creates the cluster and campaigns at once: the others start first.
    for (v_id, dials) in node_dials.iter().rev() {
        let v = d.voters().find(|(_, v)| v.id == *v_id).map(|(_, v)| v.clone()).context("voter")?;
        ca.issue(&Identity::Node(v.id), std::slice::from_ref(&v.listen), 365)?;
        let mut base = configs::core(&d, v.id, &layout(&data_dir.join(format!("node-{}", v.id))))?;
        let dial: Vec<toml::Value> = dials
            .iter()
            .map(|(id, i)| {
                let mut t = toml::Table::new();
                t.insert("id".into(), toml::Value::Integer(*id as i64));
                t.insert("raft_addr".into(), toml::Value::String(relays[*i].relay.addr.to_string()));
                toml::Value::Table(t)
            })
            .collect();
        base.insert("dial".into(), toml::Value::Array(dial));
        let cfg: CoreConfig = tern_shared::config::load_layered(base, None, set)?;
        cfg.validate()?;
        cores.push(tern_core::start(cfg).await.with_context(|| format!("starting core node {}", v.id))?);
    }
    cores.reverse();
    let mut edges = Vec::new();
    for (id, links) in &edge_links {
        let (region, _) = d.edges().find(|(_, e)| &e.id == id).context("edge")?;
        ca.issue(&Identity::Edge { id: id.clone(), region: Some(region.id.clone()) }, &[], 365)?;
        let mut base = configs::edge(&d, id, &layout(data_dir))?;
        let cores: Vec<String> = links
            .iter()
            .map(|l| l.as_ref().map_or_else(|direct| direct.clone(), |i| relays[*i].relay.addr.to_string()))
            .collect();
        base.insert("core_addr".into(), toml::Value::String(cores.join(",")));
        let cfg: EdgeConfig = tern_shared::config::load_layered(base, None, &[])?;
        cfg.validate()?;
        edges.push((id.clone(), tern_edge::start(cfg).await.with_context(|| format!("starting edge {id}"))?));
    }

    let paths: Paths = Arc::new(relays);
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
            let (forward, back) = p.relay.bytes();
            json!({"from": p.from, "to": p.to, "via": p.relay.addr.to_string(), "target": p.relay.target(),
                   "cut": p.relay.is_cut(), "partitioned": p.relay.is_partitioned(), "bytes_forward": forward, "bytes_back": back})
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

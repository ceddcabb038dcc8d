//! `tern dev --regions DIR`: every region of a deployment description on its own loopback addresses,
//! in one process, with a WAN relay (`wan/`) on every cross-region path, raft and edge links alike. An
//! admin API shows the paths and cuts, partitions or heals a region.
//!
//! Clients reach edges through relays too: the clients of the i-th region (by id) see the edge that
//! listens on 127.a.b.c at 127.(200+i).b.c, on the edge's ports, with the round trip between the two
//! regions added (none within a region). The DNS server (`dns/`) answers with those addresses by the
//! asking address's region, so a client that resolves the domain pays the round trip to the region it
//! is sent to, and cutting a region cuts every client off its edges.

use crate::deploy::configs::{self, Layout};
use crate::wan::pace::Shape;
use crate::wan::relay::Relay;
use anyhow::Context;
use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    /// `raft` (node to node), `link` (edge to core node) or `client` (a region's clients to an edge; cut
    /// with the edge's region only: the clients themselves are outside every data centre).
    kind: &'static str,
    relay: Relay,
}

type Paths = Arc<Vec<Crossing>>;

pub struct Running {
    pub cores: Vec<tern_core::CoreHandle>,
    pub edges: Vec<(String, tern_edge::EdgeHandle)>,
    pub admin: SocketAddr,
    pub dns: crate::dns::Dns,
    pub domain: String,
    /// Per region, the address its clients dial for each edge.
    pub fronts: BTreeMap<String, BTreeMap<String, IpAddr>>,
}

/// Starts the deployment in `dir` with its data under `data_dir`.
pub async fn start(
    dir: &Path,
    data_dir: &Path,
    set: &[String],
    admin: SocketAddr,
    dns: SocketAddr,
) -> anyhow::Result<Running> {
    anyhow::ensure!(admin.ip().is_loopback(), "--wan-admin must be a loopback address: its API has no authentication");
    anyhow::ensure!(dns.ip().is_loopback(), "--dns must be a loopback address");
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
                let target = join(&w.listen, d.ports.core_raft);
                let path = cross("raft", &d, &r.id, &w_region.id, &v.listen, 0, target).await?;
                let relay = path.relay.addr.to_string();
                wan.push(path);
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
                let path = cross("link", &d, &region.id, &w_region.id, &e.listen, 0, target).await?;
                let relay = path.relay.addr.to_string();
                wan.push(path);
                relay
            });
        }
        base.insert("core_addr".into(), toml::Value::String(cores.join(",")));
        let cfg: EdgeConfig = tern_shared::config::load_layered(base, None, &[])?;
        cfg.validate()?;
        edges.push((id.clone(), tern_edge::start(cfg).await.with_context(|| format!("starting edge {id}"))?));
    }

    let fronts = fronts(&mut wan, &d).await?;
    let dns = serve_dns(dns, &d, &fronts).await?;
    let paths: Paths = Arc::new(wan);
    let checked = dns.clone();
    let app = Router::new()
        .route("/wan", get(status))
        .route("/metrics", get(metrics))
        .route("/dns", get(move || dns_status(checked.clone())))
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
    Ok(Running { cores, edges, admin, dns, domain: d.domain.clone(), fronts })
}

/// The relays between every region's clients and every edge (see the module's comment).
async fn fronts(wan: &mut Vec<Crossing>, d: &Deployment) -> anyhow::Result<BTreeMap<String, BTreeMap<String, IpAddr>>> {
    let taken: Vec<&str> =
        d.voters().map(|(_, v)| v.listen.as_str()).chain(d.edges().map(|(_, e)| e.listen.as_str())).collect();
    let ports: Vec<u16> =
        [d.ports.edge_tcp, d.ports.edge_ws, d.ports.edge_http].into_iter().filter(|p| *p != 0).collect();
    let mut all = BTreeMap::new();
    for (i, client) in d.regions.iter().enumerate() {
        let mut seen = BTreeMap::new();
        for (region, e) in d.edges() {
            let ip = front_ip(i, &e.listen)?;
            anyhow::ensure!(
                !taken.contains(&ip.to_string().as_str()) && !seen.values().any(|v| *v == ip),
                "edge {} would be reached at {ip}, an address already in use: give the edges distinct last two octets",
                e.id
            );
            for &port in &ports {
                let target = join(&e.listen, port);
                wan.push(cross("client", d, &client.id, &region.id, &ip.to_string(), port, target).await?);
            }
            seen.insert(e.id.clone(), ip);
        }
        all.insert(client.id.clone(), seen);
    }
    Ok(all)
}

/// Where the clients of the region at `index` reach an edge listening on `listen` (127.a.b.c).
fn front_ip(index: usize, listen: &str) -> anyhow::Result<IpAddr> {
    let ip: Ipv4Addr =
        listen.parse().map_err(|_| anyhow::anyhow!("edge address {listen}: `tern dev --regions` needs IPv4 edges"))?;
    let [_, _, b, c] = ip.octets();
    let a = u8::try_from(200 + index).map_err(|_| anyhow::anyhow!("`tern dev --regions` runs at most 55 regions"))?;
    Ok(IpAddr::V4(Ipv4Addr::new(127, a, b, c)))
}

async fn serve_dns(
    bind: SocketAddr,
    d: &Deployment,
    fronts: &BTreeMap<String, BTreeMap<String, IpAddr>>,
) -> anyhow::Result<crate::dns::Dns> {
    let region_of: BTreeMap<&str, &str> = d.edges().map(|(r, e)| (e.id.as_str(), r.id.as_str())).collect();
    // Health checks reach each edge the way its own region's clients do, so a cut region fails them.
    let checks = if d.ports.edge_http == 0 {
        Vec::new()
    } else {
        fronts
            .iter()
            .flat_map(|(client, edges)| edges.iter().map(move |(e, ip)| (client, e, ip)))
            .filter(|(client, e, _)| region_of.get(e.as_str()) == Some(&client.as_str()))
            .map(|(_, e, ip)| (e.clone(), format!("http://{}/healthz", SocketAddr::new(*ip, d.ports.edge_http))))
            .collect()
    };
    let table = fronts.clone();
    let addr_of: crate::dns::AddrOf =
        Arc::new(move |client: &str, edge: &str| table.get(client).and_then(|m| m.get(edge)).copied());
    crate::dns::serve(bind, Arc::new(d.clone()), addr_of, checks, Default::default())
        .await
        .with_context(|| format!("the DNS server on {bind}"))
}

/// A `kind` relay on `local_ip:port` in region `from`, on the path to `target` in region `to`.
async fn cross(
    kind: &'static str,
    d: &Deployment,
    from: &str,
    to: &str,
    local_ip: &str,
    port: u16,
    target: String,
) -> anyhow::Result<Crossing> {
    let p = d.path(from, to);
    let shape = Shape {
        rtt: Duration::from_millis(p.map_or(0, |p| u64::from(p.rtt_ms))),
        jitter: Duration::from_millis(p.map_or(0, |p| u64::from(p.jitter_ms))),
        loss: p.map_or(0.0, |p| p.loss),
    };
    let listen: SocketAddr = join(local_ip, port).parse()?;
    let relay = Relay::start(listen, target, shape).await.with_context(|| format!("a relay on {listen}"))?;
    Ok(Crossing { from: from.into(), to: to.into(), kind, relay })
}

fn local(ip: &str, what: &str) -> anyhow::Result<()> {
    let ip: std::net::IpAddr = ip.parse()?;
    anyhow::ensure!(ip.is_loopback(), "{what} listens on {ip}: `tern dev --regions` runs on loopback addresses only");
    Ok(())
}

/// Each edge's health as the DNS server sees it.
async fn dns_status(dns: crate::dns::Dns) -> Json<serde_json::Value> {
    Json(json!({ "addr": dns.addr.to_string(), "healthy": dns.healthy() }))
}

async fn status(State(paths): State<Paths>) -> Json<serde_json::Value> {
    let list: Vec<_> = paths
        .iter()
        .map(|p| {
            let mut status = p.relay.status();
            status["from"] = json!(p.from);
            status["to"] = json!(p.to);
            status["kind"] = json!(p.kind);
            status
        })
        .collect();
    Json(json!({ "paths": list }))
}

/// The bytes every kind of path carried between two regions, for Prometheus.
async fn metrics(State(paths): State<Paths>) -> String {
    use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};
    let opts = Opts::new(
        "tern_wan_bytes_total",
        "Bytes carried by the simulated WAN paths from one region to another (forward: towards the target)",
    );
    let labels = ["from", "to", "kind", "direction"];
    let Ok(bytes) = IntCounterVec::new(opts, &labels) else { return String::new() };
    for p in paths.iter() {
        let (forward, back) = p.relay.bytes();
        bytes.with_label_values(&[p.from.as_str(), p.to.as_str(), p.kind, "forward"]).inc_by(forward);
        bytes.with_label_values(&[p.from.as_str(), p.to.as_str(), p.kind, "back"]).inc_by(back);
    }
    let registry = Registry::new();
    let mut out = Vec::new();
    if registry.register(Box::new(bytes)).is_ok() {
        let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Cuts, partitions or heals every path into and out of `region` (clients' paths: into it only).
async fn steer(
    State(paths): State<Paths>,
    UrlPath(region): UrlPath<String>,
    cut: Option<bool>,
    partitioned: Option<bool>,
) -> Json<serde_json::Value> {
    let mut n = 0;
    for p in paths.iter().filter(|p| p.to == region || (p.from == region && p.kind != "client")) {
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

//! Each node's and each edge's settings as the deployment implies them: addresses, peers, raft timings
//! and the certificate paths of the layout. They are TOML tables, laid under a node's own config file
//! and flags, so that whatever an operator sets by hand still wins.

use serde_json::json;
use std::path::{Path, PathBuf};
use tern_shared::deployment::{join, Deployment, Edge, Region};

/// Where an installed node keeps what the deployment does not describe.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The cluster CA's `ca.pem` and this machine's `node-<id>` or `edge-<id>` certificate and key.
    pub cert_dir: PathBuf,
    /// The public certificate and key for the edges' TLS listeners (`fullchain.pem`, `privkey.pem`).
    pub tls_dir: PathBuf,
    pub data_dir: PathBuf,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            cert_dir: "/etc/tern/certs".into(),
            tls_dir: "/etc/tern/tls".into(),
            data_dir: "/var/lib/tern/core".into(),
        }
    }
}

fn table(value: serde_json::Value) -> anyhow::Result<toml::Table> {
    Ok(toml::Table::try_from(value)?)
}

fn mtls(dir: &Path, stem: &str) -> serde_json::Value {
    json!({
        "cert": dir.join(format!("{stem}.pem")), "key": dir.join(format!("{stem}.key")),
        "ca": tern_shared::pki::Ca::cert_path(dir), "server_name": tern_shared::pki::CORE_NAME,
    })
}

/// `host:port`, or empty (the listener off) for port 0.
fn addr(host: &str, port: u16) -> String {
    if port == 0 {
        String::new()
    } else {
        join(host, port)
    }
}

/// Core node `id`'s settings.
pub fn core(d: &Deployment, id: u64, layout: &Layout) -> anyhow::Result<toml::Table> {
    let (_, v) = d
        .voters()
        .find(|(_, v)| v.id == id)
        .ok_or_else(|| anyhow::anyhow!("the deployment `{}` has no voter {id}", d.name))?;
    let p = &d.ports;
    let peers: Vec<_> =
        d.voters().map(|(_, v)| json!({"id": v.id, "raft_addr": join(v.host(), p.core_raft)})).collect();
    let t = d.raft_timings();
    let tls = mtls(&layout.cert_dir, &format!("node-{id}"));
    let home = d.home_region.as_deref().and_then(|h| d.region(h));
    let preferred: Vec<u64> = home.map(|r| r.voters.iter().map(|v| v.id).collect()).unwrap_or_default();
    table(json!({
        "node_id": id,
        "data_dir": layout.data_dir,
        "slots": d.slots,
        "http_addr": join(&v.listen, p.core_http),
        "link_addr": join(&v.listen, p.core_link),
        "raft_addr": join(&v.listen, p.core_raft),
        "peers": peers,
        "raft_tls": tls,
        "link_tls": tls,
        "raft": {
            "heartbeat_ms": t.heartbeat_ms, "election_min_ms": t.election_min_ms, "election_max_ms": t.election_max_ms,
            "preferred_leaders": preferred,
        },
        "regions": served(d).map(|r| region_route(d, r)).collect::<Vec<_>>(),
    }))
}

/// A region clients are sent to (one with edges), with its stable name and the other regions nearest
/// first: an entry of the core's `regions` (for `/route`) and of the clients' bootstrap list.
pub fn region_route(d: &Deployment, r: &Region) -> serde_json::Value {
    json!({"id": r.id, "dns_name": r.dns_name, "fallback": d.fallback(&r.id)})
}

/// The regions that have edges.
pub fn served(d: &Deployment) -> impl Iterator<Item = &Region> {
    d.regions.iter().filter(|r| !r.edges.is_empty())
}

/// What clients are given to reach edge `e`, by transport (those the deployment turns on).
pub fn client_addrs(d: &Deployment, e: &Edge) -> serde_json::Map<String, serde_json::Value> {
    let p = &d.ports;
    [("tcp", "", p.edge_tcp), ("ws", "ws://", p.edge_ws), ("wss", "wss://", p.edge_wss)]
        .into_iter()
        .filter(|&(_, _, port)| port != 0)
        .map(|(transport, scheme, port)| (transport.to_string(), json!(format!("{scheme}{}", join(e.host(), port)))))
        .collect()
}

/// Edge `id`'s settings: it links to every voter.
pub fn edge(d: &Deployment, id: &str, layout: &Layout) -> anyhow::Result<toml::Table> {
    let (region, e) = d
        .edges()
        .find(|(_, e)| e.id == id)
        .ok_or_else(|| anyhow::anyhow!("the deployment `{}` has no edge `{id}`", d.name))?;
    let p = &d.ports;
    let cores: Vec<String> = d.voters().map(|(_, v)| join(v.host(), p.core_link)).collect();
    let mut value = json!({
        "edge_id": id,
        "region": region.id,
        "tcp_addr": addr(&e.listen, p.edge_tcp),
        "ws_addr": addr(&e.listen, p.edge_ws),
        "wss_addr": addr(&e.listen, p.edge_wss),
        "http_addr": join(&e.listen, p.edge_http),
        "core_addr": cores.join(","),
        "link_tls": mtls(&layout.cert_dir, &format!("edge-{id}")),
        "advertise": client_addrs(d, e),
    });
    if p.edge_wss != 0 {
        value["certs"] =
            json!([{"cert": layout.tls_dir.join("fullchain.pem"), "key": layout.tls_dir.join("privkey.pem")}]);
    }
    table(value)
}

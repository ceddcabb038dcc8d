//! `tern dev`: a whole deployment in one process on loopback, with demo users to chat as; with
//! `--regions`, every region of a deployment description (`regions.rs`).

mod edge;
pub mod regions;

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tern_core::config::PeerConfig;
use tern_core::raft::Command;
use tern_core::store::model::ChannelRecord;
use tern_core::CoreConfig;
use tern_edge::http::proxy::config::{HttpProxyConfig, UpstreamConfig};
use tern_edge::EdgeConfig;
use tern_shared::config::Validate;
use tern_shared::pki::{Ca, Identity};

#[derive(Args)]
pub struct DevArgs {
    /// Where the core keeps its RocksDB data.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Require this business token on the HTTP API (none by default).
    #[arg(long)]
    manager_token: Option<String>,
    /// Require this token on `/cluster/*` (without it, the manager token guards those too).
    #[arg(long)]
    admin_token: Option<String>,
    /// Address every listener binds to.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 5001)]
    http_port: u16,
    #[arg(long, default_value_t = 5100)]
    tcp_port: u16,
    #[arg(long, default_value_t = 5200)]
    ws_port: u16,
    #[arg(long, default_value_t = 5301)]
    link_port: u16,
    #[arg(long, default_value_t = 5302)]
    raft_port: u16,
    /// Core nodes (one raft voter each); node n uses the base ports + 10·(n−1).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Slots, each a raft group (fixed once the data dir exists).
    #[arg(long, default_value_t = tern_shared::channel::DEFAULT_SLOTS)]
    slots: u16,
    /// Any core setting, for every node: `--set batch.linger_us=0` (a TOML value; repeat the flag).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[arg(long, default_value_t = 5080)]
    edge_http_port: u16,
    /// The edge's HTTP access layer: the core API load balanced over every node.
    #[arg(long, default_value_t = 5090)]
    proxy_port: u16,
    /// Run every region of this deployment description (e.g. deploy/regions/local) on its own
    /// loopback addresses, with the described round trips added between regions. The port flags
    /// above are then unused: the description has the addresses.
    #[arg(long)]
    regions: Option<PathBuf>,
    /// With --regions: the admin API (`GET /wan`, `POST /wan/cut/<region>`, `POST /wan/heal/<region>`).
    #[arg(long, default_value = "127.0.0.1:5099")]
    wan_admin: std::net::SocketAddr,
    /// With --regions: the DNS server answering the deployment's names by the asking address's region.
    #[arg(long, default_value = "127.0.0.1:5053")]
    dns: std::net::SocketAddr,
    /// Ask the `tern dev` running on this data dir to restart its core nodes one at a time, the way a
    /// rolling upgrade does (each hands its leadership over first), then its edge, then exit.
    #[arg(long)]
    restart: bool,
}

/// Where a running `tern dev` keeps its process id, for `--restart`.
fn pid_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("dev.pid")
}

/// `tern dev --restart`: signals the running one (SIGUSR1), which reports its progress itself.
fn ask_restart(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let file = pid_file(data_dir);
    let pid = std::fs::read_to_string(&file)
        .with_context(|| format!("no tern dev runs on {} ({} is missing)", data_dir.display(), file.display()))?;
    let pid = pid.trim();
    let sent = std::process::Command::new("kill").args(["-USR1", pid]).status().context("running kill")?;
    if !sent.success() {
        anyhow::bail!("tern dev (pid {pid}) is not running; remove {}", file.display());
    }
    println!("Asked tern dev (pid {pid}) to restart its core nodes one at a time, then its edge; it reports in its terminal.");
    Ok(())
}

/// Restarts every core node in turn: stop (leadership handed over, what is in flight answered), start
/// again on the same data once its RocksDB is released, wait until it knows every group's leader.
/// Then the edge: drained (its clients reconnect and resync), ended, started again.
async fn roll(cores: &mut Vec<tern_core::CoreHandle>, edge: &mut edge::DevEdge) -> anyhow::Result<()> {
    for i in 0..cores.len() {
        let running = cores.remove(i);
        let config = running.core.config.clone();
        let id = config.node_id;
        tracing::info!(node = id, "rolling restart: stopping a core node");
        let stopped = running.stop().await;
        tracing::info!(node = id, took = ?stopped.took, handed = stopped.handed, "rolling restart: core node stopped");
        // The last tasks holding its RocksDB end as their connections close.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let again = loop {
            match tern_core::start(config.clone()).await {
                Ok(h) => break h,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(node = id, error = %e, "not startable yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("starting core node {id} again")),
            }
        };
        for g in again.core.groups.all() {
            g.raft.wait(Some(Duration::from_secs(30))).metrics(|m| m.current_leader.is_some(), "a leader").await?;
        }
        cores.insert(i, again);
        tracing::info!(node = id, "rolling restart: core node back");
    }
    let first = &cores[0].core;
    let lease = Duration::from_millis(first.config.raft.election_max_ms);
    if let Err(e) = tern_core::raft::transfer::balance(
        &first.groups,
        first.config.node_id,
        &first.config.raft.preferred_leaders,
        lease,
    )
    .await
    {
        tracing::warn!(error = %e, "could not spread raft leadership after the restart");
    }
    tracing::info!("rolling restart: stopping the edge");
    edge.restart().await.context("restarting the edge")?;
    let linked = edge.linked(Duration::from_secs(10)).await;
    tracing::info!(linked, "rolling restart: edge back");
    tracing::info!("rolling restart done");
    Ok(())
}

const DEMO_USERS: [&str; 3] = ["alice", "bob", "carol"];
const DEMO_GROUP: &str = "demo";

pub async fn run(a: DevArgs) -> anyhow::Result<()> {
    if a.restart {
        return ask_restart(&a.data_dir);
    }
    if let Some(dir) = &a.regions {
        return run_regions(&a, dir).await;
    }
    if !(1..=5).contains(&a.nodes) {
        anyhow::bail!("--nodes must be between 1 and 5");
    }
    let at = |port: u16| format!("{}:{port}", a.host);
    let node_port = |base: u16, n: u16| base + 10 * n;
    let peers = if a.nodes == 1 {
        Vec::new()
    } else {
        (0..a.nodes).map(|n| PeerConfig { id: u64::from(n) + 1, raft_addr: at(node_port(a.raft_port, n)) }).collect()
    };
    let base: CoreConfig = tern_shared::config::load_with_overrides(None, &a.set)?;
    // Raft and edge links are mutual TLS, as in production, with a CA kept in the data dir.
    let certs = a.data_dir.join("certs");
    let ca = Ca::open_or_init(&certs, "Tern dev CA").with_context(|| format!("the CA in {}", certs.display()))?;
    let mut cores = Vec::new();
    // Node 1 creates the cluster and campaigns at once: the others start first, so its first votes
    // reach nodes that answer (a refused vote is logged as an error).
    for n in (0..a.nodes).rev() {
        let node_tls = ca.link_tls(&ca.issue(&Identity::Node(u64::from(n) + 1), std::slice::from_ref(&a.host), 365)?);
        let cfg = CoreConfig {
            node_id: u64::from(n) + 1,
            data_dir: a.data_dir.join(format!("core{}", n + 1)),
            http_addr: at(node_port(a.http_port, n)),
            link_addr: at(node_port(a.link_port, n)),
            raft_addr: at(node_port(a.raft_port, n)),
            peers: peers.clone(),
            manager_token: a.manager_token.clone(),
            admin_token: a.admin_token.clone(),
            raft_tls: Some(node_tls.clone()),
            link_tls: Some(node_tls),
            slots: a.slots,
            ..base.clone()
        };
        cfg.validate()?;
        cores.push(tern_core::start(cfg).await.with_context(|| format!("starting core node {}", n + 1))?);
    }
    cores.reverse();
    let core = &cores[0];
    let links: Vec<String> = cores.iter().map(|c| c.link_addr.to_string()).collect();
    let edge_id = EdgeConfig::default().edge_id;
    let edge_cert = ca.issue(&Identity::Edge { id: edge_id.clone(), region: None }, &[], 365)?;
    let edge_cfg = EdgeConfig {
        edge_id,
        link_tls: Some(ca.link_tls(&edge_cert)),
        tcp_addr: at(a.tcp_port),
        ws_addr: at(a.ws_port),
        http_addr: at(a.edge_http_port),
        core_addr: links.join(","),
        http_proxy: HttpProxyConfig {
            addr: at(a.proxy_port),
            upstreams: vec![UpstreamConfig {
                addrs: cores.iter().map(|c| c.http_addr.to_string()).collect(),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    edge_cfg.validate()?;
    let mut dev_edge = edge::DevEdge::start(edge_cfg).await?;
    let edge = &dev_edge.handle;

    seed_demo(core).await?;
    dev_edge.linked(Duration::from_secs(5)).await;

    // Groups elect whichever node campaigns first; spread their leadership so every node takes writes.
    let lease = Duration::from_millis(core.core.config.raft.election_max_ms);
    let preferred = &core.core.config.raft.preferred_leaders;
    if let Err(e) =
        tern_core::raft::transfer::balance(&core.core.groups, core.core.config.node_id, preferred, lease).await
    {
        tracing::warn!(error = %e, "could not spread raft leadership");
    }

    let show = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
    println!(
        "Tern is running (data in {}; raft and edge links use mutual TLS with the CA in {}).",
        a.data_dir.display(),
        certs.display()
    );
    let apis: Vec<String> = cores.iter().map(|c| format!("http://{}", c.http_addr)).collect();
    println!("  HTTP API   {} (any node; writes go to their slot's raft leader)", apis.join(", "));
    println!("  TCP        {}", show(edge.tcp_addr));
    println!("  WebSocket  ws://{}", show(edge.ws_addr));
    println!("  HTTP proxy http://{} (the edge's access layer in front of every node's API)", show(edge.proxy_addr));
    println!("  edge       http://{}/healthz", show(edge.http_addr));
    println!("Demo users (any device flag): alice/alice-token, bob/bob-token, carol/carol-token; group `{DEMO_GROUP}` has all three.");
    println!("Try, in two terminals:");
    println!("  tern chat --addr {} --uid alice --token alice-token --to bob", show(edge.tcp_addr));
    println!("  tern chat --addr {} --uid bob --token bob-token --to alice", show(edge.tcp_addr));
    println!(
        "Restart the nodes one at a time, as an upgrade does: tern dev --restart --data-dir {}",
        a.data_dir.display()
    );
    println!("Ctrl-C stops.");
    println!(
        "TERN_READY {}",
        serde_json::json!({"http": apis, "tcp": show(edge.tcp_addr), "proxy": show(edge.proxy_addr)})
    );
    let pid = pid_file(&a.data_dir);
    std::fs::write(&pid, std::process::id().to_string()).with_context(|| format!("writing {}", pid.display()))?;
    let mut restart = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => break r?,
            _ = restart.recv() => {
                if let Err(e) = roll(&mut cores, &mut dev_edge).await {
                    tracing::error!(error = %e, "rolling restart failed");
                }
            }
        }
    }
    let _ = std::fs::remove_file(&pid);
    Ok(())
}

/// The demo users (tokens on every device flag) and their group.
async fn seed_demo(core: &tern_core::CoreHandle) -> anyhow::Result<()> {
    for uid in DEMO_USERS {
        for device_flag in [0, 1, 2] {
            let cmd = Command::set_token(uid.into(), device_flag, &format!("{uid}-token"), 1);
            core.core.groups.propose(cmd).await?;
        }
    }
    let group = ChannelRecord { channel_id: DEMO_GROUP.into(), channel_type: 2, ..Default::default() };
    let members = DEMO_USERS.iter().map(|u| u.to_string()).collect();
    core.core.groups.propose(Command::UpsertChannel { channel: group, subscribers: members }).await?;
    Ok(())
}

async fn run_regions(a: &DevArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let data = a.data_dir.join("regions").join(dir.file_name().unwrap_or_default());
    let running = regions::start(dir, &data, &a.set, a.wan_admin, a.dns).await?;
    let first = running.cores.first().context("no voter")?;
    // Proposals wait for the first election, which takes longer with WAN timings.
    tokio::time::timeout(Duration::from_secs(60), seed_demo(first)).await.context("no leader within 60 s")??;
    let (mut edges, mut edge_http) = (serde_json::Map::new(), serde_json::Map::new());
    for (id, e) in &running.edges {
        let show = |a: Option<std::net::SocketAddr>| serde_json::json!(a.map(|a| a.to_string()).unwrap_or_default());
        edges.insert(id.clone(), show(e.tcp_addr));
        edge_http.insert(id.clone(), show(e.http_addr));
    }
    println!(
        "TERN_READY {}",
        serde_json::json!({
            "wan_admin": running.admin.to_string(), "dns": running.dns.addr.to_string(), "edges": edges,
            "edge_http": edge_http, "fronts": running.fronts,
        })
    );
    println!("Tern is running the deployment {} (data in {}).", dir.display(), data.display());
    for c in &running.cores {
        println!("  core node {}  http://{}", c.core.config.node_id, c.http_addr);
    }
    for (id, e) in &running.edges {
        let show = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "  edge {id:<16} tcp {}  ws ws://{}  health http://{}/healthz",
            show(e.tcp_addr),
            show(e.ws_addr),
            show(e.http_addr)
        );
    }
    println!(
        "  DNS        dig @{} -p {} {} -b <an address in a region's clients>",
        running.dns.addr.ip(),
        running.dns.addr.port(),
        running.domain
    );
    println!("  WAN paths  curl http://{}/wan; cut a region: curl -X POST http://{}/wan/cut/<region> (heal: /wan/heal/<region>)", running.admin, running.admin);
    println!("Demo users: alice/alice-token, bob/bob-token, carol/carol-token; group `{DEMO_GROUP}` has all three.");
    println!("Ctrl-C stops.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

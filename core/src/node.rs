//! Starting a core node: storage, raft, group commit, fan-out, the edge link listener and the HTTP API.

use crate::config::CoreConfig;
use crate::context::Core;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::raft::dial::Dial;
use crate::raft::group::{Group, Groups};
use crate::raft::leader::ReadBarrier;
use crate::raft::proposer::{BatchLimits, Proposer};
use crate::raft::{network::Network, Raft};
use crate::store::{log_store::LogStore, state_machine::StateMachine, Db};
use openraft::{BasicNode, SnapshotPolicy};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: String, source: std::io::Error },
    #[error("raft: {0}")]
    Raft(String),
    #[error("link certificates: {0}")]
    Tls(#[from] tern_shared::tls::TlsError),
}

/// A running core node.
pub struct CoreHandle {
    pub core: Arc<Core>,
    pub http_addr: SocketAddr,
    pub link_addr: SocketAddr,
    pub raft_addr: SocketAddr,
    pub link_quic_addr: Option<SocketAddr>,
    /// The HTTP API; ends once it has closed after `stop`.
    http: tokio::task::JoinHandle<()>,
}

impl CoreHandle {
    /// Leaves gracefully (`crate::stop`): leadership handed to the other voters, edges moved, what is in
    /// flight answered, raft stopped.
    pub async fn stop(self) -> crate::stop::Stopped {
        crate::stop::stop(&self.core, self.http).await
    }
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { what, addr: addr.into(), source })
}

/// Descriptors a core node wants: edge links and HTTP clients, with room to spare (WuKongIM's guidance).
const CORE_FDS: u64 = 65_536;

pub async fn start(config: CoreConfig) -> Result<CoreHandle, StartError> {
    tern_shared::limits::raise_fd_limit(CORE_FDS, "a core node");
    if config.insecure {
        for open in config.insecure_ports() {
            tracing::warn!("insecure = true: {open}; anyone who reaches it is trusted");
        }
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| StartError::DataDir { path: config.data_dir.display().to_string(), source })?;
    let http = bind("http_addr", &config.http_addr).await?;
    let link = bind("link_addr", &config.link_addr).await?;
    let raft_listener = bind("raft_addr", &config.raft_addr).await?;
    let (http_addr, link_addr, raft_addr) = (local(&http), local(&link), local(&raft_listener));

    let link_tls = match &config.link_tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(tern_shared::tls::link_server_config(t)?)),
        None => None,
    };
    let link_quic = match (&config.link_tls, config.link_quic_addr.as_str()) {
        (Some(t), addr) if !addr.is_empty() => {
            let bind_err = |source| StartError::Bind { what: "link_quic_addr", addr: addr.into(), source };
            let at = addr.parse().map_err(|e| bind_err(std::io::Error::other(e)))?;
            Some(quinn::Endpoint::server(tern_shared::quic::link_server_config(t)?, at).map_err(bind_err)?)
        }
        _ => None,
    };
    let link_quic_addr = link_quic.as_ref().and_then(|e| e.local_addr().ok());
    let db = Db::open(&config.data_dir.join("db"), config.slots)?;
    let metrics = Metrics::new();
    let _ = metrics.registry.register(Box::new(db.wal_syncs().clone()));
    let presence = Arc::new(Presence::default());
    let (applied_tx, applied_rx) = tokio::sync::mpsc::channel(64 * 1024);
    // Raised while this node leads a group; entries replayed at start-up are not pushed again.
    let leading: Vec<Arc<AtomicBool>> = (0..config.slots).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let leads = {
        let leading = leading.clone();
        move |slot: u16| leading.get(usize::from(slot)).is_some_and(|l| l.load(Ordering::Relaxed))
    };
    tokio::spawn(crate::fanout::run(db.clone(), presence.clone(), applied_rx, metrics.clone(), leads));

    let raft_config = openraft::Config {
        cluster_name: "tern".into(),
        heartbeat_interval: config.raft.heartbeat_ms,
        election_timeout_min: config.raft.election_min_ms,
        election_timeout_max: config.raft.election_max_ms,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.raft.snapshot_every),
        max_in_snapshot_log_to_keep: config.raft.keep_logs,
        purge_batch_size: config.raft.snapshot_every.clamp(1, 256),
        // Per snapshot chunk; the default (200 ms) is too tight for multi-megabyte chunks on busy hosts.
        install_snapshot_timeout: 10_000,
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartError::Raft(e.to_string()))?;
    let raft_config = Arc::new(raft_config);
    tracing::info!(settings = ?config.raft, peers = config.peers.len(), slots = config.slots, "raft settings");
    let (raft_acceptor, peer_tls) = match &config.raft_tls {
        Some(t) => {
            (Some(tokio_rustls::TlsAcceptor::from(tern_shared::tls::link_server_config(t)?)), Some(t.connector()?))
        }
        None => (None, None),
    };
    let versions = crate::raft::versions::Versions::new(config.node_id, config.max_raft_version);
    let dial = Dial::new(config.dial.iter().map(|p| (p.id, p.raft_addr.clone())).collect(), peer_tls, versions.clone());
    let members: BTreeMap<u64, BasicNode> = if config.peers.is_empty() {
        BTreeMap::from([(config.node_id, BasicNode::new(raft_addr.to_string()))])
    } else {
        config.peers.iter().map(|p| (p.id, BasicNode::new(p.raft_addr.clone()))).collect()
    };
    let founder = !config.join && members.keys().next() == Some(&config.node_id);
    let commit_timeout = Duration::from_millis(config.raft.commit_timeout_ms);
    let limits = BatchLimits {
        max_commands: config.batch.max_commands,
        max_bytes: config.batch.max_bytes,
        max_in_flight: config.batch.max_in_flight,
        linger: Duration::from_micros(config.batch.linger_us),
    };
    let snapshots = config.data_dir.join("snapshots");
    std::fs::create_dir_all(&snapshots)
        .map_err(|source| StartError::DataDir { path: snapshots.display().to_string(), source })?;
    let mut groups = Vec::with_capacity(usize::from(config.slots));
    for (slot, leading) in (0..config.slots).zip(leading) {
        let dial = dial.for_group(slot);
        let snapshot = snapshots.join(format!("{slot}.snap"));
        let sm = StateMachine::new(db.clone(), slot, snapshot.clone(), Some(applied_tx.clone()))
            .map_err(|source| StartError::DataDir { path: snapshot.display().to_string(), source })?
            .counting_installs(metrics.snapshots_installed.clone());
        let network = Network { dial: dial.clone() };
        let raft = Raft::new(config.node_id, raft_config.clone(), network, LogStore::new(db.clone(), slot), sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if founder && !raft.is_initialized().await.map_err(|e| StartError::Raft(e.to_string()))? {
            raft.initialize(members.clone()).await.map_err(|e| StartError::Raft(e.to_string()))?;
        }
        tokio::spawn(track_leadership(raft.clone(), slot, config.node_id, leading.clone()));
        let handover = crate::raft::handover::Handover::default();
        let proposer = Proposer::start(
            raft.clone(),
            config.node_id,
            dial.clone(),
            handover.clone(),
            commit_timeout,
            limits,
            metrics.clone(),
        );
        let reads = ReadBarrier::new(raft.clone(), config.node_id, dial.clone());
        groups.push(Group { slot, raft, proposer, reads, dial, handover, leading });
    }
    drop(applied_tx);
    let groups = Arc::new(Groups::new(groups));
    // Raised by `stop`: the raft port, links and the HTTP API close.
    let closing = tokio::sync::watch::Sender::new(false);
    let port = crate::raft::server::RaftPort {
        groups: groups.clone(),
        node_id: config.node_id,
        lease: Duration::from_millis(config.raft.election_max_ms),
        closing: closing.subscribe(),
        versions,
    };
    tokio::spawn(crate::raft::server::serve(raft_listener, port, raft_acceptor));
    if config.peers.is_empty() && !config.join {
        for g in groups.all() {
            g.raft
                .wait(Some(Duration::from_secs(30)))
                .current_leader(config.node_id, "single voter elects itself")
                .await
                .map_err(|e| StartError::Raft(e.to_string()))?;
        }
    }
    {
        let every = Duration::from_millis(config.raft.heartbeat_ms);
        let grace = Duration::from_millis(config.raft.election_min_ms);
        tokio::spawn(crate::raft::quorum::run(groups.clone(), config.node_id, every, grace));
    }
    if config.raft.balance_interval_ms > 0 {
        let every = Duration::from_millis(config.raft.balance_interval_ms);
        let lease = Duration::from_millis(config.raft.election_max_ms);
        let preferred = config.raft.preferred_leaders.clone();
        tokio::spawn(crate::raft::rebalance::run(groups.clone(), config.node_id, preferred, lease, every));
    }
    if !config.webhook.url.is_empty() {
        let (settings, groups, presence) = (config.webhook.clone(), groups.clone(), presence.clone());
        crate::webhook::start(crate::webhook::Webhook {
            settings,
            db: db.clone(),
            presence,
            groups,
            metrics: metrics.clone(),
        });
    }
    let claims = Arc::default();
    let core = Arc::new(Core { config, db, groups, presence, claims, metrics, closing });

    tokio::spawn(crate::link::serve(link, link_tls, core.clone()));
    if let Some(endpoint) = link_quic {
        tokio::spawn(crate::link::serve_quic(endpoint, core.clone()));
    }
    let app = crate::api::router(core.clone());
    let http = tokio::spawn(crate::api::serve::serve(http, app, core.config.http.clone(), core.closing.subscribe()));
    tracing::info!(%http_addr, %link_addr, %raft_addr, node_id = core.config.node_id, "core node ready");
    Ok(CoreHandle { core, http_addr, link_addr, raft_addr, link_quic_addr, http })
}

async fn track_leadership(raft: Raft, slot: u16, node_id: u64, leading: Arc<AtomicBool>) {
    let mut metrics = raft.metrics();
    let mut known = None;
    loop {
        let (leader, term) = {
            let m = metrics.borrow();
            (m.current_leader, m.current_term)
        };
        leading.store(leader == Some(node_id), Ordering::Relaxed);
        if leader != known {
            tracing::info!(slot, leader, term, "raft group leader changed");
            known = leader;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

fn local(l: &TcpListener) -> SocketAddr {
    l.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

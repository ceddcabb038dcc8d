//! tern-edge: the light binary near users.
//!
//! ```text
//!  clients ─▶ listeners/ (tcp, ws) ─▶ session/ (CONNECT, crypto, SEND/RECV) ─▶ link/ ══▶ core
//!                                          ▲                                    │
//!                                          └──── registry (RECV, kicks) ◀───────┘
//!
//!  HTTP clients ─▶ http/proxy (pingora: limits, routes, health-checked backends) ─▶ core HTTP API
//! ```

pub mod config;
pub mod http;
pub mod link;
pub mod listeners;
pub mod metrics;
pub mod session;

pub use config::EdgeConfig;

use link::LinkPool;
use metrics::Metrics;
use session::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tern_shared::link::EdgeAddrs;
use tokio::net::TcpListener;

/// State every session of this edge shares.
pub struct Edge {
    pub config: EdgeConfig,
    pub link: LinkPool,
    pub registry: Arc<Registry>,
    pub metrics: Metrics,
    next_session: AtomicU64,
    draining: std::sync::atomic::AtomicBool,
    per_ip: listeners::admit::PerIp,
    logins: std::sync::Mutex<session::login_limit::LoginLimiter>,
    login_pace: std::sync::Mutex<session::login_pace::LoginPace>,
    /// Tells pingora's services (the HTTP access layer and its health checks) to stop.
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Edge {
    fn logins(&self) -> std::sync::MutexGuard<'_, session::login_limit::LoginLimiter> {
        self.logins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When a login arriving now may ask the core, or `None` when its turn is too far away.
    fn login_turn(&self) -> Option<std::time::Instant> {
        self.login_pace.lock().unwrap_or_else(|e| e.into_inner()).admit(std::time::Instant::now())
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Graceful shutdown: refuse new sessions, close every live one (clients reconnect, to another edge
    /// if this one is gone, and resync by seq), and wait up to `drain_timeout_ms` for them to finish.
    /// Sessions are closed without a DISCONNECT packet: WuKongIM SDKs do not reconnect after one.
    ///
    /// The access layer first keeps serving for `drain_grace_ms` with `/healthz` failing and every
    /// answer closing its connection: clients stop reusing kept-alive connections, which closing them
    /// while idle would race with a request just sent on one (a POST that fails that way cannot be
    /// retried blindly).
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        let sessions = self.registry.outboxes();
        tracing::info!(sessions = sessions.len(), "draining");
        for outbox in sessions {
            outbox.close_with(bytes::Bytes::new());
        }
        let grace = std::time::Duration::from_millis(self.config.drain_grace_ms);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(self.config.drain_timeout_ms);
        if !self.config.http_proxy.addr.is_empty() {
            tokio::time::sleep(grace.min(deadline - tokio::time::Instant::now())).await;
        }
        let _ = self.shutdown.send(true);
        while !self.registry.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::info!(left = self.registry.len(), "drained");
    }
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}

/// A running edge and the addresses it bound.
pub struct EdgeHandle {
    pub edge: Arc<Edge>,
    pub tcp_addr: Option<SocketAddr>,
    pub ws_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    pub wss_addr: Option<SocketAddr>,
    pub quic_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    pub proxy_addr: Option<SocketAddr>,
    pub proxy_tls_addr: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: String, source: std::io::Error },
    #[error("certificates: {0}")]
    Tls(#[from] tern_shared::tls::TlsError),
    #[error("cannot open QUIC on {addr}: {source}")]
    Quic { addr: String, source: std::io::Error },
    #[error("http_proxy: {0}")]
    Proxy(String),
}

/// Binds `addr` (empty: not served) with room for `backlog` connections waiting to be accepted.
async fn bind(what: &'static str, addr: &str, backlog: u32) -> Result<Option<TcpListener>, StartError> {
    if addr.is_empty() {
        return Ok(None);
    }
    let err = |source| StartError::Bind { what, addr: addr.into(), source };
    let at: std::net::SocketAddr = addr.parse().map_err(|e| err(std::io::Error::other(e)))?;
    let socket = if at.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() };
    let socket = socket.map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(at).map_err(err)?;
    socket.listen(backlog).map(Some).map_err(err)
}

/// The SNI resolver, reloaded on file changes and on SIGHUP.
fn certificates(config: &EdgeConfig) -> Result<Arc<tern_shared::tls::SniResolver>, StartError> {
    let resolver = tern_shared::tls::SniResolver::new(config.certs.clone())?;
    if config.cert_reload_ms > 0 {
        resolver.watch(std::time::Duration::from_millis(config.cert_reload_ms));
    }
    let on_hup = resolver.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            match on_hup.reload() {
                Ok(()) => tracing::info!("certificates reloaded (SIGHUP)"),
                Err(e) => tracing::warn!(error = %e, "certificate reload failed; keeping the old ones"),
            }
        }
    });
    Ok(resolver)
}

fn advertised(given: &str, bound: Option<SocketAddr>, scheme: &str) -> String {
    match (given.is_empty(), bound) {
        (false, _) => given.to_string(),
        (true, Some(a)) => format!("{scheme}{a}"),
        (true, None) => String::new(),
    }
}

pub async fn start(config: EdgeConfig) -> Result<EdgeHandle, StartError> {
    let needed = config.max_sessions as u64 + tern_shared::limits::FD_RESERVE;
    tern_shared::limits::raise_fd_limit(needed, "edge.max_sessions");
    if let (true, None, Some(addr)) = (config.insecure, &config.link_tls, config.remote_core()) {
        tracing::warn!("insecure = true: links to core {addr} go without mutual TLS; anyone on the path reads them");
    }
    // Client listeners take a reconnect storm's worth of waiting connections.
    let backlog = config.accept_backlog;
    let tcp = bind("tcp_addr", &config.tcp_addr, backlog).await?;
    let ws = bind("ws_addr", &config.ws_addr, backlog).await?;
    let http = bind("http_addr", &config.http_addr, 1024).await?;
    let tls = bind("tls_addr", &config.tls_addr, backlog).await?;
    let wss = bind("wss_addr", &config.wss_addr, backlog).await?;
    let addr = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    let (tcp_addr, ws_addr, http_addr) = (addr(&tcp), addr(&ws), addr(&http));
    let (tls_addr, wss_addr) = (addr(&tls), addr(&wss));
    let secure =
        tls.is_some() || wss.is_some() || !config.quic_addr.is_empty() || !config.http_proxy.tls_addr.is_empty();
    let resolver = if secure { Some(certificates(&config)?) } else { None };
    let quic = match &resolver {
        Some(r) if !config.quic_addr.is_empty() => {
            let server = tern_shared::quic::server_config(r.server_config(&[tern_shared::quic::ALPN])?)?;
            let addr = &config.quic_addr;
            let bind =
                addr.parse().map_err(|e| StartError::Quic { addr: addr.clone(), source: std::io::Error::other(e) })?;
            let endpoint = tern_shared::quic::endpoint(bind, Some(server))
                .map_err(|source| StartError::Quic { addr: addr.clone(), source })?;
            Some(endpoint)
        }
        _ => None,
    };
    let quic_addr = quic.as_ref().and_then(|e| e.local_addr().ok());
    let addrs = EdgeAddrs {
        tcp: advertised(&config.advertise.tcp, tcp_addr, ""),
        ws: advertised(&config.advertise.ws, ws_addr, "ws://"),
        wss: advertised(&config.advertise.wss, wss_addr, "wss://"),
        tls: advertised(&config.advertise.tls, tls_addr, "tls://"),
        quic: advertised(&config.advertise.quic, quic_addr, "quic://"),
        region: config.region.clone(),
    };
    let metrics = Metrics::new();
    let registry = Arc::new(Registry::default());
    let link = LinkPool::new(&config, addrs, registry.clone(), metrics.clone())?;
    link.start();
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let logins = session::login_limit::LoginLimiter::new(
        std::time::Duration::from_millis(config.login_window_ms),
        config.login_failures_per_addr,
        config.login_failures_per_uid,
    );
    let login_pace = session::login_pace::LoginPace::new(
        config.logins_per_sec,
        std::time::Duration::from_millis(config.connect_timeout_ms),
    );
    let edge = Arc::new(Edge {
        config,
        link,
        registry,
        metrics,
        next_session: AtomicU64::new(1),
        draining: std::sync::atomic::AtomicBool::new(false),
        per_ip: listeners::admit::PerIp::default(),
        logins: std::sync::Mutex::new(logins),
        login_pace: std::sync::Mutex::new(login_pace),
        shutdown,
    });
    let resender = edge.clone();
    tokio::spawn(async move { resender.link.resend_loop().await });
    if let Some(l) = tcp {
        tokio::spawn(listeners::tcp::serve(l, edge.clone()));
    }
    if let Some(l) = ws {
        tokio::spawn(listeners::ws::serve(l, edge.clone()));
    }
    if let (Some(l), Some(r)) = (tls, &resolver) {
        let acceptor = tokio_rustls::TlsAcceptor::from(r.server_config(&[])?);
        tokio::spawn(listeners::tls::serve(l, acceptor, listeners::tls::Carries::Stream, edge.clone()));
    }
    if let (Some(l), Some(r)) = (wss, &resolver) {
        let acceptor = tokio_rustls::TlsAcceptor::from(r.server_config(&[b"http/1.1"])?);
        tokio::spawn(listeners::tls::serve(l, acceptor, listeners::tls::Carries::WebSocket, edge.clone()));
    }
    if let Some(endpoint) = quic {
        tokio::spawn(listeners::quic::serve(endpoint, edge.clone()));
    }
    let proxy = if edge.config.http_proxy.enabled() {
        http::proxy::start(edge.clone(), resolver.clone(), shutdown_rx).await?
    } else {
        http::proxy::Bound { addr: None, tls_addr: None }
    };
    if let Some(l) = http {
        let app = http::admin::router(edge.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app).await {
                tracing::error!(error = %e, "edge http server stopped");
            }
        });
    }
    tracing::info!(?tcp_addr, ?ws_addr, ?http_addr, edge_id = %edge.config.edge_id, "edge ready");
    Ok(EdgeHandle {
        edge,
        tcp_addr,
        ws_addr,
        tls_addr,
        wss_addr,
        quic_addr,
        http_addr,
        proxy_addr: proxy.addr,
        proxy_tls_addr: proxy.tls_addr,
    })
}

//! The HTTP access layer: pingora's proxy service run on the edge's own runtime, in front of the
//! core's HTTP API (and any other configured upstream), nginx-style.
//!
//! The listeners are bound here, so a taken port is a clear start error, and handed to pingora as
//! inherited descriptors.

pub mod config;
mod service;
pub mod upstream;

use crate::{Edge, StartError};
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::ALPN;
use pingora::server::configuration::ServerConf;
use pingora::server::{Fds, ListenFds};
use pingora::services::Service as _;
use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::time::Duration;
use tern_shared::tls::SniResolver;
use tokio::sync::watch;
use upstream::Upstream;

pub struct Bound {
    pub addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
}

pub async fn start(
    edge: Arc<Edge>,
    resolver: Option<Arc<SniResolver>>,
    shutdown: watch::Receiver<bool>,
) -> Result<Bound, StartError> {
    let config = &edge.config.http_proxy;
    let mut upstreams = Vec::new();
    for u in &config.upstreams {
        let upstream = Upstream::new(
            u,
            Duration::from_millis(config.health_interval_ms),
            config.eject_after,
            Duration::from_millis(config.eject_ms),
            edge.metrics.clone(),
        )
        .map_err(|e| StartError::Proxy(e.to_string()))?;
        let lb = upstream.lb.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { lb.run(stop, None).await });
        upstreams.push(Arc::new(upstream));
    }

    let server_conf = Arc::new(ServerConf::default());
    let mut service = pingora::proxy::http_proxy_service_with_name(
        &server_conf,
        service::AccessProxy::new(edge.clone(), upstreams),
        "tern-access",
    );
    let mut fds = Fds::new();
    let addr = inherit(&mut fds, "http_proxy.addr", &config.addr).await?;
    if let Some(a) = addr {
        service.add_tcp(&a.to_string());
    }
    let tls_addr = inherit(&mut fds, "http_proxy.tls_addr", &config.tls_addr).await?;
    if let (Some(a), Some(resolver)) = (tls_addr, resolver) {
        let mut settings = TlsSettings::intermediate("", "").map_err(|e| StartError::Proxy(e.to_string()))?;
        settings.set_cert_resolver(resolver);
        // HTTP/1.1 only: WebSocket upgrades need it, and the core's API speaks nothing else.
        settings.set_alpn(ALPN::H1);
        service.add_tls_with_settings(&a.to_string(), None, settings);
    }
    let fds: ListenFds = Arc::new(parking_lot::Mutex::new(fds));
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Requests stay on the thread that accepted them: no cross-thread wakeups, which cost more than
    // the proxying itself on a busy machine. Listener tasks are spread over the threads by pingora.
    let runtime = pingora_runtime::Runtime::new_no_steal(threads, "tern-access");
    runtime.get_handle().spawn(async move { service.start_service(Some(fds), shutdown, threads).await });
    // The access layer lives as long as the process; dropping a runtime inside async code would panic.
    std::mem::forget(runtime);
    tracing::info!(?addr, ?tls_addr, "http access layer ready");
    Ok(Bound { addr, tls_addr })
}

/// Binds `addr` and records the socket under its bound address, where pingora looks for inherited ones.
async fn inherit(fds: &mut Fds, what: &'static str, addr: &str) -> Result<Option<SocketAddr>, StartError> {
    let Some(listener) = crate::bind(what, addr).await? else { return Ok(None) };
    let bound = listener.local_addr().map_err(|source| StartError::Bind { what, addr: addr.into(), source })?;
    let std = listener.into_std().map_err(|source| StartError::Bind { what, addr: addr.into(), source })?;
    fds.add(bound.to_string(), std.into_raw_fd());
    Ok(Some(bound))
}

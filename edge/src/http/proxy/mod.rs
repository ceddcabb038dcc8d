//! The HTTP access layer in front of the core's HTTP API (and any other configured upstream),
//! nginx-style: pingora's HTTP proxy for requests, the edge's own tunnels for upgraded connections.
//!
//! The edge binds and accepts itself (a taken port is a clear start error) and gives pingora each
//! connection that is not an upgrade.

mod accept;
mod access;
pub mod config;
mod conn;
mod service;
mod tunnel;
pub mod upstream;

use crate::{Edge, StartError};
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;
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

    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let addr = listeners(threads, "http_proxy.addr", &config.addr)?;
    let tls_addr = listeners(threads, "http_proxy.tls_addr", &config.tls_addr)?;
    // HTTP/2 for clients that offer it; WebSocket upgrades come on HTTP/1.1. Backends get HTTP/1.1.
    let acceptor = match (&tls_addr, &resolver) {
        (Some(_), Some(r)) => Some(tokio_rustls::TlsAcceptor::from(
            r.server_config(&[b"h2", b"http/1.1"]).map_err(|e| StartError::Proxy(e.to_string()))?,
        )),
        _ => None,
    };
    let access = Arc::new(access::Access::new(edge.clone(), upstreams));
    let server_conf = Arc::new(ServerConf::default());
    // nginx's model: one single-threaded server per thread, each with its own listening socket on the
    // same port (SO_REUSEPORT, the kernel spreads connections) and its own upstream connection pool, so
    // a request never crosses threads.
    let mut runtimes = Vec::with_capacity(threads);
    for i in 0..threads {
        let app = Arc::new(pingora::proxy::http_proxy(&server_conf, service::AccessProxy(access.clone())));
        let runtime = pingora_runtime::Runtime::new_no_steal(1, "tern-access");
        let serve = |what, bound: &Option<(SocketAddr, Vec<socket2::Socket>)>, tls| {
            if let Some((a, sockets)) = bound {
                let listener = sockets[i].try_clone().map_err(|e| bind_err(what, a, e))?;
                let (app, access, stop) = (app.clone(), access.clone(), shutdown.clone());
                runtime.get_handle().spawn(accept::serve(listener.into(), tls, app, access, stop));
            }
            Ok::<_, StartError>(())
        };
        serve("http_proxy.addr", &addr, None)?;
        if acceptor.is_some() {
            serve("http_proxy.tls_addr", &tls_addr, acceptor.clone())?;
        }
        runtimes.push(runtime);
    }
    end_with(runtimes, shutdown);
    let (addr, tls_addr) = (addr.map(|(a, _)| a), tls_addr.map(|(a, _)| a));
    tracing::info!(?addr, ?tls_addr, threads, "http access layer ready");
    Ok(Bound { addr, tls_addr })
}

/// Ends the access layer's runtimes once the edge stops (in a process of its own the exit would; an edge
/// stopped in-process, as `tern dev --restart` does, would leave their threads behind). From a thread
/// of its own: a runtime cannot be dropped inside async code.
fn end_with(runtimes: Vec<pingora_runtime::Runtime>, shutdown: watch::Receiver<bool>) {
    let held = Arc::new(std::sync::Mutex::new(runtimes));
    let ours = held.clone();
    let watcher = std::thread::Builder::new().name("tern-access-end".into()).spawn(move || {
        // The sender gone counts as stopped too.
        while !*shutdown.borrow() && shutdown.has_changed().is_ok() {
            std::thread::sleep(Duration::from_millis(200));
        }
        let runtimes = std::mem::take(&mut *ours.lock().unwrap_or_else(|e| e.into_inner()));
        for rt in runtimes {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    });
    if let Err(e) = watcher {
        tracing::warn!(error = %e, "no thread to end the access layer with the edge: it lasts as long as the process");
        std::mem::forget(std::mem::take(&mut *held.lock().unwrap_or_else(|e| e.into_inner())));
    }
}

fn bind_err(what: &'static str, addr: &SocketAddr, source: std::io::Error) -> StartError {
    StartError::Bind { what, addr: addr.to_string(), source }
}

/// `n` listening sockets on `addr` (the first one picks the port when it is 0), all with SO_REUSEPORT.
fn listeners(
    n: usize,
    what: &'static str,
    addr: &str,
) -> Result<Option<(SocketAddr, Vec<socket2::Socket>)>, StartError> {
    if addr.is_empty() {
        return Ok(None);
    }
    let err = |source| StartError::Bind { what, addr: addr.into(), source };
    let mut at: SocketAddr = addr.parse().map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    // SO_REUSEPORT would quietly share a port another process of this user holds the same way (a
    // second edge started by mistake): a plain bind first makes a taken port a clear error.
    if at.port() != 0 {
        drop(std::net::TcpListener::bind(at).map_err(err)?);
    }
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let s = socket2::Socket::new(socket2::Domain::for_address(at), socket2::Type::STREAM, None).map_err(err)?;
        s.set_reuse_address(true).map_err(err)?;
        s.set_reuse_port(true).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        s.bind(&at.into()).map_err(err)?;
        s.listen(4096).map_err(err)?;
        at = s.local_addr().map_err(err)?.as_socket().unwrap_or(at);
        sockets.push(s);
    }
    Ok(Some((at, sockets)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_gets_a_socket_on_one_port_and_a_taken_port_is_an_error() {
        let Ok(Some((at, sockets))) = listeners(3, "http_proxy.addr", "127.0.0.1:0") else { panic!("bind") };
        assert_eq!(sockets.len(), 3);
        assert!(sockets.iter().all(|s| s.local_addr().ok().and_then(|a| a.as_socket()) == Some(at)));
        // A second edge on the same port is refused rather than sharing it.
        let again = listeners(2, "http_proxy.addr", &at.to_string());
        assert!(matches!(again, Err(StartError::Bind { what: "http_proxy.addr", .. })));
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = plain.local_addr().unwrap().to_string();
        assert!(listeners(1, "http_proxy.addr", &taken).is_err());
    }
}

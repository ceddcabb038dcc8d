//! The access layer's listeners: accept (and TLS), read the first request head, then either tunnel an
//! upgrade or hand the connection, with the bytes already read, to pingora's HTTP proxy.

use super::access::Access;
use super::conn::Conn;
use super::service::AccessProxy;
use super::tunnel::{self, FirstRequest};
use crate::listeners::admit;
use bytes::BytesMut;
use pingora::apps::ServerApp;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::Stream;
use pingora::proxy::HttpProxy;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

pub type App = HttpProxy<AccessProxy>;

pub async fn serve(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    access: Arc<Access>,
    mut shutdown: watch::Receiver<bool>,
) {
    let what = if tls.is_some() { "http_proxy.tls_addr" } else { "http_proxy.addr" };
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::error!(listener = what, error = %e, "cannot serve"),
    };
    while !*shutdown.borrow() {
        let accepted = tokio::select! {
            changed = shutdown.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let (tls, app, access, shutdown) = (tls.clone(), app.clone(), access.clone(), shutdown.clone());
                tokio::spawn(connection(tcp, peer, tls, app, access, shutdown));
            }
            Err(e) => crate::listeners::accept_backoff(what, e).await,
        }
    }
}

async fn connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    access: Arc<Access>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let fd = tcp.as_raw_fd();
    let limit = Duration::from_millis(access.edge.config.connect_timeout_ms);
    let rejected = |reason| access.edge.metrics.proxy_rejected.with_label_values(&[reason]).inc();
    let client = if access.edge.config.http_proxy.proxy_protocol {
        match admit::proxy_header(&mut tcp, peer, limit).await {
            Ok(client) => client,
            Err(e) => {
                rejected("proxy_header");
                return tracing::debug!(%peer, error = %e, "bad PROXY header");
            }
        }
    } else {
        peer
    };
    let _conn_slot = match access.admit_conn(client.ip()) {
        Ok(slot) => slot,
        Err(reason) => return rejected(reason),
    };
    let Some(acceptor) = tls else {
        return first_request(tcp, fd, None, client, app, access, shutdown).await;
    };
    let stream = match timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "tls handshake failed"),
        Err(_) => return tracing::debug!(%peer, "tls handshake timed out"),
    };
    let session = stream.get_ref().1;
    let cipher = session.negotiated_cipher_suite().and_then(|c| c.suite().as_str()).unwrap_or("unknown");
    let version = session.protocol_version().and_then(|v| v.as_str()).unwrap_or("unknown");
    let digest = Arc::new(SslDigest::new(cipher, version, None, None, Vec::new()));
    if session.alpn_protocol() == Some(b"h2") {
        // No upgrades on HTTP/2 (browsers open WebSockets on HTTP/1.1 connections): all of it is pingora's.
        let conn = Conn::new(stream, fd, client, Some(digest), BytesMut::new()).h2();
        return serve_pingora(Box::new(conn), &app, &shutdown).await;
    }
    first_request(stream, fd, Some(digest), client, app, access, shutdown).await
}

async fn serve_pingora(mut stream: Stream, app: &Arc<App>, shutdown: &watch::Receiver<bool>) {
    // Keep-alive: pingora hands an HTTP/1 connection back after each request it finished cleanly.
    while let Some(next) = app.process_new(stream, shutdown).await {
        stream = next;
    }
}

async fn first_request<S>(
    mut io: S,
    fd: std::os::fd::RawFd,
    ssl: Option<Arc<SslDigest>>,
    client: SocketAddr,
    app: Arc<App>,
    access: Arc<Access>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    // One deadline for the whole head, so a client trickling bytes cannot hold the connection longer.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(access.config().read_timeout_ms);
    let mut buf = BytesMut::new();
    let first = loop {
        buf.reserve(2048);
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
        match tunnel::first_request(&buf) {
            FirstRequest::Partial => continue,
            first => break first,
        }
    };
    if let FirstRequest::Upgrade(req) = first {
        let path = req.path.split('?').next().unwrap_or_default();
        // A forbidden path goes to pingora, which refuses it.
        if let Some(upstream) = access.route(path).filter(|_| !access.forbidden(path)) {
            let tls = ssl.is_some();
            return tunnel::run(&access, &mut io, buf, req, upstream, Some(client.ip()), tls).await;
        }
    }
    serve_pingora(Box::new(Conn::new(io, fd, client, ssl, buf)), &app, &shutdown).await
}

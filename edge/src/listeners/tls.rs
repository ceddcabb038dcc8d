//! TLS over TCP, and WebSocket over TLS (WSS). Certificates come from an SNI resolver that reloads
//! without touching live sessions. ALPN: WSS offers `http/1.1`; the TLS listener sets none, so any
//! client ALPN (or none) is accepted.

use crate::session::wire::IoWire;
use crate::{session, Edge};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Clone, Copy)]
pub enum Carries {
    /// The client byte stream directly.
    Stream,
    /// A WebSocket carrying it.
    WebSocket,
}

pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, carries: Carries, edge: Arc<Edge>) {
    loop {
        match listener.accept().await {
            Ok((mut stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let (acceptor, edge) = (acceptor.clone(), edge.clone());
                tokio::spawn(async move {
                    let Some((peer, _slot)) = super::admit::tcp_client(&edge, &mut stream, peer).await else { return };
                    let limit = Duration::from_millis(edge.config.connect_timeout_ms);
                    let tls = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "tls handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "tls handshake timed out"),
                    };
                    match carries {
                        Carries::Stream => session::run(edge, IoWire(tls), peer.to_string(), peer.ip()).await,
                        Carries::WebSocket => super::ws::upgrade(tls, peer, edge).await,
                    }
                });
            }
            Err(e) => super::accept_backoff("tls", e).await,
        }
    }
}

//! QUIC: every bidirectional stream a client opens is one session carrying the client protocol.
//! ALPN `tern/1` (see `tern_shared::quic`).

use crate::session::wire::IoWire;
use crate::{session, Edge};
use std::sync::Arc;
use std::time::Duration;

pub async fn serve(endpoint: quinn::Endpoint, edge: Arc<Edge>) {
    while let Some(incoming) = endpoint.accept().await {
        let edge = edge.clone();
        tokio::spawn(async move {
            let limit = Duration::from_millis(edge.config.connect_timeout_ms);
            let conn = match tokio::time::timeout(limit, incoming).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return tracing::debug!(error = %e, "quic handshake failed"),
                Err(_) => return tracing::debug!("quic handshake timed out"),
            };
            let peer = conn.remote_address().to_string();
            let ip = conn.remote_address().ip();
            // The connection itself counts against its address too: idle ones cost memory as well.
            let Some(_held) = super::admit::admit(&edge, ip) else {
                return conn.close(0u32.into(), b"too many connections from this address");
            };
            while let Ok((send, recv)) = conn.accept_bi().await {
                let Some(slot) = super::admit::admit(&edge, ip) else { continue };
                let (edge, peer) = (edge.clone(), peer.clone());
                tokio::spawn(async move {
                    session::run(edge, IoWire(tokio::io::join(recv, send)), peer, ip).await;
                    drop(slot);
                });
            }
        });
    }
}

//! WebSocket: binary messages carry the same byte stream as TCP. Any path is accepted; behind a proxy
//! the client address comes from `X-Forwarded-For` or `X-Real-IP`.

use crate::{session, Edge};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tern_shared::transport::ws_io;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Read chunk and write batching size of one WebSocket session.
const WS_BUFFER: usize = 4096;

pub async fn serve(listener: TcpListener, edge: Arc<Edge>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let Some(slot) = super::admit::admit(&edge, peer.ip()) else { continue };
                let edge = edge.clone();
                tokio::spawn(async move {
                    upgrade(stream, peer, edge).await;
                    drop(slot);
                });
            }
            Err(e) => super::accept_backoff("ws", e).await,
        }
    }
}

// tungstenite fixes the callback's error type (an HTTP response), large as it is.
#[allow(clippy::result_large_err)]
pub(crate) async fn upgrade<S>(stream: S, peer: std::net::SocketAddr, edge: Arc<Edge>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let forwarded = Arc::new(Mutex::new(None::<String>));
    let seen = forwarded.clone();
    let callback = move |req: &Request, resp: Response| {
        let h = req.headers();
        let ip =
            h.get("x-forwarded-for").or_else(|| h.get("x-real-ip")).and_then(|v| v.to_str().ok()).map(str::to_string);
        *seen.lock().unwrap_or_else(|e| e.into_inner()) = ip;
        Ok(resp)
    };
    // A WebSocket message may not exceed the frame limit by much: bound tungstenite's buffers the same way.
    // Its default 128 KiB read buffer, allocated per connection, was most of an idle session's memory;
    // client frames are small, and a larger message still arrives in several reads.
    let max = edge.config.max_frame + 16;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER);
    let limit = Duration::from_millis(edge.config.connect_timeout_ms);
    let accepted =
        tokio::time::timeout(limit, tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)))
            .await;
    match accepted {
        Ok(Ok(ws)) => {
            let forwarded = forwarded.lock().unwrap_or_else(|e| e.into_inner()).take();
            let ip = client_ip(peer, forwarded.as_deref());
            let (rx, tx) = ws_io(ws);
            session::run(edge, session::wire::StreamWire { rx, tx }, forwarded.unwrap_or_else(|| peer.to_string()), ip)
                .await;
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "websocket upgrade failed"),
        Err(_) => tracing::debug!(%peer, "websocket upgrade timed out"),
    }
}

/// The address the per-address limits count a WebSocket client under. Anyone can send
/// X-Forwarded-For: it names the client only when the connection comes from this machine (the edge's
/// own access layer or a local proxy), and then by its last entry, the one that proxy added; earlier
/// entries are whatever the client wrote.
fn client_ip(peer: std::net::SocketAddr, forwarded: Option<&str>) -> std::net::IpAddr {
    forwarded
        .and_then(|f| f.rsplit(',').next())
        .and_then(|f| f.trim().parse().ok())
        .filter(|_| peer.ip().is_loopback())
        .unwrap_or_else(|| peer.ip())
}

#[cfg(test)]
mod tests {
    use super::client_ip;

    #[test]
    fn only_a_local_proxy_names_the_client() {
        let local = "127.0.0.1:4000".parse().unwrap();
        let remote = "198.51.100.7:4000".parse().unwrap();
        let named: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(local, Some("203.0.113.9")), named);
        assert_eq!(client_ip(local, Some("198.51.100.1, 203.0.113.9")), named, "the proxy's entry, not the client's");
        assert_eq!(client_ip("[::1]:4000".parse().unwrap(), Some("203.0.113.9")), named);
        assert_eq!(client_ip(remote, Some("203.0.113.9")), remote.ip(), "a remote client cannot pick its address");
        assert_eq!(client_ip(local, Some("not an address")), local.ip());
        assert_eq!(client_ip(local, None), local.ip());
    }
}

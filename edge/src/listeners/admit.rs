//! Admission before a session starts: the PROXY protocol header (when the edge sits behind a load
//! balancer that sends one) and the per-address session limit.

use crate::Edge;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tern_shared::proxy;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Sessions per client address.
#[derive(Default)]
pub struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one of an address's slots until dropped.
pub struct Slot {
    edge: Arc<Edge>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.edge.per_ip.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Takes a slot for `ip`, or `None` when it already holds `max_sessions_per_ip` connections.
pub fn admit(edge: &Arc<Edge>, ip: IpAddr) -> Option<Slot> {
    // Local proxies and tools (the access layer's tunnels, load tests) are not anyone's address.
    let max = if ip.is_loopback() { 0 } else { edge.config.max_sessions_per_ip };
    let mut counts = edge.per_ip.counts.lock().unwrap_or_else(|e| e.into_inner());
    let n = counts.entry(ip).or_default();
    if max > 0 && *n >= max {
        drop(counts);
        edge.metrics.connect_rejected.with_label_values(&["per_ip"]).inc();
        return None;
    }
    *n += 1;
    Some(Slot { edge: edge.clone(), ip })
}

/// Everything a TCP-based listener checks before a session: the PROXY header if configured, then the
/// per-address limit. Returns the client's address and its slot, or `None` to drop the connection.
pub async fn tcp_client(edge: &Arc<Edge>, stream: &mut TcpStream, peer: SocketAddr) -> Option<(SocketAddr, Slot)> {
    let client = if edge.config.proxy_protocol {
        let limit = Duration::from_millis(edge.config.connect_timeout_ms);
        match proxy_header(stream, peer, limit).await {
            Ok(client) => client,
            Err(e) => {
                edge.metrics.connect_rejected.with_label_values(&["proxy"]).inc();
                tracing::debug!(%peer, error = %e, "bad PROXY header");
                return None;
            }
        }
    } else {
        peer
    };
    admit(edge, client.ip()).map(|slot| (client, slot))
}

/// Reads a PROXY header off the front of `stream` and returns the client's address (or `peer` for a
/// LOCAL header). Headers arrive whole in practice; a partial one is re-checked every few milliseconds.
pub async fn proxy_header(stream: &mut TcpStream, peer: SocketAddr, limit: Duration) -> Result<SocketAddr, String> {
    let read = async {
        let mut buf = vec![0u8; 16 + proxy::V2_MAX_BODY];
        loop {
            let n = stream.peek(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed before the PROXY header".to_string());
            }
            match proxy::decode(&buf[..n]) {
                Ok(Some((header, used))) => {
                    stream.read_exact(&mut buf[..used]).await.map_err(|e| e.to_string())?;
                    return Ok(header.source.unwrap_or(peer));
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    tokio::time::timeout(limit, read).await.map_err(|_| "no PROXY header in time".to_string())?
}

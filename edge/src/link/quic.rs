//! Links over QUIC (mutual TLS, ALPN `tern-link/1`), the preferred transport: no head-of-line blocking
//! below the link, and connection migration. A node whose QUIC address cannot be reached (UDP blocked,
//! no QUIC listener) is linked over TCP instead, and QUIC is tried again a while later.

use super::{locked, Link, CONNECT_TIMEOUT};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a node is linked over TCP after a failed QUIC attempt before QUIC is tried again.
const QUIC_RETRY_AFTER: Duration = Duration::from_secs(30);

/// One client endpoint shared by every QUIC link of the edge.
pub(super) fn endpoint(t: &tern_shared::tls::LinkTls) -> Result<quinn::Endpoint, crate::StartError> {
    let bind = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let mut endpoint =
        quinn::Endpoint::client(bind).map_err(|source| crate::StartError::Quic { addr: bind.to_string(), source })?;
    endpoint.set_default_client_config(tern_shared::quic::link_client_config(t)?);
    Ok(endpoint)
}

impl Link {
    /// Serves the link over QUIC until it is lost; `None` when QUIC is not configured, paused, or the
    /// connection could not be made (the caller then uses TCP).
    pub(super) async fn over_quic(self: Arc<Self>) -> Option<Result<(), String>> {
        let (endpoint, addr) = self.quic.clone()?;
        if locked(&self.quic_paused_until).is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let name = self.tls.as_ref().map_or_else(|| "tern-core".to_string(), |(_, n)| n.to_str().into_owned());
        let opened = async {
            let conn = endpoint.connect(addr, &name).map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())?;
            let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((conn, send, recv))
        };
        let (conn, send, recv) = match tokio::time::timeout(CONNECT_TIMEOUT, opened).await {
            Ok(Ok(parts)) => parts,
            failed => {
                let error = failed.map_or_else(|_| "timed out".to_string(), |r| r.err().unwrap_or_default());
                tracing::warn!(core = %addr, %error, "quic link failed; using tcp");
                *locked(&self.quic_paused_until) = Some(Instant::now() + QUIC_RETRY_AFTER);
                return None;
            }
        };
        self.metrics.links_quic.inc();
        let result = self.clone().serve(tokio::io::join(recv, send), &addr.to_string()).await;
        self.metrics.links_quic.dec();
        conn.close(0u32.into(), b"link closed");
        Some(result)
    }
}

//! QUIC as a client transport: the same byte stream as TCP, one bidirectional stream per session.
//! ALPN `tern/1`. Clients may change address (NAT rebinding, Wi-Fi to mobile) and keep their session:
//! QUIC connections are named by connection ids, not addresses.

use crate::tls::TlsError;
use std::sync::Arc;
use std::time::Duration;

/// The ALPN protocol a QUIC client must offer.
pub const ALPN: &[u8] = b"tern/1";

/// Longer than the session idle limit, so the application's PINGs decide when a client is gone.
const MAX_IDLE: Duration = Duration::from_secs(200);

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(quinn::IdleTimeout::try_from(MAX_IDLE).ok());
    Arc::new(t)
}

/// Server side, from a rustls config that offers [`ALPN`] and TLS 1.3.
pub fn server_config(tls: Arc<rustls::ServerConfig>) -> Result<quinn::ServerConfig, TlsError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Load { path: "quic".into(), message: e.to_string() })?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport());
    Ok(config)
}

/// Client side, trusting what `tls` trusts.
pub fn client_config(tls: &rustls::ClientConfig) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))
        .map_err(|e| TlsError::Load { path: "quic".into(), message: e.to_string() })?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport());
    Ok(config)
}

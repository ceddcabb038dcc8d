//! QUIC as a client transport: the same byte stream as TCP, one bidirectional stream per session.
//! ALPN `tern/1`. Clients may change address (NAT rebinding, Wi-Fi to mobile) and keep their session:
//! QUIC connections are named by connection ids, not addresses.
//!
//! Also the preferred transport of edge↔core links (ALPN `tern-link/1`, mutual TLS): one connection per
//! link, its link frames on one bidirectional stream.

use crate::tls::{LinkTls, TlsError};
use std::sync::Arc;
use std::time::Duration;

/// The ALPN protocol a QUIC client must offer.
pub const ALPN: &[u8] = b"tern/1";
/// The ALPN protocol of QUIC edge links.
pub const LINK_ALPN: &[u8] = b"tern-link/1";

/// Longer than the session idle limit, so the application's PINGs decide when a client is gone.
const MAX_IDLE: Duration = Duration::from_secs(200);

/// A link pings every second and counts the core gone after 3 s of silence; QUIC's own idle limit
/// sits just above that.
const LINK_MAX_IDLE: Duration = Duration::from_secs(5);

/// Client sessions: one bidirectional stream, small frames, mostly idle. Tighter limits than quinn's
/// bulk-transfer defaults keep what an idle session can make the edge hold small.
fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(quinn::IdleTimeout::try_from(MAX_IDLE).ok());
    t.max_concurrent_uni_streams(0u32.into());
    t.max_concurrent_bidi_streams(1u32.into());
    t.stream_receive_window((256u32 << 10).into());
    t.receive_window((512u32 << 10).into());
    t.send_window(512 << 10);
    t.datagram_receive_buffer_size(None);
    t.datagram_send_buffer_size(0);
    Arc::new(t)
}

fn idle_after(limit: Duration) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(quinn::IdleTimeout::try_from(limit).ok());
    Arc::new(t)
}

fn quic_err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Load { path: "quic".into(), message: e.to_string() }
}

/// The core's side of QUIC links: the link CA must have signed the edge's certificate.
pub fn link_server_config(t: &LinkTls) -> Result<quinn::ServerConfig, TlsError> {
    let mut tls = (*crate::tls::link_server_config(t)?).clone();
    tls.alpn_protocols = vec![LINK_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(tls)).map_err(quic_err)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(idle_after(LINK_MAX_IDLE));
    Ok(config)
}

/// The edge's side of QUIC links: presents the edge's certificate, trusts the link CA for the core.
pub fn link_client_config(t: &LinkTls) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = (*crate::tls::link_client_config(t)?).clone();
    tls.alpn_protocols = vec![LINK_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).map_err(quic_err)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(idle_after(LINK_MAX_IDLE));
    Ok(config)
}

/// UDP buffers for endpoints that see bursts of handshakes (an edge when clients reconnect en masse,
/// the load tool): the kernel's default (~208 KiB) drops Initial packets, and each drop costs a
/// retransmission timeout. The kernel caps the request at `net.core.rmem_max` / `wmem_max`.
const UDP_BUFFER: usize = 8 << 20;

/// An endpoint on `addr` with large socket buffers; a server when `server` is given.
pub fn endpoint(addr: std::net::SocketAddr, server: Option<quinn::ServerConfig>) -> std::io::Result<quinn::Endpoint> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.bind(&addr.into())?;
    let runtime = quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket.into(), runtime)
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

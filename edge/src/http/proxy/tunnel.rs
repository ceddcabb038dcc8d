//! Upgrade requests (WebSockets): the access layer connects the client to a backend itself and then
//! copies bytes both ways through two small buffers. Through pingora an upgraded connection keeps an
//! HTTP/1 body reader with a fixed 64 KiB buffer on each side for its whole life (82 KiB per idle WSS
//! session, twice nginx's); a tunnel holds 8 KiB besides the sockets and TLS.

use super::access::Access;
use super::upstream::Upstream;
use bytes::BytesMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest request or response head read here; a longer request head is left to pingora to refuse.
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// Per direction. WebSocket messages of an IM session are small; a bigger one takes several reads.
const COPY_BUFFER: usize = 4 * 1024;
/// Headers this proxy sets itself on the way to the backend.
const OWN_HEADERS: [&str; 4] = ["x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-tern-edge"];

/// What the first request head of a connection asks for.
pub enum FirstRequest {
    /// More bytes are needed to tell.
    Partial,
    Upgrade(UpgradeRequest),
    /// Anything else, malformed heads included: pingora's to answer.
    Other,
}

pub struct UpgradeRequest {
    method: String,
    pub path: String,
    minor_version: u8,
    headers: Vec<(String, Vec<u8>)>,
    head_len: usize,
}

pub fn first_request(buf: &[u8]) -> FirstRequest {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return FirstRequest::Partial,
        _ => return FirstRequest::Other,
    };
    let has_token = |name: &str, token: &[u8]| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .any(|h| h.value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token)))
    };
    let upgrade = req.headers.iter().any(|h| h.name.eq_ignore_ascii_case("upgrade"));
    let (Some(method), Some(path), Some(minor_version)) = (req.method, req.path, req.version) else {
        return FirstRequest::Other;
    };
    if !(upgrade && has_token("connection", b"upgrade") && method == "GET" && minor_version == 1) {
        return FirstRequest::Other;
    }
    FirstRequest::Upgrade(UpgradeRequest {
        method: method.into(),
        path: path.into(),
        minor_version,
        headers: req.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect(),
        head_len,
    })
}

impl UpgradeRequest {
    /// The head sent to the backend: the client's, with the forwarding headers set as for every
    /// proxied request (an `X-Forwarded-For` chain is extended).
    fn backend_head(&self, client: Option<IpAddr>, tls: bool, edge_id: &str) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.{}\r\n", self.method, self.path, self.minor_version).into_bytes();
        let mut chain = Vec::new();
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("x-forwarded-for") {
                chain.push(String::from_utf8_lossy(value).into_owned());
            }
            if OWN_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                continue;
            }
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        let mut add = |name: &str, value: &str| head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        if let Some(ip) = client {
            chain.push(ip.to_string());
            add("x-forwarded-for", &chain.join(", "));
            add("x-real-ip", &ip.to_string());
        }
        add("x-forwarded-proto", if tls { "https" } else { "http" });
        add("x-tern-edge", edge_id);
        head.extend_from_slice(b"\r\n");
        head
    }
}

/// How a tunnel went, for the access log and metrics.
struct Outcome {
    status: u16,
    tried: Vec<SocketAddr>,
    error: Option<String>,
}

/// Serves one upgrade request whose head (and whatever followed it) is in `buf`; the connection
/// ends with it.
pub async fn run<S>(
    access: &Access,
    client: &mut S,
    buf: BytesMut,
    req: UpgradeRequest,
    upstream: Arc<Upstream>,
    peer: Option<IpAddr>,
    tls: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut out = Outcome { status: 0, tried: Vec::new(), error: None };
    let _inflight = match access.admit(peer) {
        Ok(guard) => guard,
        Err(reason) => {
            out.status = 429;
            let _ = reject(access, client, 429, reason).await;
            access.log(peer, &req.method, &req.path, out.status, None, &out.tried, started, out.error.as_deref());
            return;
        }
    };
    // Only what the log needs outlives the handshake: a tunnel may stay open for days.
    let mut head = req.backend_head(peer, tls, &access.edge.config.edge_id);
    head.extend_from_slice(&buf[req.head_len..]);
    drop(buf);
    let UpgradeRequest { method, path, .. } = req;
    match tunnel(access, client, head, &upstream, &mut out).await {
        Ok(()) => {}
        Err(e) if out.status == 0 => {
            out.status = 502;
            out.error = Some(e.to_string());
            // The details (backend addresses) go to the log, not to the client.
            let _ = respond(client, 502, "bad_gateway").await;
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    upstream.record(out.status, started.elapsed());
    access.log(
        peer,
        &method,
        &path,
        out.status,
        Some(upstream.name.as_str()),
        &out.tried,
        started,
        out.error.as_deref(),
    );
}

#[derive(Debug, thiserror::Error)]
enum TunnelError {
    #[error("no live backend")]
    NoBackend,
    #[error("backend {0}: {1}")]
    Backend(SocketAddr, String),
    #[error("client: {0}")]
    Client(std::io::Error),
    #[error("relaying: {0}")]
    Relay(std::io::Error),
}

async fn tunnel<S>(
    access: &Access,
    client: &mut S,
    head: Vec<u8>,
    upstream: &Upstream,
    out: &mut Outcome,
) -> Result<(), TunnelError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &access.edge.config.http_proxy;
    let read_timeout = Duration::from_millis(config.read_timeout_ms);
    let (mut backend, addr) = connect(access, upstream, out).await?;
    let failed = |e: String| {
        upstream.failed(addr);
        TunnelError::Backend(addr, e)
    };
    match timeout(read_timeout, backend.write_all(&head)).await {
        Ok(Ok(())) => drop(head),
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Err(_) => return Err(failed("write timed out".into())),
    }
    let mut resp = BytesMut::with_capacity(1024);
    let (status, content_length, head_len) = loop {
        resp.reserve(1024);
        match timeout(read_timeout, backend.read_buf(&mut resp)).await {
            Ok(Ok(0)) => return Err(failed("closed before answering".into())),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => return Err(failed("no answer in time".into())),
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&resp) {
            Ok(httparse::Status::Complete(head_len)) => {
                let length = parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<u64>().ok());
                break (parsed.code.unwrap_or(0), length, head_len);
            }
            Ok(httparse::Status::Partial) if resp.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err(failed("response head too long".into())),
            Err(e) => return Err(failed(format!("bad response head: {e}"))),
        }
    };
    upstream.succeeded(addr);
    out.status = status;
    client.write_all(&resp).await.map_err(TunnelError::Client)?;
    if status != 101 {
        // Refused: pass the answer on, then end the connection, whose state the backend now owns.
        let copied = (resp.len() - head_len) as u64;
        let body = async {
            match content_length {
                Some(n) => tokio::io::copy(&mut (&mut backend).take(n.saturating_sub(copied)), client).await,
                None => tokio::io::copy(&mut backend, client).await,
            }
        };
        let _ = timeout(read_timeout, body).await;
        return Ok(());
    }
    drop(resp);
    let open = &access.edge.metrics.proxy_tunnels;
    open.inc();
    let copied = tokio::io::copy_bidirectional_with_sizes(client, &mut backend, COPY_BUFFER, COPY_BUFFER).await;
    open.dec();
    match copied {
        Ok(_) => Ok(()),
        Err(e) => Err(TunnelError::Relay(e)),
    }
}

/// A connection to a backend of `upstream`: another one after a failed connect, up to `retries`.
async fn connect(
    access: &Access,
    upstream: &Upstream,
    out: &mut Outcome,
) -> Result<(TcpStream, SocketAddr), TunnelError> {
    let config = &access.edge.config.http_proxy;
    loop {
        let Some(addr) = upstream.pick(&out.tried) else {
            access.edge.metrics.proxy_rejected.with_label_values(&["no_backend"]).inc();
            return Err(TunnelError::NoBackend);
        };
        if !out.tried.is_empty() {
            access.edge.metrics.proxy_retries.inc();
        }
        out.tried.push(addr);
        let error = match timeout(Duration::from_millis(config.connect_timeout_ms), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timed out".into(),
        };
        upstream.failed(addr);
        if out.tried.len() > config.retries {
            return Err(TunnelError::Backend(addr, error));
        }
    }
}

async fn reject<S: AsyncWrite + Unpin>(
    access: &Access,
    client: &mut S,
    status: u16,
    reason: &'static str,
) -> std::io::Result<()> {
    access.edge.metrics.proxy_rejected.with_label_values(&[reason]).inc();
    respond(client, status, reason).await
}

async fn respond<S: AsyncWrite + Unpin>(client: &mut S, status: u16, msg: &str) -> std::io::Result<()> {
    let body = super::access::error_body(status, msg);
    let reason = pingora::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body.as_bytes()).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &[u8] = b"GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        X-Forwarded-For: 10.0.0.1\r\nX-Real-IP: 6.6.6.6\r\nSec-WebSocket-Key: k\r\n\r\n";

    #[test]
    fn only_complete_get_upgrades_with_the_connection_token_are_tunnelled() {
        assert!(matches!(first_request(&WS[..20]), FirstRequest::Partial));
        let FirstRequest::Upgrade(req) = first_request(WS) else { panic!("an upgrade") };
        assert_eq!((req.path.as_str(), req.head_len), ("/chat?x=1", WS.len()));
        for other in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"POST / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"\x16\x03\x01 not http\r\n\r\n",
        ] {
            assert!(matches!(first_request(other), FirstRequest::Other), "{}", String::from_utf8_lossy(other));
        }
        // A head that never ends is pingora's to refuse.
        let endless = [b"GET / HTTP/1.1\r\n".as_slice(), &b"X-A: b\r\n".repeat(MAX_HEAD / 8)].concat();
        assert!(matches!(first_request(&endless), FirstRequest::Other));
    }

    proptest::proptest! {
        /// Whatever a client sends first, looking at it neither panics nor reads past a complete
        /// head; an upgrade is only ever a complete GET head no longer than the bound.
        #[test]
        fn any_first_bytes_are_classified(junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096), cut in 0usize..400) {
            let _ = first_request(&junk);
            let ws = [&WS[..cut.min(WS.len())], &junk].concat();
            if let FirstRequest::Upgrade(req) = first_request(&ws) {
                proptest::prop_assert!(req.head_len <= ws.len() && req.head_len <= MAX_HEAD);
                // An empty line ends it (httparse, like most servers, also takes a bare LF).
                let head = &ws[..req.head_len];
                proptest::prop_assert!((head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n")) && head.starts_with(b"GET "));
            }
        }
    }

    #[test]
    fn the_backend_sees_the_forwarding_headers_of_this_hop() {
        let FirstRequest::Upgrade(req) = first_request(WS) else { panic!("an upgrade") };
        let head = String::from_utf8(req.backend_head(Some("127.0.0.9".parse().unwrap()), true, "e1")).unwrap();
        assert!(head.starts_with("GET /chat?x=1 HTTP/1.1\r\nHost: a\r\n"), "{head}");
        assert!(head.contains("Upgrade: websocket\r\n") && head.contains("Sec-WebSocket-Key: k\r\n"), "{head}");
        assert!(head.contains("x-forwarded-for: 10.0.0.1, 127.0.0.9\r\nx-real-ip: 127.0.0.9\r\n"), "{head}");
        assert!(head.ends_with("x-forwarded-proto: https\r\nx-tern-edge: e1\r\n\r\n"), "{head}");
        assert!(!head.contains("6.6.6.6"), "a client's own X-Real-IP is replaced: {head}");
    }
}

//! A small async client for the client protocol over TCP or WebSocket, used by `tern chat`, the tests and
//! the load tool. It does what an SDK does: key agreement, payload encryption, msgKey checks, RECVACKs.

use crate::proto::{self, crypto::ClientKeys, crypto::SessionCipher, Packet, Reason};
use crate::transport::{self, ByteRx, ByteTx};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host:port` for TCP, `tls://host:port`, `quic://host:port`, or a `ws://` / `wss://` URL.
    pub addr: String,
    pub uid: String,
    pub token: String,
    pub device_flag: u8,
    pub device_id: String,
    pub version: u8,
    pub timeout: Duration,
    /// Trust for `tls://`, `quic://` and `wss://` (see `tls::client_config`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SNI name; defaults to the host of `addr`.
    pub server_name: Option<String>,
    /// Source address of a plain TCP connection (default: the OS chooses).
    pub source: Option<std::net::IpAddr>,
    /// Extra headers of a `ws://` or `wss://` handshake (a proxy's `X-Forwarded-For`, a cookie).
    pub ws_headers: Vec<(String, String)>,
    /// Answer each RECV with a RECVACK, as the SDKs do (off: a client that never acks, for tests).
    pub ack_recvs: bool,
    /// Wait this long before each RECVACK (a slow client, for tests).
    pub ack_delay: Duration,
}

impl ClientOptions {
    pub fn new(addr: impl Into<String>, uid: impl Into<String>, token: impl Into<String>) -> Self {
        let uid = uid.into();
        ClientOptions {
            addr: addr.into(),
            device_id: format!("{uid}-dev"),
            uid,
            token: token.into(),
            device_flag: 0,
            version: proto::MAX_VERSION,
            timeout: Duration::from_secs(10),
            tls: None,
            server_name: None,
            source: None,
            ws_headers: Vec::new(),
            ack_recvs: true,
            ack_delay: Duration::ZERO,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("server refused the connection with reason code {0}")]
    Rejected(u8),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("timed out")]
    Timeout,
    #[error("connection closed")]
    Closed,
}

/// A message the client received, decrypted and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub flags: u8,
    pub message_id: i64,
    pub message_seq: u32,
    pub from_uid: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub client_msg_no: String,
    pub timestamp: i32,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Message(Received),
    Disconnect { reason_code: u8, reason: String },
}

/// One message to send.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub channel_id: String,
    pub channel_type: u8,
    pub payload: Vec<u8>,
    /// Random when empty.
    pub client_msg_no: String,
    pub flags: u8,
    /// Setting bits; with `setting::NO_ENCRYPT` the payload goes in the clear, without a msgKey.
    pub setting: u8,
}

/// SENDs waiting for their SENDACK, and whether the connection is gone (then no SENDACK will come).
#[derive(Default)]
struct PendingSends {
    waiting: HashMap<u32, oneshot::Sender<proto::Sendack>>,
    closed: bool,
}

type Pending = Arc<Mutex<PendingSends>>;

pub struct Client {
    out: mpsc::Sender<Bytes>,
    version: u8,
    cipher: SessionCipher,
    next_seq: AtomicU32,
    pending: Pending,
    inbox: mpsc::Receiver<Incoming>,
    timeout: Duration,
    peer_cert: Option<Vec<u8>>,
    quic: Option<quinn::Endpoint>,
    /// The writer and reader tasks, which hold the connection; stopped when the client is dropped.
    tasks: [tokio::task::AbortHandle; 2],
}

impl Drop for Client {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub fn random_msg_no() -> String {
    let n: u128 = rand::thread_rng().gen();
    format!("{n:032x}")
}

struct Opened {
    rx: ByteRx,
    tx: ByteTx,
    peer_cert: Option<Vec<u8>>,
    quic: Option<quinn::Endpoint>,
}

fn sni(opts: &ClientOptions) -> String {
    let hp = host_port(&opts.addr);
    opts.server_name.clone().unwrap_or_else(|| hp.rsplit_once(':').map_or(hp, |(h, _)| h).to_string())
}

fn tls_config(opts: &ClientOptions) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    opts.tls.clone().ok_or_else(|| ClientError::Protocol("tls://, quic:// and wss:// need a TLS config".into()))
}

async fn quic_connect(opts: &ClientOptions) -> Result<Opened, ClientError> {
    let target = tokio::net::lookup_host(host_port(&opts.addr))
        .await?
        .next()
        .ok_or_else(|| ClientError::Protocol(format!("cannot resolve {}", opts.addr)))?;
    let local: std::net::SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let mut endpoint = quinn::Endpoint::client(local)?;
    let config = crate::quic::client_config(&*tls_config(opts)?).map_err(|e| ClientError::Protocol(e.to_string()))?;
    endpoint.set_default_client_config(config);
    let quic_err = |e: &dyn std::fmt::Display| ClientError::Protocol(format!("quic: {e}"));
    let conn = endpoint.connect(target, &sni(opts)).map_err(|e| quic_err(&e))?.await.map_err(|e| quic_err(&e))?;
    let peer_cert = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok())
        .and_then(|certs| certs.first().map(|c| c.to_vec()));
    let (send, recv) = conn.open_bi().await.map_err(|e| quic_err(&e))?;
    let (rx, tx) = transport::stream_io(tokio::io::join(recv, send));
    Ok(Opened { rx, tx, peer_cert, quic: Some(endpoint) })
}

/// `host:port` of a URL or bare address.
fn host_port(addr: &str) -> &str {
    let rest = addr.split_once("://").map_or(addr, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

async fn tls_connect(
    opts: &ClientOptions,
) -> Result<(tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Option<Vec<u8>>), ClientError> {
    let config = tls_config(opts)?;
    let name = rustls_pki_types::ServerName::try_from(sni(opts)).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect(host_port(&opts.addr)).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
    Ok((tls, cert))
}

fn ws_request(opts: &ClientOptions) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, ClientError> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let mut request = opts.addr.as_str().into_client_request()?;
    for (name, value) in &opts.ws_headers {
        let bad = |e: &dyn std::fmt::Display| ClientError::Protocol(format!("header {name}: {e}"));
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(&e))?;
        request.headers_mut().append(name, HeaderValue::from_str(value).map_err(|e| bad(&e))?);
    }
    Ok(request)
}

async fn open(opts: &ClientOptions) -> Result<Opened, ClientError> {
    let addr = opts.addr.as_str();
    if addr.starts_with("ws://") {
        let (ws, _) = tokio_tungstenite::connect_async(ws_request(opts)?).await?;
        let (rx, tx) = transport::ws_io(ws);
        Ok(Opened { rx, tx, peer_cert: None, quic: None })
    } else if addr.starts_with("quic://") {
        quic_connect(opts).await
    } else if addr.starts_with("wss://") {
        let (tls, peer_cert) = tls_connect(opts).await?;
        let (ws, _) = tokio_tungstenite::client_async(ws_request(opts)?, tls).await?;
        let (rx, tx) = transport::ws_io(ws);
        Ok(Opened { rx, tx, peer_cert, quic: None })
    } else if addr.starts_with("tls://") {
        let (tls, peer_cert) = tls_connect(opts).await?;
        let (rx, tx) = transport::stream_io(tls);
        Ok(Opened { rx, tx, peer_cert, quic: None })
    } else {
        let tcp = match opts.source {
            None => tokio::net::TcpStream::connect(addr).await?,
            Some(ip) => {
                let to =
                    tokio::net::lookup_host(addr).await?.next().ok_or_else(|| std::io::Error::other("no address"))?;
                let socket =
                    if ip.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
                socket.bind(std::net::SocketAddr::new(ip, 0))?;
                socket.connect(to).await?
            }
        };
        tcp.set_nodelay(true)?;
        let (rx, tx) = transport::stream_io(tcp);
        Ok(Opened { rx, tx, peer_cert: None, quic: None })
    }
}

/// Reads frames off `rx`, keeping partial frames between chunks.
struct FrameReader {
    rx: ByteRx,
    buf: BytesMut,
    version: u8,
}

impl FrameReader {
    async fn next(&mut self) -> Result<Packet, ClientError> {
        loop {
            if let Some((p, used)) = proto::decode(&self.buf, self.version, proto::DEFAULT_MAX_FRAME)
                .map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                let _ = self.buf.split_to(used);
                return Ok(p);
            }
            match self.rx.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => return Err(ClientError::Closed),
            }
        }
    }
}

impl Client {
    pub async fn connect(opts: ClientOptions) -> Result<Client, ClientError> {
        tokio::time::timeout(opts.timeout, Self::connect_inner(opts.clone())).await.map_err(|_| ClientError::Timeout)?
    }

    async fn connect_inner(opts: ClientOptions) -> Result<Client, ClientError> {
        let Opened { rx, mut tx, peer_cert, quic } = open(&opts).await?;
        let keys = ClientKeys::generate();
        let connect = Packet::Connect(proto::Connect {
            flags: 0,
            version: opts.version,
            device_flag: opts.device_flag,
            device_id: opts.device_id.clone(),
            uid: opts.uid.clone(),
            token: opts.token.clone(),
            client_timestamp: now_ms(),
            client_key: keys.public_b64(),
        });
        let version = proto::negotiate_version(opts.version).unwrap_or(opts.version);
        tx.send(encode(&connect, version)?).await?;
        let mut reader = FrameReader { rx, buf: BytesMut::new(), version };
        let ack = match reader.next().await? {
            Packet::Connack(a) => a,
            Packet::Disconnect(d) => return Err(ClientError::Rejected(d.reason_code)),
            other => return Err(ClientError::Protocol(format!("expected CONNACK, got {:?}", other.packet_type()))),
        };
        if ack.reason_code != Reason::Success.code() {
            return Err(ClientError::Rejected(ack.reason_code));
        }
        let cipher = keys.finish(&ack.server_key, &ack.salt).map_err(|e| ClientError::Protocol(e.to_string()))?;

        let (out, mut out_rx) = mpsc::channel::<Bytes>(1024);
        let writer = tokio::spawn(async move {
            while let Some(b) = out_rx.recv().await {
                if tx.send(b).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let (inbox_tx, inbox) = mpsc::channel(4096);
        let acks = opts.ack_recvs.then(|| (out.clone(), opts.ack_delay));
        let reader = tokio::spawn(read_loop(reader, cipher.clone(), acks, pending.clone(), inbox_tx));
        Ok(Client {
            out,
            version,
            cipher,
            next_seq: AtomicU32::new(1),
            pending,
            inbox,
            timeout: opts.timeout,
            peer_cert,
            quic,
            tasks: [writer.abort_handle(), reader.abort_handle()],
        })
    }

    /// Sends a text message (`{"type":1,"content":..}`) and waits for its SENDACK.
    pub async fn send_text(
        &self,
        channel_id: &str,
        channel_type: u8,
        text: &str,
    ) -> Result<proto::Sendack, ClientError> {
        let payload = serde_json::json!({"type": 1, "content": text}).to_string().into_bytes();
        self.send(Outgoing { channel_id: channel_id.into(), channel_type, payload, ..Default::default() }).await
    }

    /// Sends a message and waits for its SENDACK.
    pub async fn send(&self, msg: Outgoing) -> Result<proto::Sendack, ClientError> {
        let wait = self.send_nowait(msg).await?;
        tokio::time::timeout(self.timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|_| ClientError::Closed)
    }

    /// Writes a SEND and returns the receiver of its SENDACK, so callers can pipeline.
    pub async fn send_nowait(&self, msg: Outgoing) -> Result<oneshot::Receiver<proto::Sendack>, ClientError> {
        let client_seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let client_msg_no = if msg.client_msg_no.is_empty() { random_msg_no() } else { msg.client_msg_no };
        let (payload, msg_key) = if msg.setting & proto::setting::NO_ENCRYPT != 0 {
            (msg.payload, String::new())
        } else {
            let payload = self.cipher.encrypt(&msg.payload).into_bytes();
            let key = self.cipher.send_msg_key(client_seq, &client_msg_no, &msg.channel_id, msg.channel_type, &payload);
            (payload, key)
        };
        let send = Packet::Send(proto::Send {
            flags: msg.flags,
            setting: msg.setting,
            client_seq,
            client_msg_no,
            channel_id: msg.channel_id,
            channel_type: msg.channel_type,
            msg_key,
            payload,
            ..Default::default()
        });
        let (tx, rx) = oneshot::channel();
        {
            // A SEND written after the reader saw the connection end would wait out its timeout: the
            // writer only learns of the loss on a later write.
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.closed {
                return Err(ClientError::Closed);
            }
            pending.waiting.insert(client_seq, tx);
        }
        self.out.send(encode(&send, self.version)?).await.map_err(|_| ClientError::Closed)?;
        Ok(rx)
    }

    pub async fn ping(&self) -> Result<(), ClientError> {
        self.out.send(Bytes::from_static(&[0x70])).await.map_err(|_| ClientError::Closed)
    }

    /// The next message or disconnect; `None` once the connection is gone.
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.inbox.recv().await
    }

    /// Like [`Self::recv`] but gives up after `d`.
    pub async fn recv_timeout(&mut self, d: Duration) -> Option<Incoming> {
        tokio::time::timeout(d, self.inbox.recv()).await.ok().flatten()
    }

    /// The server's leaf certificate (DER) on TLS transports.
    pub fn peer_cert(&self) -> Option<&[u8]> {
        self.peer_cert.as_deref()
    }

    /// Moves a QUIC client to another local socket (as when a phone changes networks); the session
    /// continues over the same QUIC connection.
    pub fn rebind(&self, socket: std::net::UdpSocket) -> std::io::Result<()> {
        match &self.quic {
            Some(endpoint) => endpoint.rebind(socket),
            None => Err(std::io::Error::other("not a QUIC client")),
        }
    }

    /// The local address of a QUIC client's socket.
    pub fn quic_local_addr(&self) -> Option<std::net::SocketAddr> {
        self.quic.as_ref().and_then(|e| e.local_addr().ok())
    }

    pub fn version(&self) -> u8 {
        self.version
    }
}

fn encode(p: &Packet, version: u8) -> Result<Bytes, ClientError> {
    proto::encode_to_vec(p, version).map(Bytes::from).map_err(|e| ClientError::Protocol(e.to_string()))
}

async fn read_loop(
    mut reader: FrameReader,
    cipher: SessionCipher,
    acks: Option<(mpsc::Sender<Bytes>, Duration)>,
    pending: Pending,
    inbox: mpsc::Sender<Incoming>,
) {
    while let Ok(packet) = reader.next().await {
        match packet {
            Packet::Sendack(ack) => {
                if let Some(tx) = pending.lock().unwrap_or_else(|e| e.into_inner()).waiting.remove(&ack.client_seq) {
                    let _ = tx.send(ack);
                }
            }
            Packet::Recv(r) => {
                let expected = cipher.recv_msg_key(
                    r.message_id,
                    r.message_seq,
                    &r.client_msg_no,
                    r.timestamp,
                    &r.from_uid,
                    &r.channel_id,
                    r.channel_type,
                    &r.payload,
                );
                // Like the SDKs: a RECV with a bad msgKey or payload is dropped and not acked.
                let Ok(payload) = cipher.decrypt(&r.payload) else { continue };
                if expected != r.msg_key {
                    continue;
                }
                let ack = Packet::Recvack(proto::Recvack {
                    flags: r.flags,
                    message_id: r.message_id,
                    message_seq: r.message_seq,
                });
                match (&acks, encode(&ack, reader.version)) {
                    (Some((out, delay)), Ok(b)) if delay.is_zero() => {
                        let _ = out.send(b).await;
                    }
                    (Some((out, delay)), Ok(b)) => {
                        let (out, delay) = (out.clone(), *delay);
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = out.send(b).await;
                        });
                    }
                    _ => {}
                }
                let msg = Received {
                    flags: r.flags,
                    message_id: r.message_id,
                    message_seq: r.message_seq,
                    from_uid: r.from_uid,
                    channel_id: r.channel_id,
                    channel_type: r.channel_type,
                    client_msg_no: r.client_msg_no,
                    timestamp: r.timestamp,
                    payload,
                };
                if inbox.send(Incoming::Message(msg)).await.is_err() {
                    break;
                }
            }
            Packet::Disconnect(d) => {
                let _ = inbox.send(Incoming::Disconnect { reason_code: d.reason_code, reason: d.reason }).await;
                break;
            }
            _ => {}
        }
    }
    let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
    pending.closed = true;
    pending.waiting.clear();
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub mod backoff;
pub mod roam;

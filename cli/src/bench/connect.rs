//! `tern bench connect`: opens many idle sessions at a set rate, spread over several client source
//! addresses (each 127.0.0.0/8 address gives another ~28k source ports) and edge addresses, holds them,
//! and reports the connect rate, failures by reason and the edge's memory per session.
//!
//! Sessions are kept lean on the client side (a socket and nothing else) so the load tool itself can hold
//! as many as the machine allows.

use super::{progress, run_tag, Api};
use anyhow::{bail, Context};
use clap::Args;
use futures_util::{stream, SinkExt, StreamExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_shared::proto::{self, crypto::ClientKeys, Packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;

#[derive(Args, Clone)]
pub struct ConnectArgs {
    #[command(flatten)]
    api: Api,
    /// tcp, tls, ws, wss or quic. TLS, WSS and QUIC need --ca (the edge's CA or self-signed certificate,
    /// PEM).
    #[arg(long, value_enum, default_value = "tcp")]
    transport: Transport,
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// SNI name for TLS and QUIC.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Request path of the WebSocket upgrade (ws and wss), e.g. a proxy's location.
    #[arg(long, default_value = "/")]
    path: String,
    /// Edge addresses for the chosen transport; sessions are spread over them in turn. Repeat the flag
    /// for several.
    #[arg(long = "addr", default_value = "127.0.0.1:5100")]
    addrs: Vec<SocketAddr>,
    /// Sessions to open.
    #[arg(long, default_value_t = 10_000)]
    sessions: u64,
    /// New sessions per second.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 512)]
    concurrency: usize,
    /// Client source addresses, counted up from --source-base (0: let the OS choose).
    #[arg(long, default_value_t = 0)]
    sources: u32,
    #[arg(long, default_value = "127.0.1.1")]
    source_base: Ipv4Addr,
    /// Seconds to hold the sessions once all are open.
    #[arg(long, default_value_t = 10)]
    hold: u64,
    /// Sessions per uid (uids are made with device level 0 so one uid can hold many).
    #[arg(long, default_value_t = 100)]
    per_uid: u64,
    /// The edge's /healthz, read before and after for session count and memory.
    #[arg(long, default_value = "http://127.0.0.1:5080/healthz")]
    edge_health: String,
    /// Give up on the whole ramp after this many seconds.
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
}

#[derive(Serialize)]
struct Summary {
    requested: u64,
    opened: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    ramp_seconds: f64,
    connects_per_sec: f64,
    held_seconds: u64,
    still_open_at_end: u64,
    edge_sessions_before: u64,
    edge_sessions_after: u64,
    edge_rss_before_mib: f64,
    edge_rss_after_mib: f64,
    edge_bytes_per_session: f64,
}

#[derive(Default)]
struct EdgeView {
    sessions: u64,
    rss: u64,
}

async fn edge_view(http: &reqwest::Client, url: &str) -> EdgeView {
    let Ok(resp) = http.get(url).send().await else { return EdgeView::default() };
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    EdgeView { sessions: v["sessions"].as_u64().unwrap_or(0), rss: v["rss_bytes"].as_u64().unwrap_or(0) }
}

fn source(a: &ConnectArgs, i: u64) -> Option<Ipv4Addr> {
    (a.sources > 0).then(|| Ipv4Addr::from(u32::from(a.source_base) + (i % u64::from(a.sources)) as u32))
}

fn classify(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(24) => "too many open files (load tool)".into(),
        Some(99) => "no free source port (EADDRNOTAVAIL)".into(),
        _ => format!("{:?}", e.kind()),
    }
}

/// One session: connect from `src`, CONNECT, wait for a successful CONNACK.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Tcp,
    Tls,
    Ws,
    Wss,
    Quic,
}

type WsStream<S> = Box<tokio_tungstenite::WebSocketStream<S>>;
type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// A session being held open: its socket (and for QUIC its connection and stream).
enum Held {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    Ws(WsStream<TcpStream>),
    Wss(WsStream<TlsStream>),
    /// The connection and receive side are held only to keep the session open.
    Quic {
        send: quinn::SendStream,
        _conn: quinn::Connection,
        _recv: quinn::RecvStream,
    },
}

/// What every session of a run connects with.
#[derive(Clone)]
struct Dialer {
    transport: Transport,
    tls: Option<tokio_rustls::TlsConnector>,
    quic: Option<quinn::Endpoint>,
    name: String,
    path: String,
}

impl Dialer {
    fn new(a: &ConnectArgs) -> anyhow::Result<Dialer> {
        let roots = match (&a.ca, a.transport) {
            (_, Transport::Tcp | Transport::Ws) => None,
            (Some(ca), _) => Some(tern_shared::tls::client_config(&std::fs::read(ca).context("reading --ca")?)?),
            (None, _) => bail!("--transport tls, wss and quic need --ca"),
        };
        let quic = match (&roots, a.transport) {
            (Some(roots), Transport::Quic) => {
                let mut endpoint = tern_shared::quic::endpoint(SocketAddr::from(([0, 0, 0, 0], 0)), None)?;
                endpoint.set_default_client_config(tern_shared::quic::client_config(roots)?);
                Some(endpoint)
            }
            _ => None,
        };
        let tls = roots.map(tokio_rustls::TlsConnector::from);
        Ok(Dialer { transport: a.transport, tls, quic, name: a.server_name.clone(), path: a.path.clone() })
    }

    async fn open(&self, addr: SocketAddr, src: Option<Ipv4Addr>, connect: Vec<u8>) -> Result<Held, String> {
        if let (Transport::Quic, Some(endpoint)) = (self.transport, &self.quic) {
            let conn =
                endpoint.connect(addr, &self.name).map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())?;
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            send.write_all(&connect).await.map_err(|e| e.to_string())?;
            login(&mut recv).await?;
            return Ok(Held::Quic { send, _conn: conn, _recv: recv });
        }
        let socket = TcpSocket::new_v4().map_err(|e| classify(&e))?;
        if let Some(ip) = src {
            socket.bind(SocketAddr::new(IpAddr::V4(ip), 0)).map_err(|e| classify(&e))?;
        }
        let mut s = socket.connect(addr).await.map_err(|e| classify(&e))?;
        match (&self.tls, self.transport) {
            (None, Transport::Ws) => {
                let url = format!("ws://{addr}{}", self.path);
                Ok(Held::Ws(ws_login(&url, s, connect).await?))
            }
            (None, _) => {
                s.write_all(&connect).await.map_err(|e| classify(&e))?;
                login(&mut s).await?;
                Ok(Held::Tcp(s))
            }
            (Some(tls), transport) => {
                let name = rustls_pki_types::ServerName::try_from(self.name.clone()).map_err(|e| e.to_string())?;
                let mut s = tls.connect(name, s).await.map_err(|e| format!("tls: {e}"))?;
                if transport == Transport::Wss {
                    let url = format!("wss://{}{}", self.name, self.path);
                    return Ok(Held::Wss(ws_login(&url, s, connect).await?));
                }
                s.write_all(&connect).await.map_err(|e| classify(&e))?;
                login(&mut s).await?;
                Ok(Held::Tls(Box::new(s)))
            }
        }
    }
}

/// WebSocket upgrade on `s`, then CONNECT in one binary message and the CONNACK in the next ones.
async fn ws_login<S>(url: &str, s: S, connect: Vec<u8>) -> Result<WsStream<S>, String>
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut ws, _) = tokio_tungstenite::client_async(url, s).await.map_err(|e| format!("websocket: {e}"))?;
    ws.send(Message::Binary(connect.into())).await.map_err(|e| format!("websocket: {e}"))?;
    let mut buf = Vec::with_capacity(128);
    loop {
        if let Ok(Some((p, _))) = proto::decode(&buf, proto::MAX_VERSION, 4096) {
            check_connack(p)?;
            return Ok(Box::new(ws));
        }
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(Message::Close(_))) | None => return Err("closed before CONNACK".into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("websocket: {e}")),
        }
    }
}

fn check_connack(p: Packet) -> Result<(), String> {
    match p {
        Packet::Connack(a) if a.reason_code == 1 => Ok(()),
        Packet::Connack(a) => Err(format!("CONNACK reason {}", a.reason_code)),
        Packet::Disconnect(d) => Err(format!("DISCONNECT: {}", d.reason)),
        other => Err(format!("unexpected {:?}", other.packet_type())),
    }
}

/// Reads until CONNACK and checks it.
async fn login<S: AsyncRead + Unpin>(s: &mut S) -> Result<(), String> {
    let mut buf = Vec::with_capacity(128);
    loop {
        if let Ok(Some((p, _))) = proto::decode(&buf, proto::MAX_VERSION, 4096) {
            return check_connack(p);
        }
        let mut chunk = [0u8; 256];
        match s.read(&mut chunk).await.map_err(std::io::Error::other) {
            Ok(0) => return Err("closed before CONNACK".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(classify(&e)),
        }
    }
}

/// Each session is a device of its own: a login from the same device replaces that device's older one.
fn connect_frame(uid: &str, key: &str, device: u64) -> Vec<u8> {
    let c = Packet::Connect(proto::Connect {
        version: proto::MAX_VERSION,
        device_id: format!("bench-{device}"),
        uid: uid.into(),
        token: "t".into(),
        client_timestamp: tern_shared::client::now_ms(),
        client_key: key.into(),
        ..Default::default()
    });
    proto::encode_to_vec(&c, proto::MAX_VERSION).unwrap_or_default()
}

pub async fn run(a: ConnectArgs) -> anyhow::Result<()> {
    if a.addrs.is_empty() || a.sessions == 0 || a.rate == 0 || a.per_uid == 0 {
        bail!("--addr, --sessions, --rate and --per-uid must be non-zero");
    }
    let fd_limit = tern_shared::limits::raise_fd_limit(a.sessions + 64, "this load tool");
    let http = reqwest::Client::new();
    let tag = run_tag();
    let uids: Vec<String> = (0..a.sessions.div_ceil(a.per_uid)).map(|i| format!("conn-{tag}-{i}")).collect();
    let bar = progress(uids.len() as u64, "users");
    let made: Vec<anyhow::Result<()>> = stream::iter(&uids)
        .map(|uid| {
            let (http, api, bar) = (&http, &a.api, &bar);
            async move {
                api.user(http, uid, true).await?;
                bar.inc(1);
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    bar.finish_and_clear();
    made.into_iter().collect::<anyhow::Result<Vec<()>>>().context("creating users")?;

    let before = edge_view(&http, &a.edge_health).await;
    // One client key for all: the edge's key pair is fresh per connection, so sessions still differ.
    let key = ClientKeys::generate().public_b64();
    let dialer = Dialer::new(&a)?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<Held, String>>();
    let gate = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let bar = progress(a.sessions, "sessions");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.max_seconds);
    let spawner = {
        let (a, gate, key, dialer) = (a.clone(), gate.clone(), key.clone(), dialer.clone());
        tokio::spawn(async move {
            let gap = Duration::from_secs_f64(1.0 / a.rate as f64);
            let mut tick = tokio::time::interval(gap);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..a.sessions {
                tick.tick().await;
                if Instant::now() > deadline {
                    break;
                }
                let Ok(permit) = gate.clone().acquire_owned().await else { break };
                let addr = a.addrs[(i % a.addrs.len() as u64) as usize];
                let frame = connect_frame(&uids[(i / a.per_uid) as usize], &key, i);
                let (src, done, dialer) = (source(&a, i), done_tx.clone(), dialer.clone());
                tokio::spawn(async move {
                    let r = tokio::time::timeout(Duration::from_secs(10), dialer.open(addr, src, frame)).await;
                    let _ = done.send(r.unwrap_or_else(|_| Err("handshake timeout".into())));
                    drop(permit);
                });
            }
        })
    };
    let mut held = Vec::new();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut answered = 0;
    while answered < a.sessions {
        let Ok(Some(r)) = tokio::time::timeout_at(deadline.into(), done_rx.recv()).await else { break };
        answered += 1;
        bar.inc(1);
        match r {
            Ok(s) => held.push(s),
            Err(reason) => *failures.entry(reason).or_default() += 1,
        }
    }
    spawner.abort();
    let ramp = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if fd_limit > 0 && a.sessions + 64 > fd_limit {
        eprintln!("note: this process may hold at most about {fd_limit} sockets (RLIMIT_NOFILE)");
    }

    // Hold: ping every 20 s (the edge closes silent sessions) and drop what the edge closed.
    let hold_until = Instant::now() + Duration::from_secs(a.hold);
    while Instant::now() < hold_until {
        tokio::time::sleep(Duration::from_secs(20).min(hold_until - Instant::now())).await;
        let mut kept = Vec::with_capacity(held.len());
        for mut h in held {
            let alive = match &mut h {
                Held::Tcp(s) => {
                    let mut scratch = [0u8; 64];
                    !matches!(s.try_read(&mut scratch), Ok(0)) && s.try_write(&[0x70]).is_ok()
                }
                Held::Tls(s) => s.write_all(&[0x70]).await.is_ok(),
                Held::Ws(s) => s.send(Message::Binary(vec![0x70].into())).await.is_ok(),
                Held::Wss(s) => s.send(Message::Binary(vec![0x70].into())).await.is_ok(),
                Held::Quic { send, .. } => send.write_all(&[0x70]).await.is_ok(),
            };
            if alive {
                kept.push(h);
            }
        }
        held = kept;
    }
    let after = edge_view(&http, &a.edge_health).await;
    let opened = held.len() as u64;
    // Close before exiting: QUIC has no FIN, and a session whose close is never sent lingers on the
    // edge until its idle timeout.
    drop(held);
    if let Some(endpoint) = &dialer.quic {
        endpoint.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(Duration::from_secs(3), endpoint.wait_idle()).await;
    }
    let grown = after.sessions.saturating_sub(before.sessions);
    let s = Summary {
        requested: a.sessions,
        opened: answered - failures.values().sum::<u64>(),
        failed: failures.values().sum(),
        failures,
        ramp_seconds: ramp,
        connects_per_sec: opened as f64 / ramp,
        held_seconds: a.hold,
        still_open_at_end: opened,
        edge_sessions_before: before.sessions,
        edge_sessions_after: after.sessions,
        edge_rss_before_mib: before.rss as f64 / 1048576.0,
        edge_rss_after_mib: after.rss as f64 / 1048576.0,
        edge_bytes_per_session: if grown > 0 {
            after.rss.saturating_sub(before.rss) as f64 / grown as f64
        } else {
            0.0
        },
    };
    a.api.report("bench connect", &s)
}

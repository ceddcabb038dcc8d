//! Links to the core: one long-lived connection to every core node, each multiplexing every client
//! session of this edge. A link reconnects with backoff, pings every second, and re-announces all
//! sessions after each connect. Presence goes to every node; requests go to one up link (any node
//! forwards writes to the raft leader); deliveries come from the leader's link.

mod inbound;
mod pool;
mod quic;

pub use pool::LinkPool;

use crate::metrics::Metrics;
use crate::session::registry::{Registry, SessionEntry};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tern_shared::link::io::{write_loop, FrameReader};
use tern_shared::link::{EdgeAddrs, LinkFrame, OutgoingMessage, MIN_LINK_VERSION};
use tern_shared::proto::{self, Packet, Reason};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

const PING_EVERY: Duration = Duration::from_secs(1);
/// Silence after which the core counts as gone (a few missed pongs).
const DEAD_AFTER: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Sessions per presence snapshot frame: about 1-3 MB, well within the link frame limit.
const PRESENCE_CHUNK: usize = 20_000;

#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[error("no link to the core")]
pub struct LinkDown;

/// A SEND waiting for the core's answer, kept whole so it can be sent again over another link.
pub struct PendingSend {
    msg: OutgoingMessage,
    client_seq: u32,
    flags: u8,
    /// Links it was lost on so far.
    lost: u8,
    /// When it was last lost: it must find another link soon after, or the client is told it failed.
    lost_at: Option<std::time::Instant>,
    /// Its bytes in the sending session's budget, given back when it is answered.
    _budget: tokio::sync::OwnedSemaphorePermit,
}

impl PendingSend {
    /// A client's SEND, holding `budget` (its bytes in the session's budget) until it is answered.
    pub fn new(msg: OutgoingMessage, client_seq: u32, flags: u8, budget: tokio::sync::OwnedSemaphorePermit) -> Self {
        PendingSend { msg, client_seq, flags, lost: 0, lost_at: None, _budget: budget }
    }
}

/// A SEND lost with its link goes to another one this many times before the client is told it failed.
const MAX_RESENDS: u8 = 2;

pub struct Link {
    core_addr: String,
    /// 0: the presence lane (snapshot on connect, announcements, deliveries); others: requests only.
    lane: u8,
    /// The shared QUIC endpoint and this node's QUIC link address, when links prefer QUIC.
    quic: Option<(quinn::Endpoint, std::net::SocketAddr)>,
    /// After a failed QUIC attempt, TCP is used straight away until then (UDP may be blocked).
    quic_paused_until: Mutex<Option<std::time::Instant>>,
    edge_id: String,
    instance: u64,
    addrs: EdgeAddrs,
    queue: usize,
    /// Frames one client may have waiting (and RECVs unacked) before it counts as too slow.
    session_queue: usize,
    recv_resend: crate::session::outbox::Resend,
    tls: Option<(tokio_rustls::TlsConnector, rustls_pki_types::ServerName<'static>)>,
    registry: Arc<Registry>,
    metrics: Metrics,
    /// The live link's frame queue. Its lock also orders presence announcements against the snapshot
    /// sent on reconnect, so the core never misses or double-counts a session.
    current: tokio::sync::Mutex<Option<mpsc::Sender<LinkFrame>>>,
    up: AtomicBool,
    /// The core node at the other end (from its HelloAck); 0 = unknown.
    node_id: AtomicU64,
    /// The link version the next `Hello` offers: `link_version`, lowered one step each time a core
    /// node of an older release refuses it.
    offer: std::sync::atomic::AtomicU16,
    /// The version of the live link (what the accepted `Hello` offered).
    agreed: std::sync::atomic::AtomicU16,
    /// The last round trip measured on this link, in microseconds (0: none yet).
    rtt_us: AtomicU64,
    /// Per slot, the leader of its raft group as this link's node last reported (0 = unknown).
    leaders: Mutex<Arc<[u64]>>,
    /// The last pings' nonces and when each was sent, for the link's round trip (one a second: eight
    /// cover answers up to eight seconds late).
    pings: Mutex<std::collections::VecDeque<(u64, std::time::Instant)>>,
    next_req: AtomicU64,
    auths: Mutex<HashMap<u64, oneshot::Sender<(u8, u8)>>>,
    sends: Mutex<HashMap<u64, PendingSend>>,
    /// Where SENDs in flight on a lost link go to be sent again (the pool's resend loop).
    resend: mpsc::Sender<PendingSend>,
    rtts: Arc<Mutex<std::collections::BTreeMap<u64, u64>>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every link of the edge is given alike.
#[derive(Clone)]
pub(super) struct Common {
    /// The round trip last measured on each core node's presence lane, by node id, for `LinkReport`.
    pub rtts: Arc<Mutex<std::collections::BTreeMap<u64, u64>>>,
    pub addrs: EdgeAddrs,
    pub instance: u64,
    pub registry: Arc<Registry>,
    pub metrics: Metrics,
    pub resend: mpsc::Sender<PendingSend>,
}

impl Link {
    pub(super) fn new(
        config: &crate::EdgeConfig,
        node: &str,
        lane: u8,
        quic: Option<(quinn::Endpoint, std::net::SocketAddr)>,
        common: Common,
    ) -> Result<Arc<Link>, crate::StartError> {
        let Common { rtts, addrs, instance, registry, metrics, resend } = common;
        let tls = config.link_tls.as_ref().map(|t| t.connector()).transpose()?;
        Ok(Arc::new(Link {
            tls,
            core_addr: node.to_string(),
            lane,
            quic,
            quic_paused_until: Mutex::new(None),
            edge_id: config.edge_id.clone(),
            instance,
            addrs,
            queue: config.link_queue,
            session_queue: config.session_queue,
            recv_resend: config.recv_resend(),
            registry,
            metrics,
            current: tokio::sync::Mutex::new(None),
            up: AtomicBool::new(false),
            node_id: AtomicU64::new(0),
            offer: std::sync::atomic::AtomicU16::new(config.link_version),
            agreed: std::sync::atomic::AtomicU16::new(0),
            rtt_us: AtomicU64::new(0),
            pings: Mutex::default(),
            leaders: Mutex::new(Arc::from([])),
            next_req: AtomicU64::new(1),
            auths: Mutex::default(),
            sends: Mutex::default(),
            resend,
            rtts,
        }))
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn node_id(&self) -> u64 {
        self.node_id.load(Ordering::Relaxed)
    }

    /// Per slot, the leader this link's node last reported (0 = unknown); empty before the first pong.
    pub fn leaders(&self) -> Arc<[u64]> {
        locked(&self.leaders).clone()
    }

    async fn sender(&self) -> Result<mpsc::Sender<LinkFrame>, LinkDown> {
        self.current.lock().await.clone().ok_or(LinkDown)
    }

    /// Asks the core whether `token` is valid; returns (reason code, device level).
    pub async fn auth(&self, uid: &str, device_flag: u8, token: &str) -> Result<(u8, u8), LinkDown> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        locked(&self.auths).insert(req, tx);
        let frame = LinkFrame::Auth { req, uid: uid.into(), device_flag, token: token.into() };
        let sent = match self.sender().await {
            Ok(link) => link.send(frame).await.map_err(|_| LinkDown),
            Err(e) => Err(e),
        };
        if sent.is_err() {
            locked(&self.auths).remove(&req);
            return Err(LinkDown);
        }
        match tokio::time::timeout(DEAD_AFTER * 2, rx).await {
            Ok(Ok(r)) => Ok(r),
            _ => {
                locked(&self.auths).remove(&req);
                Err(LinkDown)
            }
        }
    }

    /// Forwards a client's SEND; the SENDACK reaches the session when the core answers.
    pub async fn send(&self, p: PendingSend) -> Result<(), LinkDown> {
        self.send_pending(p).await.map_err(|_| LinkDown)
    }

    /// Sends `p` and keeps it until answered; gives it back when this link is down.
    pub(super) async fn send_pending(&self, p: PendingSend) -> Result<(), PendingSend> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let frame = LinkFrame::Send { req, msg: p.msg.clone() };
        locked(&self.sends).insert(req, p);
        let sent = match self.sender().await {
            Ok(link) => link.send(frame).await.is_ok(),
            Err(_) => false,
        };
        if sent {
            return Ok(());
        }
        // `None`: `went_down` already handed it to the resend loop.
        locked(&self.sends).remove(&req).map_or(Ok(()), Err)
    }

    /// Tells this node about a session opened or closed. Taking the link's lock orders the frame after
    /// any reconnect snapshot in progress; the core treats a repeated open as one.
    pub async fn announce(&self, frame: LinkFrame) {
        if let Some(link) = self.current.lock().await.as_ref() {
            let _ = link.send(frame).await;
        }
    }

    /// Keeps the link to this core node up for as long as the edge runs.
    pub async fn run(self: Arc<Self>) {
        let node = self.core_addr.clone();
        let mut backoff = Duration::from_millis(50);
        loop {
            if let Some(result) = self.clone().over_quic().await {
                backoff = Duration::from_millis(50);
                tracing::warn!(core = %node, ?result, "quic link to core lost");
            } else {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&node)).await {
                    Ok(Ok(stream)) => {
                        backoff = Duration::from_millis(50);
                        let result = self.clone().secure_and_serve(stream, &node).await;
                        tracing::warn!(core = %node, ?result, "link to core lost");
                    }
                    Ok(Err(e)) => tracing::debug!(core = %node, error = %e, "cannot reach core"),
                    Err(_) => tracing::debug!(core = %node, "connect to core timed out"),
                }
            }
            self.went_down().await;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// With link TLS configured, the core must prove its name and this edge presents its certificate.
    async fn secure_and_serve(self: Arc<Self>, stream: TcpStream, node: &str) -> Result<(), String> {
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        match &self.tls {
            None => self.serve(stream, node).await,
            Some((connector, name)) => {
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), stream))
                    .await
                    .map_err(|_| "tls handshake timed out".to_string())?
                    .map_err(|e| format!("tls handshake: {e}"))?;
                self.clone().serve(tls, node).await
            }
        }
    }

    async fn serve<S>(self: Arc<Self>, stream: S, node: &str) -> Result<(), String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        let mut reader = FrameReader::new(r);
        let (tx, rx) = mpsc::channel(self.queue);
        let writer = tokio::spawn(write_loop(w, rx));
        let offer = self.offer.load(Ordering::Relaxed);
        let hello = LinkFrame::Hello {
            version: offer,
            edge_id: self.edge_id.clone(),
            addrs: self.addrs.clone(),
            lane: self.lane,
            instance: self.instance,
        };
        tx.send(hello).await.map_err(|_| "link writer ended")?;
        match tokio::time::timeout(DEAD_AFTER, reader.next()).await {
            Ok(Ok(Some(LinkFrame::HelloAck { node_id }))) => {
                self.node_id.store(node_id, Ordering::Relaxed);
                self.agreed.store(offer, Ordering::Relaxed);
                tracing::info!(core = %node, node_id, lane = self.lane, version = offer, "link to core up")
            }
            // A core node of the previous release: offer it the version before (the next attempt).
            Ok(Ok(Some(LinkFrame::Refused(why)))) if why.contains("link version") && offer > MIN_LINK_VERSION => {
                writer.abort();
                self.offer.store(offer - 1, Ordering::Relaxed);
                return Err(format!("refused by the core: {why}; offering link version {} next", offer - 1));
            }
            Ok(Ok(Some(LinkFrame::Refused(why)))) => {
                writer.abort();
                return Err(format!("refused by the core: {why}"));
            }
            other => {
                writer.abort();
                return Err(format!("no hello ack: {other:?}"));
            }
        }
        {
            let mut current = self.current.lock().await;
            if self.lane == 0 {
                // In chunks, each copied out of the registry when its turn comes: an edge with a
                // million sessions neither builds one huge frame nor holds a second copy of them all.
                // Sessions opened or closed meanwhile are announced after the snapshot (this lock).
                let ids = self.registry.ids();
                let mut chunks = ids.chunks(PRESENCE_CHUNK);
                let first = self.registry.infos(chunks.next().unwrap_or_default());
                tx.send(LinkFrame::PresenceSnapshot(first)).await.map_err(|_| "link writer ended")?;
                for chunk in chunks {
                    let more = LinkFrame::PresenceMore(self.registry.infos(chunk));
                    tx.send(more).await.map_err(|_| "link writer ended")?;
                }
            }
            *current = Some(tx.clone());
        }
        if !self.up.swap(true, Ordering::Relaxed) {
            self.metrics.links_up.inc();
        }
        let link = self.clone();
        let pinger = tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                tokio::time::sleep(PING_EVERY).await;
                n += 1;
                {
                    let mut pings = locked(&link.pings);
                    if pings.len() == 8 {
                        pings.pop_front();
                    }
                    pings.push_back((n, std::time::Instant::now()));
                }
                let rtt = link.rtt_us.load(Ordering::Relaxed);
                if link.lane == 0 && link.agreed.load(Ordering::Relaxed) >= 7 && rtt > 0 {
                    let by_node = locked(&link.rtts).iter().map(|(n, us)| (*n, *us)).collect();
                    let report = LinkFrame::LinkReport { micros: rtt, by_node, connects: link.metrics.connects.get() };
                    if tx.send(report).await.is_err() {
                        break;
                    }
                }
                if tx.send(LinkFrame::Ping(n)).await.is_err() {
                    break;
                }
            }
        });
        let result = loop {
            match tokio::time::timeout(DEAD_AFTER, reader.next()).await {
                Ok(Ok(Some(frame))) => self.on_frame(frame),
                Ok(Ok(None)) => break Err("core closed the link".to_string()),
                Ok(Err(e)) => break Err(e.to_string()),
                Err(_) => break Err(format!("no frame from core for {DEAD_AFTER:?}")),
            }
        };
        pinger.abort();
        writer.abort();
        locked(&self.pings).clear();
        let _ = self.metrics.link_rtt.remove_label_values(&[&self.node_id().to_string(), &self.lane.to_string()]);
        result
    }

    /// Hands SENDs that were waiting on the lost link to the resend loop, which sends them over another
    /// link: the core dedups by client msg no, so one that was stored before the loss is not stored
    /// twice, and its SENDACK carries the first seq. CONNECT checks fail (the client retries).
    async fn went_down(&self) {
        *self.current.lock().await = None;
        if self.lane == 0 {
            locked(&self.rtts).remove(&self.node_id());
        }
        if self.up.swap(false, Ordering::Relaxed) {
            self.metrics.links_up.dec();
        }
        locked(&self.auths).clear();
        let mut sends: Vec<(u64, PendingSend)> = locked(&self.sends).drain().collect();
        // In the order they were sent, so each session's SENDs keep their order on the next link.
        sends.sort_unstable_by_key(|(req, _)| *req);
        for (_, mut p) in sends {
            p.lost += 1;
            p.lost_at = Some(std::time::Instant::now());
            if p.lost > MAX_RESENDS {
                sendack(&self.registry, p, Reason::SystemError.code(), 0, 0);
            } else if let Err(mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p)) =
                self.resend.try_send(p)
            {
                sendack(&self.registry, p, Reason::SystemError.code(), 0, 0);
            }
        }
    }

    /// Queues a RECV for a client, kept until acked; a client whose queue is full closes itself as too
    /// slow.
    fn push_recv(&self, s: &SessionEntry, message_id: i64, frame: Bytes) -> bool {
        s.outbox.push_recv(message_id, frame, self.session_queue, std::time::Instant::now(), self.recv_resend)
    }
}

/// Answers a client's SEND.
pub(super) fn sendack(registry: &Registry, p: PendingSend, reason: u8, message_id: i64, message_seq: u64) {
    let Some(s) = registry.get(p.msg.session) else { return };
    let ack = Packet::Sendack(proto::Sendack {
        flags: p.flags,
        message_id,
        client_seq: p.client_seq,
        message_seq: message_seq as u32,
        reason_code: reason,
    });
    if let Ok(b) = proto::encode_to_vec(&ack, s.version) {
        s.outbox.push_reply(b.into());
    }
}

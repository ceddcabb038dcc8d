//! `links_per_node` links to every core node. Presence travels on each node's first link (lane 0);
//! requests go to the node leading the raft group of the slot they touch (pongs report every slot's
//! leader), on the lane their session is pinned to, so one session's SENDs stay in order while
//! different sessions use different links.

use super::{Link, LinkDown, PendingSend};
use crate::metrics::Metrics;
use crate::session::registry::{Registry, SessionEntry};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tern_shared::channel::{slot_of, stored_channel_id};
use tern_shared::link::{EdgeAddrs, LinkFrame, OutgoingMessage};
use tern_shared::proto::Reason;
use tokio::sync::mpsc;

/// How long a SEND lost with its link waits for another link before the client is told it failed.
const RESEND_WAIT: Duration = Duration::from_secs(3);

pub struct LinkPool {
    /// Per core node, its lanes; lane 0 first.
    nodes: Vec<Vec<Arc<Link>>>,
    registry: Arc<Registry>,
    /// Spreads CONNECT checks, which have no session yet, over the lanes.
    next_auth: AtomicUsize,
    /// SENDs given back by lost links, taken by `resend_loop`.
    resends: Mutex<Option<mpsc::Receiver<PendingSend>>>,
    metrics: Metrics,
}

impl LinkPool {
    pub fn new(
        config: &crate::EdgeConfig,
        addrs: EdgeAddrs,
        registry: Arc<Registry>,
        metrics: Metrics,
    ) -> Result<LinkPool, crate::StartError> {
        let lanes = config.links_per_node.clamp(1, usize::from(u8::MAX)) as u8;
        let list =
            |s: &str| s.split(',').map(str::trim).filter(|a| !a.is_empty()).map(String::from).collect::<Vec<_>>();
        let quic_addrs = list(&config.core_quic_addr);
        let (resend, resends) = mpsc::channel(config.link_queue);
        let instance = rand::random();
        let common = super::Common {
            rtts: Arc::default(),
            addrs,
            instance,
            registry: registry.clone(),
            metrics: metrics.clone(),
            resend,
        };
        let endpoint = match (&config.link_tls, quic_addrs.is_empty()) {
            (Some(t), false) => Some(super::quic::endpoint(t)?),
            _ => None,
        };
        let nodes = list(&config.core_addr)
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let quic = endpoint.clone().zip(quic_addrs.get(i).and_then(|a| a.parse().ok()));
                (0..lanes)
                    .map(|lane| Link::new(config, node, lane, quic.clone(), common.clone()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LinkPool { nodes, registry, next_auth: AtomicUsize::new(0), resends: Mutex::new(Some(resends)), metrics })
    }

    pub fn start(&self) {
        for link in self.nodes.iter().flatten() {
            tokio::spawn(link.clone().run());
        }
    }

    /// Up while the presence lane of at least one core node is up: without it no node knows our
    /// sessions, so nothing would be delivered.
    pub fn is_up(&self) -> bool {
        self.nodes.iter().any(|lanes| lanes[0].is_up())
    }

    /// Nodes whose presence lane is up, the one leading `key`'s slot first (by the latest report of
    /// any up node), so its writes and reads need no forwarding. `key` is a stored channel id or a uid.
    fn up_nodes(&self, key: &str) -> impl Iterator<Item = &Vec<Arc<Link>>> {
        let up = |lanes: &&Vec<Arc<Link>>| lanes[0].is_up();
        let leaders = self.nodes.iter().filter(up).map(|l| l[0].leaders()).find(|t| !t.is_empty());
        let leader = leaders.and_then(|t| t.get(usize::from(slot_of(key, t.len() as u16))).copied());
        let first = self.nodes.iter().filter(up).find(|l| leader.is_some_and(|id| id != 0 && l[0].node_id() == id));
        let rest = self.nodes.iter().filter(up).filter(move |l| !first.is_some_and(|f| std::ptr::eq(f, *l)));
        first.into_iter().chain(rest)
    }

    /// The lane `key` is pinned to on a node, or the presence lane while that one is down.
    fn lane(lanes: &[Arc<Link>], key: usize) -> &Arc<Link> {
        let pinned = &lanes[key % lanes.len()];
        if pinned.is_up() {
            pinned
        } else {
            &lanes[0]
        }
    }

    pub async fn auth(&self, uid: &str, device_flag: u8, token: &str) -> Result<(u8, u8), LinkDown> {
        let key = self.next_auth.fetch_add(1, Ordering::Relaxed);
        // The token lives in the uid's slot: its leader answers without asking another node.
        for lanes in self.up_nodes(uid) {
            if let Ok(r) = Self::lane(lanes, key).auth(uid, device_flag, token).await {
                return Ok(r);
            }
        }
        Err(LinkDown)
    }

    /// Forwards a client's SEND over its lane of one node; its SENDACK comes back over the same link.
    pub async fn send(&self, p: PendingSend) -> Result<(), LinkDown> {
        let key = p.msg.session as usize;
        match self.up_nodes(&stored_channel(&p.msg)).next() {
            Some(lanes) => Self::lane(lanes, key).send(p).await,
            None => Err(LinkDown),
        }
    }

    /// Sends again, over another link, the SENDs that lost links gave back. Runs for the edge's lifetime.
    pub async fn resend_loop(&self) {
        let Some(mut resends) = self.resends.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        while let Some(p) = resends.recv().await {
            self.resend(p).await;
        }
    }

    async fn resend(&self, mut p: PendingSend) {
        // From the loss, not from now: SENDs queued behind one that waited do not wait again.
        let deadline = p.lost_at.unwrap_or_else(Instant::now) + RESEND_WAIT;
        loop {
            if let Some(lanes) = self.up_nodes(&stored_channel(&p.msg)).next() {
                match Self::lane(lanes, p.msg.session as usize).send_pending(p).await {
                    Ok(()) => return self.metrics.resent_sends.inc(),
                    Err(back) => p = back,
                }
            }
            if Instant::now() >= deadline {
                return super::sendack(&self.registry, p, Reason::SystemError.code(), 0, 0);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registers a session, then tells every node.
    pub async fn open_session(&self, entry: SessionEntry) {
        let info = entry.info.clone();
        self.registry.insert(entry);
        for lanes in &self.nodes {
            lanes[0].announce(LinkFrame::SessionOpen(info.clone())).await;
        }
    }

    pub async fn close_session(&self, session: u64) {
        self.registry.remove(session);
        for lanes in &self.nodes {
            lanes[0].announce(LinkFrame::SessionClose { session }).await;
        }
    }
}

/// The channel id the core stores a SEND under: a person channel is named by both uids.
fn stored_channel(msg: &OutgoingMessage) -> std::borrow::Cow<'_, str> {
    // A channel the core will refuse may go to any node.
    match stored_channel_id(&msg.from_uid, &msg.channel_id, msg.channel_type) {
        Ok(id) => id.into(),
        Err(_) => msg.channel_id.as_str().into(),
    }
}

//! One link per core node, used as a whole.

use super::{Link, LinkDown};
use crate::metrics::Metrics;
use crate::session::registry::{Registry, SessionEntry};
use std::sync::Arc;
use tern_shared::link::{EdgeAddrs, LinkFrame, OutgoingMessage};

pub struct LinkPool {
    links: Vec<Arc<Link>>,
    registry: Arc<Registry>,
}

impl LinkPool {
    pub fn new(
        config: &crate::EdgeConfig,
        addrs: EdgeAddrs,
        registry: Arc<Registry>,
        metrics: Metrics,
    ) -> Result<LinkPool, crate::StartError> {
        let links = config
            .core_addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|node| Link::new(config, node, addrs.clone(), registry.clone(), metrics.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LinkPool { links, registry })
    }

    pub fn start(&self) {
        for link in &self.links {
            tokio::spawn(link.clone().run());
        }
    }

    /// Up while at least one core node is reachable.
    pub fn is_up(&self) -> bool {
        self.links.iter().any(|l| l.is_up())
    }

    /// Up links, the leader's first (by the latest hint any node gave), so writes need no forwarding.
    fn up_links(&self) -> impl Iterator<Item = &Arc<Link>> {
        let leader = self.links.iter().filter(|l| l.is_up()).map(|l| l.leader_hint()).find(|h| *h != 0);
        let first = self.links.iter().find(|l| l.is_up() && leader.is_some_and(|id| l.node_id() == id));
        let rest = self.links.iter().filter(move |l| l.is_up() && !first.is_some_and(|f| Arc::ptr_eq(f, l)));
        first.into_iter().chain(rest)
    }

    pub async fn auth(&self, uid: &str, device_flag: u8, token: &str) -> Result<(u8, u8), LinkDown> {
        for link in self.up_links() {
            if let Ok(r) = link.auth(uid, device_flag, token).await {
                return Ok(r);
            }
        }
        Err(LinkDown)
    }

    /// Forwards a client's SEND over one up link; its SENDACK comes back over the same link.
    pub async fn send(&self, msg: OutgoingMessage, client_seq: u32, flags: u8) -> Result<(), LinkDown> {
        match self.up_links().next() {
            Some(link) => link.send(msg, client_seq, flags).await,
            None => Err(LinkDown),
        }
    }

    /// Registers a session, then tells every node.
    pub async fn open_session(&self, entry: SessionEntry) {
        let info = entry.info.clone();
        self.registry.insert(entry);
        for link in &self.links {
            link.announce(LinkFrame::SessionOpen(info.clone())).await;
        }
    }

    pub async fn close_session(&self, session: u64) {
        self.registry.remove(session);
        for link in &self.links {
            link.announce(LinkFrame::SessionClose { session }).await;
        }
    }
}

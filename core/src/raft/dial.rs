//! How to reach each core node. The membership records every node's advertised raft address; a node
//! may be told to dial some peers elsewhere (through NAT, a proxy, or a test's relay). With `raft_tls`,
//! every connection is mutual TLS. Each raft group dials with its own `Dial`, whose requests name it.

use super::peer::{Peer, PeerTls, Pool};
use super::types::NodeId;
use super::versions::Versions;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct Dial {
    overrides: Arc<BTreeMap<NodeId, String>>,
    tls: Option<PeerTls>,
    group: u16,
    pool: Pool,
    versions: Versions,
}

impl Dial {
    pub fn new(overrides: BTreeMap<NodeId, String>, tls: Option<PeerTls>, versions: Versions) -> Self {
        Dial { overrides: Arc::new(overrides), tls, group: 0, pool: Pool::default(), versions }
    }

    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    /// The same dialing for raft group `group`.
    pub fn for_group(&self, group: u16) -> Dial {
        Dial { group, ..self.clone() }
    }

    /// The address to connect to for node `id`, whose membership entry says `advertised`.
    pub fn addr(&self, id: NodeId, advertised: &str) -> String {
        self.overrides.get(&id).cloned().unwrap_or_else(|| advertised.to_string())
    }

    /// A connection (pooled, or opened on first use) to a node at `addr`, for this group's requests.
    pub fn peer(&self, addr: String) -> Peer {
        Peer::new(addr, self.tls.clone(), self.group, self.pool.clone(), self.versions.clone())
    }
}

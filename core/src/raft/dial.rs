//! How to reach each core node. The membership records every node's advertised raft address; a node
//! may be told to dial some peers elsewhere (through NAT, a proxy, or a test's relay). With `raft_tls`,
//! every connection is mutual TLS.

use super::peer::Peer;
use super::types::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a node presents to, and expects of, the node it dials.
pub type PeerTls = (tokio_rustls::TlsConnector, rustls_pki_types::ServerName<'static>);

#[derive(Clone, Default)]
pub struct Dial {
    overrides: Arc<BTreeMap<NodeId, String>>,
    tls: Option<PeerTls>,
}

impl Dial {
    pub fn new(overrides: BTreeMap<NodeId, String>, tls: Option<PeerTls>) -> Self {
        Dial { overrides: Arc::new(overrides), tls }
    }

    /// The address to connect to for node `id`, whose membership entry says `advertised`.
    pub fn addr(&self, id: NodeId, advertised: &str) -> String {
        self.overrides.get(&id).cloned().unwrap_or_else(|| advertised.to_string())
    }

    /// A connection (opened on first use) to a node at `addr`, as `addr` gives it.
    pub fn peer(&self, addr: String) -> Peer {
        Peer::new(addr, self.tls.clone())
    }
}

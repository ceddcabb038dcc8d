//! Where to reach each core node. The membership records every node's advertised raft address; a node
//! may be told to dial some peers elsewhere (through NAT, a proxy, or a test's relay).

use super::types::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Dial(Arc<BTreeMap<NodeId, String>>);

impl Dial {
    pub fn new(overrides: BTreeMap<NodeId, String>) -> Self {
        Dial(Arc::new(overrides))
    }

    /// The address to connect to for node `id`, whose membership entry says `advertised`.
    pub fn addr(&self, id: NodeId, advertised: &str) -> String {
        self.0.get(&id).cloned().unwrap_or_else(|| advertised.to_string())
    }
}

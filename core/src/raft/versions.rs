//! Raft port versions between core nodes (`tern_wire::rpc`): what this node says when it dials, how it
//! answers a greeting, and what it has learned of the other nodes, for `/cluster` and the console. A
//! node of the release before greetings (version 1) closes a connection whose first frame is `Hello`;
//! the dialer then uses version 1 with that address for a while instead of greeting it each time.

use super::types::NodeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tern_wire::rpc::{agree, Agreed, Hello, LOG_VERSION, MIN_RAFT_PORT_VERSION};

/// How long an address that did not understand a greeting is dialed without one; after that it is
/// greeted again (its node may have been upgraded).
const LEGACY_FOR: Duration = Duration::from_secs(60);
/// The same complaint about one peer is logged at most this often (a refused peer redials every
/// heartbeat).
const WARN_EVERY: Duration = Duration::from_secs(30);

/// A node's raft port and raft log versions as seen from this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub port: u16,
    pub log: u16,
}

/// This node's versions and what it knows of the others; shared by every group's dialing and the port.
#[derive(Clone)]
pub struct Versions {
    node: NodeId,
    max: u16,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// What nodes said in their greetings to this one, and when.
    by_node: BTreeMap<NodeId, (Known, Instant)>,
    /// What the addresses this node dialed answered to its greeting (version 1: they closed), and when.
    by_addr: HashMap<String, (Known, Instant)>,
    warned: HashMap<String, Instant>,
}

const LEGACY: Known = Known { port: 1, log: 1 };

impl Versions {
    /// For node `node`, speaking raft port versions up to `max` (`max_raft_version`).
    pub fn new(node: NodeId, max: u16) -> Versions {
        Versions { node, max, inner: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The versions this node speaks.
    pub fn range(&self) -> (u16, u16) {
        (MIN_RAFT_PORT_VERSION, self.max)
    }

    /// Whether this node greets and answers greetings (version 2 on; not when set to speak only 1).
    pub fn greets(&self) -> bool {
        self.max >= 2
    }

    /// What to send first on a new connection to `addr`: nothing to a version-1 node (or when this
    /// node does not greet).
    pub fn hello_for(&self, addr: &str) -> Option<Hello> {
        let legacy = self.lock().by_addr.get(addr).is_some_and(|(k, at)| k.port == 1 && at.elapsed() < LEGACY_FOR);
        (self.greets() && !legacy).then_some(Hello {
            node: self.node,
            min: MIN_RAFT_PORT_VERSION,
            max: self.max,
            log: LOG_VERSION,
        })
    }

    /// `addr` closed the connection on a greeting: a node of a release before greetings.
    pub fn mark_legacy(&self, addr: &str) {
        let before = self.lock().by_addr.insert(addr.to_string(), (LEGACY, Instant::now()));
        if before.is_none_or(|(k, _)| k != LEGACY) {
            tracing::info!(%addr, "raft peer speaks raft port version 1 (a release before version greetings)");
        }
    }

    /// `addr` answered this node's greeting.
    pub fn answered(&self, addr: &str, known: Known) {
        self.lock().by_addr.insert(addr.to_string(), (known, Instant::now()));
    }

    /// Node `node` greeted this one.
    pub fn greeted_by(&self, node: NodeId, known: Known) {
        self.lock().by_node.insert(node, (known, Instant::now()));
    }

    /// The latest news of node `node`, dialed at `addr`: its greeting or its answer to one.
    pub fn of(&self, node: NodeId, addr: &str) -> Option<Known> {
        if node == self.node {
            return Some(Known { port: self.max, log: LOG_VERSION });
        }
        let inner = self.lock();
        let heard = [inner.by_node.get(&node), inner.by_addr.get(addr)];
        heard.into_iter().flatten().max_by_key(|(_, at)| *at).map(|(k, _)| *k)
    }

    /// Whether a complaint about `key` should be logged now (at most once per `WARN_EVERY`).
    pub fn should_warn(&self, key: &str) -> bool {
        let mut inner = self.lock();
        match inner.warned.get(key) {
            Some(at) if at.elapsed() < WARN_EVERY => false,
            _ => {
                inner.warned.insert(key.to_string(), Instant::now());
                true
            }
        }
    }
}

/// The answer to a greeting. (Which node a certificate names is not checked against it: any holder of
/// a node certificate from the cluster CA is trusted as a node, and tests share one.)
pub fn greet(me: NodeId, ours: (u16, u16), hello: &Hello) -> Result<Agreed, String> {
    match agree(ours, (hello.min, hello.max)) {
        Some(version) => Ok(Agreed { node: me, version, log: LOG_VERSION }),
        None => Err(format!(
            "node {me} speaks raft port versions {}..={}, node {} {}..={}",
            ours.0, ours.1, hello.node, hello.min, hello.max
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(node: NodeId, min: u16, max: u16) -> Hello {
        Hello { node, min, max, log: 1 }
    }

    #[test]
    fn a_greeting_gets_the_newest_shared_version() {
        assert_eq!(greet(1, (1, 2), &hello(2, 1, 3)).map(|a| (a.node, a.version)), Ok((1, 2)));
        assert_eq!(greet(1, (1, 2), &hello(2, 1, 1)).map(|a| a.version), Ok(1));
    }

    #[test]
    fn disjoint_versions_are_refused_with_both_ranges() {
        let why = greet(1, (1, 2), &hello(2, 3, 4)).unwrap_err();
        assert!(why.contains("1..=2") && why.contains("3..=4"), "{why}");
    }

    #[test]
    fn a_legacy_address_is_dialed_without_a_greeting() {
        let v = Versions::new(1, 2);
        assert!(v.hello_for("a:1").is_some());
        v.mark_legacy("a:1");
        assert!(v.hello_for("a:1").is_none());
        assert_eq!(v.of(2, "a:1"), Some(LEGACY));
        assert!(v.hello_for("b:1").is_some());
        assert!(Versions::new(1, 1).hello_for("b:1").is_none());
    }

    #[test]
    fn the_latest_news_of_a_node_counts() {
        let v = Versions::new(1, 2);
        let new = Known { port: 2, log: 1 };
        v.greeted_by(2, new);
        std::thread::sleep(Duration::from_millis(2));
        v.mark_legacy("a:1");
        assert_eq!(v.of(2, "a:1"), Some(LEGACY), "restarted as an older release");
        std::thread::sleep(Duration::from_millis(2));
        v.greeted_by(2, new);
        assert_eq!(v.of(2, "a:1"), Some(new), "upgraded again");
        assert_eq!(v.of(1, "x"), Some(new));
        assert_eq!(v.of(3, "b:1"), None);
    }
}

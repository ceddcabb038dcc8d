//! Which edge process holds each edge id. Presence, deliveries and kicks are keyed by edge id, so two
//! processes linked under one id would take each other's sessions; the first one's live links keep
//! the id until the last of them closes, and any other instance (another process, or the same id with
//! another certificate) is refused meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What tells two edge processes apart: the random instance of their `Hello` and, with mutual TLS,
/// their certificate's fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub instance: u64,
    pub cert: Option<[u8; 32]>,
}

#[derive(Default)]
pub struct EdgeClaims {
    held: Mutex<HashMap<String, (Holder, usize)>>,
}

/// Holds an edge id for one link; dropping it releases that link's share.
pub struct Claim {
    claims: Arc<EdgeClaims>,
    edge_id: String,
}

impl EdgeClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Holder, usize)>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A link of `holder` for `edge_id`, or the holder whose live links keep the id.
    pub fn claim(self: &Arc<Self>, edge_id: &str, holder: Holder) -> Result<Claim, Holder> {
        let mut held = self.lock();
        match held.get_mut(edge_id) {
            Some((current, links)) if *current == holder => *links += 1,
            Some((current, _)) => return Err(*current),
            None => {
                held.insert(edge_id.to_string(), (holder, 1));
            }
        }
        Ok(Claim { claims: self.clone(), edge_id: edge_id.to_string() })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = self.claims.lock();
        if let Some((_, links)) = held.get_mut(&self.edge_id) {
            *links -= 1;
            if *links == 0 {
                held.remove(&self.edge_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_belongs_to_one_instance_while_its_links_live() {
        let claims = Arc::new(EdgeClaims::default());
        let a = Holder { instance: 1, cert: Some([1; 32]) };
        let lane0 = claims.claim("edge-1", a).unwrap();
        let lane1 = claims.claim("edge-1", a).unwrap();
        assert_eq!(claims.claim("edge-1", Holder { instance: 2, ..a }).err(), Some(a), "another process");
        assert_eq!(claims.claim("edge-1", Holder { cert: Some([2; 32]), ..a }).err(), Some(a), "another cert");
        assert!(claims.claim("edge-2", Holder { instance: 2, ..a }).is_ok(), "other ids are free");
        drop(lane0);
        assert!(claims.claim("edge-1", Holder { instance: 2, ..a }).is_err(), "one link still lives");
        drop(lane1);
        let restarted = Holder { instance: 3, ..a };
        assert!(claims.claim("edge-1", restarted).is_ok(), "free once every link closed");
    }
}

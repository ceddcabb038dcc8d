//! Round trips between regions, and what follows from them: the largest one between voters (which the
//! raft timings must allow for) and each region's fallback order.

use super::{Deployment, WanPath};

impl Deployment {
    /// The path between two regions; `None` within one region or for an unknown pair.
    pub fn path(&self, a: &str, b: &str) -> Option<&WanPath> {
        self.paths.iter().find(|p| (p.between[0] == a && p.between[1] == b) || (p.between[0] == b && p.between[1] == a))
    }

    /// Milliseconds between two regions (0 within one).
    pub fn rtt_ms(&self, a: &str, b: &str) -> u32 {
        if a == b {
            return 0;
        }
        self.path(a, b).map_or(0, |p| p.rtt_ms)
    }

    /// The largest round trip between two regions that hold voters: a commit waits for a majority, an
    /// election for votes, across it.
    pub fn voter_rtt_ms(&self) -> u32 {
        let holding: Vec<&str> = self.regions.iter().filter(|r| !r.voters.is_empty()).map(|r| r.id.as_str()).collect();
        holding.iter().flat_map(|a| holding.iter().map(|b| self.rtt_ms(a, b))).max().unwrap_or(0)
    }

    /// The other regions with edges, nearest first (ties by id): where `region`'s clients go when it
    /// fails.
    pub fn fallback(&self, region: &str) -> Vec<&str> {
        let mut others: Vec<&str> =
            self.regions.iter().filter(|r| r.id != region && !r.edges.is_empty()).map(|r| r.id.as_str()).collect();
        others.sort_by_key(|r| (self.rtt_ms(region, r), *r));
        others
    }
}

//! Round trips between regions, and what follows from them: the largest one between voters (which the
//! raft timings must allow for) and each region's fallback order.

use super::{check::cidr, Deployment, Region, WanPath};
use std::net::IpAddr;

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

    /// The region whose `clients` networks hold `ip` (the first listed when several do).
    pub fn region_of(&self, ip: IpAddr) -> Option<&Region> {
        self.regions.iter().find(|r| r.clients.iter().any(|c| contains(c, ip)))
    }
}

/// Whether the network `net` (`address/prefix`) holds `ip`.
pub fn contains(net: &str, ip: IpAddr) -> bool {
    let Some((base, len)) = cidr(net) else { return false };
    let (base, ip, width) = match (base, ip) {
        (IpAddr::V4(b), IpAddr::V4(i)) => (u128::from(u32::from(b)), u128::from(u32::from(i)), 32),
        (IpAddr::V6(b), IpAddr::V6(i)) => (u128::from(b), u128::from(i), 128),
        _ => return false,
    };
    // A /0 shifts every bit out: checked_shr gives None for both sides, which are then equal.
    let host_bits = width - u32::from(len);
    base.checked_shr(host_bits) == ip.checked_shr(host_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_hold_their_addresses_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(contains("127.0.1.0/24", ip("127.0.1.200")));
        assert!(!contains("127.0.1.0/24", ip("127.0.2.1")));
        assert!(contains("10.0.0.0/8", ip("10.255.0.1")));
        assert!(contains("0.0.0.0/0", ip("192.0.2.1")));
        assert!(!contains("0.0.0.0/0", ip("::1")));
        assert!(contains("192.0.2.7/32", ip("192.0.2.7")));
        assert!(!contains("192.0.2.7/32", ip("192.0.2.6")));
        assert!(contains("2001:db8::/32", ip("2001:db8:1::1")));
        assert!(!contains("2001:db8::/32", ip("2001:db9::1")));
        assert!(!contains("nonsense", ip("127.0.0.1")));
    }
}

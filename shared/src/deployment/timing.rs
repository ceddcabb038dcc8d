//! Raft timings for voters a round trip apart. openraft gives each AppendEntries one heartbeat
//! interval to answer, so the heartbeat must exceed the round trip with room for large appends, and
//! for a new connection's TLS handshake (a round trip of its own) before it: three round trips. etcd's
//! tuning guide puts the election timeout at ten round trips or more. Within one region the LAN
//! defaults stand.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftTimings {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
}

impl RaftTimings {
    /// The timings for voters at most `rtt_ms` apart.
    pub fn derive(rtt_ms: u32) -> RaftTimings {
        let rtt = u64::from(rtt_ms);
        let heartbeat_ms = (3 * rtt).max(100);
        let election_min_ms = (10 * rtt).max(2 * heartbeat_ms);
        RaftTimings { heartbeat_ms, election_min_ms, election_max_ms: election_min_ms + (election_min_ms / 2).max(150) }
    }

    /// Why these timings do not suit voters `rtt_ms` apart: the key and the reason.
    pub fn unsuited(&self, rtt_ms: u32) -> Option<(&'static str, String)> {
        let rtt = u64::from(rtt_ms);
        if self.heartbeat_ms * 2 < rtt * 3 {
            return Some(("raft.heartbeat_ms", format!("must be at least 1.5 × the largest voter round trip ({rtt} ms): each append gets one heartbeat to answer")));
        }
        if self.election_min_ms < 10 * rtt || self.election_min_ms <= self.heartbeat_ms {
            return Some((
                "raft.election_min_ms",
                format!("must be at least 10 × the largest voter round trip ({rtt} ms) and above raft.heartbeat_ms"),
            ));
        }
        if self.election_max_ms <= self.election_min_ms {
            return Some(("raft.election_max_ms", "must be greater than raft.election_min_ms".into()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_keeps_the_defaults_and_wan_timings_grow_with_the_round_trip() {
        assert_eq!(
            RaftTimings::derive(0),
            RaftTimings { heartbeat_ms: 100, election_min_ms: 200, election_max_ms: 350 }
        );
        assert_eq!(
            RaftTimings::derive(80),
            RaftTimings { heartbeat_ms: 240, election_min_ms: 800, election_max_ms: 1200 }
        );
        for rtt in [0, 1, 20, 80, 217, 400] {
            assert_eq!(RaftTimings::derive(rtt).unsuited(rtt), None, "{rtt} ms");
        }
        let lan = RaftTimings::derive(0);
        assert_eq!(lan.unsuited(80).map(|u| u.0), Some("raft.heartbeat_ms"));
        let slow_heartbeat_only = RaftTimings { heartbeat_ms: 200, ..lan };
        assert_eq!(slow_heartbeat_only.unsuited(80).map(|u| u.0), Some("raft.election_min_ms"));
    }
}

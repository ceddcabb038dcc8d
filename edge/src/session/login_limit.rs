//! Failed logins, counted per client address and per uid over a window, so guessing tokens costs the
//! guesser and not the core: past the limits a CONNECT is refused before its token is sent for checking.
//! Good logins are not slowed: an address is turned away only after its own failures, and a uid under
//! attack still logs in from any address that has not failed in the window.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most addresses and uids tracked at once; past it, the oldest windows are dropped first.
const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address failed too often.
    Address,
    /// This uid failed too often, and this address is among those failing.
    Uid,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Address => "login_limit_addr",
            Refusal::Uid => "login_limit_uid",
        }
    }
}

#[derive(Clone, Copy)]
struct Count {
    since: Instant,
    failures: u32,
}

pub struct LoginLimiter {
    window: Duration,
    per_addr: u32,
    per_uid: u32,
    addrs: HashMap<IpAddr, Count>,
    uids: HashMap<String, Count>,
}

impl LoginLimiter {
    /// `per_addr` / `per_uid` failures allowed per `window`; 0 turns a limit off.
    pub fn new(window: Duration, per_addr: u32, per_uid: u32) -> LoginLimiter {
        LoginLimiter { window, per_addr, per_uid, addrs: HashMap::new(), uids: HashMap::new() }
    }

    fn live(&self, c: Option<&Count>, now: Instant) -> u32 {
        c.filter(|c| now.duration_since(c.since) < self.window).map_or(0, |c| c.failures)
    }

    /// Whether a CONNECT for `uid` from `ip` may have its token checked now.
    pub fn admit(&self, uid: &str, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let from_addr = self.live(self.addrs.get(&ip), now);
        if self.per_addr > 0 && from_addr >= self.per_addr {
            return Err(Refusal::Address);
        }
        if self.per_uid > 0 && from_addr > 0 && self.live(self.uids.get(uid), now) >= self.per_uid {
            return Err(Refusal::Uid);
        }
        Ok(())
    }

    /// Counts a token the core rejected.
    pub fn failed(&mut self, uid: &str, ip: IpAddr, now: Instant) {
        let window = self.window;
        let bump = |c: &mut Count| {
            if now.duration_since(c.since) >= window {
                *c = Count { since: now, failures: 0 };
            }
            c.failures = c.failures.saturating_add(1);
        };
        let fresh = Count { since: now, failures: 0 };
        bump(self.addrs.entry(ip).or_insert(fresh));
        match self.uids.get_mut(uid) {
            Some(c) => bump(c),
            None => {
                let mut c = fresh;
                bump(&mut c);
                self.uids.insert(uid.to_string(), c);
            }
        }
        if self.addrs.len() > MAX_TRACKED || self.uids.len() > MAX_TRACKED {
            self.prune(now);
        }
    }

    /// Forgets ended windows; if that is not enough, keeps the half with the most failures.
    fn prune(&mut self, now: Instant) {
        let window = self.window;
        self.addrs.retain(|_, c| now.duration_since(c.since) < window);
        self.uids.retain(|_, c| now.duration_since(c.since) < window);
        keep_worst(&mut self.addrs);
        keep_worst(&mut self.uids);
    }

    pub fn tracked(&self) -> (usize, usize) {
        (self.addrs.len(), self.uids.len())
    }
}

fn keep_worst<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Count>) {
    if map.len() <= MAX_TRACKED {
        return;
    }
    let mut failures: Vec<u32> = map.values().map(|c| c.failures).collect();
    let (_, &mut median, _) = failures.select_nth_unstable_by(MAX_TRACKED / 2, |a, b| b.cmp(a));
    map.retain(|_, c| c.failures > median);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([203, 0, 113, last])
    }

    #[test]
    fn an_address_is_stopped_after_its_own_failures_for_one_window() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::new(Duration::from_secs(60), 3, 0);
        for _ in 0..3 {
            assert_eq!(l.admit("alice", ip(1), t0), Ok(()));
            l.failed("alice", ip(1), t0);
        }
        assert_eq!(l.admit("bob", ip(1), t0), Err(Refusal::Address), "whatever uid it tries next");
        assert_eq!(l.admit("alice", ip(2), t0), Ok(()), "other addresses are not affected");
        assert_eq!(l.admit("bob", ip(1), t0 + Duration::from_secs(60)), Ok(()), "the window ends");
    }

    #[test]
    fn a_uid_under_attack_still_logs_in_from_addresses_that_did_not_fail() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::new(Duration::from_secs(60), 0, 5);
        for n in 0..5 {
            l.failed("alice", ip(n), t0);
        }
        assert_eq!(l.admit("alice", ip(0), t0), Err(Refusal::Uid));
        assert_eq!(l.admit("alice", ip(200), t0), Ok(()), "alice's own device, which never failed");
        assert_eq!(l.admit("bob", ip(0), t0), Ok(()), "other uids from that address");
    }

    #[test]
    fn memory_stays_bounded() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::new(Duration::from_secs(60), 10, 10);
        for n in 0..(MAX_TRACKED as u32 + 10) {
            let t = t0 + Duration::from_micros(u64::from(n));
            l.failed(&format!("u{n}"), IpAddr::from(n.to_be_bytes()), t);
        }
        let (addrs, uids) = l.tracked();
        assert!(addrs <= MAX_TRACKED && uids <= MAX_TRACKED, "{addrs} {uids}");
        // A heavy offender survives the flood of one-off failures.
        let mut l = LoginLimiter::new(Duration::from_secs(60), 3, 0);
        for _ in 0..3 {
            l.failed("x", ip(9), t0);
        }
        for n in 0..(MAX_TRACKED as u32 + 10) {
            l.failed("x", IpAddr::from(((n + 1) << 8).to_be_bytes()), t0);
        }
        assert_eq!(l.admit("x", ip(9), t0), Err(Refusal::Address));
    }
}

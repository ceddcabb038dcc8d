//! Logins at a bounded rate. When a region fails, its clients arrive at the next region's edges within
//! seconds, each login a token check at the core; past what the core answers in time, logins time out
//! and the clients come back again. So the edge lets logins through at `logins_per_sec` (a second's
//! worth at once) and makes the rest wait their turn instead of refusing them; only a login whose turn
//! is further away than `connect_timeout_ms` is refused, and its client backs off. A GCRA (generic cell
//! rate algorithm) schedule: one instant, the next login's theoretical arrival time.

use std::time::{Duration, Instant};

pub struct LoginPace {
    interval: Duration,
    burst: Duration,
    max_wait: Duration,
    next: Option<Instant>,
}

impl LoginPace {
    /// `per_sec` logins a second (0: no limit), a second's worth at once, none waiting over `max_wait`.
    pub fn new(per_sec: u32, max_wait: Duration) -> LoginPace {
        let interval = if per_sec == 0 { Duration::ZERO } else { Duration::from_secs(1) / per_sec };
        LoginPace { interval, burst: interval * per_sec.saturating_sub(1), max_wait, next: None }
    }

    /// When a login arriving at `now` may go ahead, or `None` if that is more than `max_wait` away.
    pub fn admit(&mut self, now: Instant) -> Option<Instant> {
        if self.interval.is_zero() {
            return Some(now);
        }
        let next = self.next.map_or(now, |n| n.max(now));
        let at = next.checked_sub(self.burst).map_or(now, |t| t.max(now));
        if at.saturating_duration_since(now) > self.max_wait {
            return None;
        }
        self.next = Some(next + self.interval);
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seconds_worth_goes_at_once_then_one_per_interval_and_past_the_wait_none() {
        let t0 = Instant::now();
        let mut p = LoginPace::new(10, Duration::from_secs(1));
        let waits: Vec<Duration> = (0..25).filter_map(|_| p.admit(t0)).map(|at| at - t0).collect();
        // 10 at once, then one every 100 ms up to one second away.
        assert_eq!(waits.len(), 20);
        assert!(waits[..10].iter().all(|w| w.is_zero()));
        assert_eq!(waits[10], Duration::from_millis(100));
        assert_eq!(waits[19], Duration::from_secs(1));
        // Time passing frees the schedule again.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(p.admit(later), Some(later));
        let mut free = LoginPace::new(0, Duration::ZERO);
        assert!((0..1000).all(|_| free.admit(t0) == Some(t0)));
    }
}

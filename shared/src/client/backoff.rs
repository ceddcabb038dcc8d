//! Full-jitter exponential backoff (AWS's "Exponential Backoff and Jitter"): attempt `n` waits a uniformly
//! random time up to `min(cap, base × 2^n)`, so clients that lost their edge together come back spread
//! over the window instead of at once.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(5) }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (0 is the first), given `unit`, a random number in [0, 1).
    pub fn wait(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.base.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX)).min(self.cap);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_and_spread_over_the_window() {
        let b = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(2) };
        assert_eq!(b.wait(0, 0.999_999).as_millis(), 99);
        assert_eq!(b.wait(3, 0.5), Duration::from_millis(400));
        assert_eq!(b.wait(4, 0.999_999).as_millis(), 1599);
        assert_eq!(b.wait(5, 1.0), Duration::from_secs(2));
        assert_eq!(b.wait(40, 1.0), Duration::from_secs(2));
        assert_eq!(b.wait(40, 0.0), Duration::ZERO);
    }
}

//! When a chunk crossing a simulated WAN path may leave: the path's one-way delay, plus jitter, never
//! before the chunk ahead of it (a TCP stream arrives in order however its packets travelled). A lost
//! chunk leaves one retransmission timeout later, as TCP would resend it: the relay carries byte
//! streams, where dropping bytes would corrupt them rather than model loss.

use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// Linux's smallest retransmission timeout.
const MIN_RTO: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// The round trip the path adds (half of it each way).
    pub rtt: Duration,
    /// Up to this much more, at random, per chunk.
    pub jitter: Duration,
    /// Share of chunks that take a retransmission timeout longer.
    pub loss: f64,
}

pub struct Pace {
    shape: Shape,
    rng: rand::rngs::StdRng,
    last: Option<Instant>,
}

impl Pace {
    pub fn new(shape: Shape, seed: u64) -> Pace {
        Pace { shape, rng: rand::rngs::StdRng::seed_from_u64(seed), last: None }
    }

    /// When a chunk that arrived at `now` leaves.
    pub fn release_at(&mut self, now: Instant) -> Instant {
        let s = self.shape;
        let mut delay = s.rtt / 2;
        if !s.jitter.is_zero() {
            delay += s.jitter.mul_f64(self.rng.gen::<f64>());
        }
        if s.loss > 0.0 && self.rng.gen::<f64>() < s.loss {
            delay += MIN_RTO.max(s.rtt);
        }
        let at = (now + delay).max(self.last.unwrap_or(now));
        self.last = Some(at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(rtt: u64, jitter: u64, loss: f64) -> Shape {
        Shape { rtt: Duration::from_millis(rtt), jitter: Duration::from_millis(jitter), loss }
    }

    #[test]
    fn chunks_wait_half_the_round_trip_and_keep_their_order() {
        let t0 = Instant::now();
        let mut p = Pace::new(shape(80, 0, 0.0), 1);
        assert_eq!(p.release_at(t0), t0 + Duration::from_millis(40));
        assert_eq!(p.release_at(t0 + Duration::from_millis(5)), t0 + Duration::from_millis(45));

        let mut p = Pace::new(shape(80, 30, 0.0), 7);
        let mut last = t0;
        for i in 0..1000 {
            let now = t0 + Duration::from_micros(i * 100);
            let at = p.release_at(now);
            assert!(at >= last, "out of order");
            assert!(at >= now + Duration::from_millis(40) && at <= now + Duration::from_millis(70) || at == last);
            last = at;
        }
    }

    #[test]
    fn lost_chunks_wait_a_retransmission_timeout() {
        let t0 = Instant::now();
        let mut p = Pace::new(shape(20, 0, 0.1), 3);
        let late = (0..10_000)
            .map(|i| {
                let now = t0 + Duration::from_secs(i);
                p.release_at(now) - now
            })
            .filter(|d| *d >= Duration::from_millis(210))
            .count();
        assert!((800..1200).contains(&late), "{late} of 10,000 chunks resent");
    }
}

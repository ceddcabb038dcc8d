//! One upstream group: its backends, pingora's round-robin balancer with active health checks, and
//! passive ejection of backends that fail real requests.

use super::config::UpstreamConfig;
use crate::metrics::Metrics;
use pingora::lb::health_check::{HealthObserve, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::{selection::RoundRobin, Backend, LoadBalancer};
use prometheus::{Histogram, IntCounter};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Upstream {
    pub name: String,
    pub prefix: String,
    pub lb: Arc<LoadBalancer<RoundRobin>>,
    passive: Mutex<HashMap<SocketAddr, Failures>>,
    eject_after: u32,
    eject_for: Duration,
    metrics: Metrics,
    stats: RequestStats,
}

/// This group's series of `proxy_requests_total` (by status class) and `proxy_request_seconds`,
/// looked up once rather than by label on every request.
struct RequestStats {
    by_class: [IntCounter; 6],
    seconds: Histogram,
}

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

#[derive(Default)]
struct Failures {
    in_a_row: u32,
    ejected_until: Option<Instant>,
}

/// Keeps `tern_edge_proxy_backend_up` in step with the active checks.
struct Observer {
    upstream: String,
    metrics: Metrics,
}

#[async_trait::async_trait]
impl HealthObserve for Observer {
    async fn observe(&self, backend: &Backend, healthy: bool) {
        let addr = backend.addr.to_string();
        tracing::info!(upstream = %self.upstream, backend = %addr, healthy, "backend health changed");
        self.metrics.proxy_backend_up.with_label_values(&[&self.upstream, &addr]).set(healthy as i64);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("upstream `{name}`: {message}")]
pub struct UpstreamError {
    name: String,
    message: String,
}

impl Upstream {
    pub fn new(
        config: &UpstreamConfig,
        health_interval: Duration,
        eject_after: u32,
        eject_for: Duration,
        metrics: Metrics,
    ) -> Result<Upstream, UpstreamError> {
        let err = |message: String| UpstreamError { name: config.name.clone(), message };
        let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(config.addrs.iter().map(String::as_str))
            .map_err(|e| err(e.to_string()))?;
        let observer = Box::new(Observer { upstream: config.name.clone(), metrics: metrics.clone() });
        if config.health_path.is_empty() {
            let mut check = TcpHealthCheck::new();
            check.health_changed_callback = Some(observer);
            lb.set_health_check(check);
        } else {
            let mut check = HttpHealthCheck::new("localhost", false);
            check.req.set_uri(config.health_path.parse().map_err(|e| err(format!("health_path: {e}")))?);
            check.health_changed_callback = Some(observer);
            lb.set_health_check(Box::new(check));
        }
        lb.health_check_frequency = Some(health_interval);
        lb.parallel_health_check = true;
        for addr in &config.addrs {
            metrics.proxy_backend_up.with_label_values(&[&config.name, addr]).set(1);
        }
        let stats = RequestStats {
            by_class: STATUS_CLASSES.map(|class| metrics.proxy_requests.with_label_values(&[&config.name, class])),
            seconds: metrics.proxy_request_seconds.with_label_values(&[&config.name]),
        };
        Ok(Upstream {
            stats,
            name: config.name.clone(),
            prefix: config.prefix.clone(),
            lb: Arc::new(lb),
            passive: Mutex::new(HashMap::new()),
            eject_after,
            eject_for,
            metrics,
        })
    }

    /// A backend for the next try: healthy, not ejected and not tried yet for this request; failing
    /// that, one the active check still calls healthy (ejection is a guess from few requests); failing
    /// that, any untried one, since when every check fails (a core electing a leader answers 503 to
    /// them all) a try beats a certain 502.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let now = Instant::now();
        let passive = self.passive.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |b: &Backend| b.addr.as_inet().copied().filter(|a| !tried.contains(a));
        let ejected = |a: &SocketAddr| passive.get(a).and_then(|f| f.ejected_until).is_some_and(|t| t > now);
        let max = self.lb.backends().get_backend().len().max(1);
        self.lb
            .select_with(b"", max, |b, healthy| healthy && fresh(b).is_some_and(|a| !ejected(&a)))
            .or_else(|| self.lb.select_with(b"", max, |b, healthy| healthy && fresh(b).is_some()))
            .or_else(|| self.lb.select_with(b"", max, |b, _| fresh(b).is_some()))
            .and_then(|b| b.addr.as_inet().copied())
    }

    pub fn failed(&self, backend: SocketAddr) {
        if self.eject_after == 0 {
            return;
        }
        let mut passive = self.passive.lock().unwrap_or_else(|e| e.into_inner());
        let f = passive.entry(backend).or_default();
        f.in_a_row += 1;
        if f.in_a_row >= self.eject_after && f.ejected_until.is_none_or(|t| t <= Instant::now()) {
            f.ejected_until = Some(Instant::now() + self.eject_for);
            self.metrics.proxy_ejections.with_label_values(&[&self.name]).inc();
            tracing::warn!(upstream = %self.name, %backend, failures = f.in_a_row, "backend ejected");
        }
    }

    pub fn succeeded(&self, backend: SocketAddr) {
        let mut passive = self.passive.lock().unwrap_or_else(|e| e.into_inner());
        if passive.get(&backend).is_some_and(|f| f.in_a_row > 0) {
            passive.remove(&backend);
        }
    }

    /// Counts a request answered with `status` (0: none) after `elapsed`.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        self.stats.by_class[class].inc();
        self.stats.seconds.observe(elapsed.as_secs_f64());
    }

    pub fn matches(&self, path: &str) -> bool {
        path.starts_with(&self.prefix)
    }
}

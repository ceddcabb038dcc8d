//! Prometheus metrics of an edge, served on `/metrics`.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub sessions: IntGauge,
    pub connects: IntCounter,
    pub connect_rejected: IntCounterVec,
    pub closed_bad_input: IntCounterVec,
    pub sends: IntCounter,
    pub recv_delivered: IntCounter,
    pub slow_clients_closed: IntCounter,
    pub links_up: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new_custom(Some("tern_edge".into()), None).unwrap_or_default();
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            let _ = r.register(Box::new(g.clone()));
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            let _ = r.register(Box::new(c.clone()));
            c
        };
        let by_reason = |name: &str, help: &str| {
            let c =
                IntCounterVec::new(Opts::new(name, help), &["reason"]).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            let _ = r.register(Box::new(c.clone()));
            // Every reason shows from the start, at zero, so dashboards and alerts see the series.
            for reason in ["auth", "malformed", "other", "per_ip", "proxy"] {
                c.with_label_values(&[reason]);
            }
            c
        };
        Metrics {
            sessions: gauge("sessions", "Authenticated client sessions"),
            connects: counter("connects_total", "Client connections accepted"),
            connect_rejected: by_reason("connect_rejected_total", "Connections refused before a session started"),
            closed_bad_input: by_reason("closed_bad_input_total", "Sessions closed for malformed or unexpected input"),
            sends: counter("sends_total", "SEND frames forwarded to the core"),
            recv_delivered: counter("recv_delivered_total", "RECV frames queued to clients"),
            slow_clients_closed: counter("slow_clients_closed_total", "Clients closed because their queue was full"),
            links_up: gauge("core_links_up", "Links to core nodes that are up"),
            registry: r,
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

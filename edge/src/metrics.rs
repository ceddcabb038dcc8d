//! Prometheus metrics of an edge, served on `/metrics`.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub sessions: IntGauge,
    pub connects: IntCounter,
    pub logins_paced: IntCounter,
    pub connect_rejected: IntCounterVec,
    pub closed_bad_input: IntCounterVec,
    pub sends: IntCounter,
    pub recv_delivered: IntCounter,
    pub slow_clients_closed: IntCounter,
    pub links_up: IntGauge,
    pub links_quic: IntGauge,
    pub link_rtt: GaugeVec,
    pub resent_sends: IntCounter,
    pub proxy_requests: IntCounterVec,
    pub proxy_request_seconds: HistogramVec,
    pub proxy_rejected: IntCounterVec,
    pub proxy_retries: IntCounter,
    pub proxy_ejections: IntCounterVec,
    pub proxy_backend_up: IntGaugeVec,
    pub proxy_tunnels: IntGauge,
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
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            let _ = r.register(Box::new(c.clone()));
            c
        };
        let by_reason = |name: &str, help: &str| {
            let c = vec(name, help, &["reason"]);
            // Every reason shows from the start, at zero, so dashboards and alerts see the series.
            for reason in ["auth", "malformed", "other", "per_ip", "proxy"] {
                c.with_label_values(&[reason]);
            }
            c
        };
        let proxy_rejected =
            vec("proxy_rejected_total", "HTTP requests answered by the access layer itself", &["reason"]);
        for reason in ["rate", "inflight", "conns", "no_route", "no_backend", "proxy_header"] {
            proxy_rejected.with_label_values(&[reason]);
        }
        let proxy_request_seconds = HistogramVec::new(
            HistogramOpts::new("proxy_request_seconds", "Proxied HTTP request time, first byte in to last byte out")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["upstream"],
        )
        .unwrap_or_else(|e| panic!("metric proxy_request_seconds: {e}"));
        let _ = r.register(Box::new(proxy_request_seconds.clone()));
        let proxy_backend_up = IntGaugeVec::new(
            Opts::new("proxy_backend_up", "1 while the active health check passes"),
            &["upstream", "backend"],
        )
        .unwrap_or_else(|e| panic!("metric proxy_backend_up: {e}"));
        let _ = r.register(Box::new(proxy_backend_up.clone()));
        let link_rtt = GaugeVec::new(
            Opts::new("core_link_rtt_seconds", "Last ping round trip on each link to a core node"),
            &["node", "lane"],
        )
        .unwrap_or_else(|e| panic!("metric core_link_rtt_seconds: {e}"));
        let _ = r.register(Box::new(link_rtt.clone()));
        Metrics {
            link_rtt,
            proxy_requests: vec(
                "proxy_requests_total",
                "Proxied HTTP requests by upstream and status class",
                &["upstream", "code"],
            ),
            proxy_request_seconds,
            proxy_rejected,
            proxy_retries: counter("proxy_retries_total", "Proxied requests sent to another backend after a failure"),
            proxy_ejections: vec(
                "proxy_ejections_total",
                "Backends ejected after failing requests in a row",
                &["upstream"],
            ),
            proxy_backend_up,
            proxy_tunnels: gauge("proxy_tunnels", "Upgraded connections (WebSockets) open through the access layer"),
            sessions: gauge("sessions", "Authenticated client sessions"),
            connects: counter("connects_total", "Client connections accepted"),
            logins_paced: counter("logins_paced_total", "Logins that waited their turn under logins_per_sec"),
            connect_rejected: by_reason("connect_rejected_total", "Connections refused before a session started"),
            closed_bad_input: by_reason("closed_bad_input_total", "Sessions closed for malformed or unexpected input"),
            sends: counter("sends_total", "SEND frames forwarded to the core"),
            recv_delivered: counter("recv_delivered_total", "RECV frames queued to clients"),
            slow_clients_closed: counter(
                "slow_clients_closed_total",
                "Clients closed as too slow: their queue full, a write timed out, or RECVs not acked",
            ),
            links_up: gauge("core_links_up", "Links to core nodes that are up"),
            resent_sends: counter("resent_sends_total", "SENDs lost with a core link and sent again over another"),
            links_quic: gauge("core_links_quic", "Links to core nodes that are up over QUIC (the rest use TCP)"),
            registry: r,
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

//! Prometheus metrics of a core node, served on `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub messages_stored: IntCounter,
    pub messages_rejected: IntCounter,
    pub deliveries: IntCounter,
    pub deliveries_dropped: IntCounter,
    pub batch_size: Histogram,
    pub commit_latency: Histogram,
    pub edge_links: IntGauge,
    /// SENDs received, by link lane: shows requests spreading over an edge's links.
    pub edge_sends: IntCounterVec,
    pub online_sessions: IntGauge,
    /// Raft state per group (label `slot`).
    pub raft_term: IntGaugeVec,
    pub raft_last_applied: IntGaugeVec,
    pub raft_is_leader: IntGaugeVec,
    pub raft_leader_id: IntGaugeVec,
    pub raft_last_log_index: IntGaugeVec,
    pub raft_apply_lag: IntGaugeVec,
    /// On a group's leader: entries each follower still lacks (labels `slot`, `peer`).
    pub raft_replication_lag: IntGaugeVec,
    /// Groups whose leader this node is.
    pub raft_groups_led: IntGauge,
    pub db_size_bytes: IntGauge,
    pub snapshots_installed: IntCounter,
    pub forwarded_batches: IntCounter,
    /// Webhook events waiting in each slot's outbox (as its leader last counted, up to 100,000).
    pub webhook_backlog: IntGaugeVec,
    /// Webhook POSTs by event and result (`ok`, `failed`).
    pub webhook_posts: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(c.clone()));
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(g.clone()));
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(g.clone()));
    g
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(c.clone()));
    c
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(h.clone()));
    h
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new_custom(Some("tern_core".into()), None).unwrap_or_default();
        let edge_sends =
            IntCounterVec::new(Opts::new("edge_sends_total", "SENDs received from edges, by link lane"), &["lane"])
                .unwrap_or_else(|e| panic!("metric edge_sends_total: {e}"));
        let _ = r.register(Box::new(edge_sends.clone()));
        Metrics {
            edge_sends,
            messages_stored: counter(&r, "messages_stored_total", "Messages committed and applied"),
            messages_rejected: counter(&r, "messages_rejected_total", "Sends refused by the state machine"),
            deliveries: counter(&r, "deliveries_total", "Message copies handed to edge links"),
            deliveries_dropped: counter(
                &r,
                "deliveries_dropped_total",
                "Deliveries dropped because an edge link queue was full",
            ),
            batch_size: histogram(
                &r,
                "raft_batch_commands",
                "Commands per raft entry",
                prometheus::exponential_buckets(1.0, 2.0, 12).unwrap_or_default(),
            ),
            commit_latency: histogram(
                &r,
                "raft_commit_seconds",
                "Time from proposal to applied",
                prometheus::exponential_buckets(0.0001, 2.0, 16).unwrap_or_default(),
            ),
            edge_links: gauge(&r, "edge_links", "Connected edge links, every lane counted"),
            online_sessions: gauge(&r, "online_sessions", "Client sessions announced by edges"),
            raft_term: gauge_vec(&r, "raft_term", "Current raft term of the group", &["slot"]),
            raft_last_applied: gauge_vec(&r, "raft_last_applied", "Last applied log index of the group", &["slot"]),
            raft_is_leader: gauge_vec(&r, "raft_is_leader", "1 when this node leads the group", &["slot"]),
            raft_leader_id: gauge_vec(
                &r,
                "raft_leader_id",
                "Node id of the group's leader as this node knows it (0: none)",
                &["slot"],
            ),
            raft_last_log_index: gauge_vec(
                &r,
                "raft_last_log_index",
                "Last log index of the group this node holds",
                &["slot"],
            ),
            raft_apply_lag: gauge_vec(&r, "raft_apply_lag", "Log entries held but not yet applied", &["slot"]),
            raft_replication_lag: gauge_vec(
                &r,
                "raft_replication_lag",
                "On a group's leader: log entries a follower still lacks",
                &["slot", "peer"],
            ),
            raft_groups_led: gauge(&r, "raft_groups_led", "Raft groups (slots) this node leads"),
            db_size_bytes: gauge(&r, "db_sst_bytes", "Size of RocksDB SST files"),
            forwarded_batches: counter(
                &r,
                "forwarded_batches_total",
                "Command groups this follower sent to the leader",
            ),
            snapshots_installed: counter(
                &r,
                "snapshots_installed_total",
                "Snapshots received from the leader and installed",
            ),
            webhook_backlog: gauge_vec(&r, "webhook_backlog", "Webhook events waiting in the outbox", &["slot"]),
            webhook_posts: counter_vec(
                &r,
                "webhook_posts_total",
                "Webhook POSTs by event and result",
                &["event", "result"],
            ),
            registry: r,
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

//! Settings of one core node (TOML, every key optional).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tern_shared::config::{check_addr, check_dial_addr, is_loopback, ConfigError, Validate};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoreConfig {
    /// Raft node id, unique in the cluster, > 0.
    pub node_id: u64,
    /// RocksDB and snapshots live here.
    pub data_dir: PathBuf,
    /// Business HTTP API (WuKongIM's default port).
    pub http_addr: String,
    /// Where edges open their links.
    pub link_addr: String,
    /// Mutual TLS for edge links: when set, only edges whose certificate chains to `link_tls.ca` link.
    pub link_tls: Option<tern_shared::tls::LinkTls>,
    /// Mutual TLS between core nodes on the raft port: every node presents `cert` and accepts only peers
    /// whose certificate chains to `ca` and names `server_name`.
    pub raft_tls: Option<tern_shared::tls::LinkTls>,
    /// Edge links over QUIC (UDP; empty disables; needs `link_tls`). Edges fall back to `link_addr`.
    pub link_quic_addr: String,
    /// Where the other core nodes reach this one (raft, forwarded writes). Keep it on a private network.
    pub raft_addr: String,
    /// Every voter of the cluster, this node included; empty runs a single-node cluster. The node with
    /// the lowest id creates the cluster on first start.
    pub peers: Vec<PeerConfig>,
    /// Peers to dial at another address than the one they advertise (NAT, proxies): same shape as `peers`.
    pub dial: Vec<PeerConfig>,
    /// A node that joins a running cluster: it never creates one, and waits to be added
    /// (`POST /cluster/nodes/add` on any node).
    pub join: bool,
    /// The business token (WuKongIM's manager token): required in the `token` header of the
    /// users/channels/messages API when set. Required when `http_addr` is not loopback.
    pub manager_token: Option<String>,
    /// The operator's token for `/cluster/*` (membership, leadership); the business token cannot call
    /// those. It is accepted on the business API too. Required when `http_addr` is not loopback.
    pub admin_token: Option<String>,
    /// Lets raft, links and the API listen off loopback without mutual TLS and tokens: only for private
    /// test networks, and logged as a warning at every start.
    pub insecure: bool,
    /// Slots, each its own raft group; fixed at cluster creation (recorded in the data dir).
    pub slots: u16,
    pub raft: RaftSettings,
    pub batch: BatchSettings,
    pub http: HttpLimits,
    /// Frames queued per edge link before deliveries to that edge are dropped.
    pub link_queue: usize,
    /// Payload bytes of one link's SENDs waiting for their commit; past it the link is not read until
    /// some are answered.
    pub link_send_budget: usize,
    /// The newest edge↔core link version this node accepts (this release's by default). During an
    /// upgrade, set it to the previous release's until every node runs the new one, so no edge is left
    /// speaking a version that some node cannot.
    pub max_link_version: u16,
    /// The newest raft port version this node speaks (this release's by default). Nodes agree on the
    /// newest both speak by themselves; setting it lower makes a node talk as an older release would.
    pub max_raft_version: u16,
    /// The deployment's regions, for `/route`'s fallback order (rendered from `deploy/regions`).
    pub regions: Vec<RouteRegion>,
    pub webhook: WebhookSettings,
}

/// The webhook names this node can send (WuKongIM's).
pub const WEBHOOK_EVENTS: [&str; 3] = ["msg.notify", "msg.offline", "user.onlinestatus"];

/// `[webhook]`: events POSTed to the business server (`url?event=NAME`), from a durable outbox, at least
/// once, signed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where events go (empty: no webhooks).
    pub url: String,
    /// Signs each body: header `X-Tern-Signature: sha256=<hex HMAC-SHA256 of the body>`. Required with a
    /// `url` unless `insecure`.
    pub secret: Option<String>,
    /// Which events to send (`msg.notify`, `msg.offline`, `user.onlinestatus`).
    pub events: Vec<String>,
    /// Outbox rows per delivery round of a slot.
    pub batch_size: usize,
    /// How often a slot's leader looks for rows to deliver.
    pub interval_ms: u64,
    /// A failed delivery is tried again after this, doubling up to `retry_max_ms`, until it succeeds.
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    /// Time one POST has for its answer.
    pub timeout_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            url: String::new(),
            secret: None,
            events: WEBHOOK_EVENTS.iter().map(|e| e.to_string()).collect(),
            batch_size: 100,
            interval_ms: 200,
            retry_min_ms: 500,
            retry_max_ms: 30_000,
            timeout_ms: 5_000,
        }
    }
}

impl WebhookSettings {
    /// Whether `event` goes to the business server.
    pub fn sends(&self, event: &str) -> bool {
        !self.url.is_empty() && self.events.iter().any(|e| e == event)
    }
}

/// A region as `/route` names it: its stable DNS name and the other regions nearest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRegion {
    pub id: String,
    pub dns_name: String,
    #[serde(default)]
    pub fallback: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: u64,
    pub raft_addr: String,
}

impl PeerConfig {
    /// Parses `1=10.0.0.1:5302,2=10.0.0.2:5302` (the `--peers` flag).
    pub fn parse_list(s: &str) -> Result<Vec<PeerConfig>, ConfigError> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let (id, addr) = p
                    .split_once('=')
                    .ok_or_else(|| ConfigError::invalid("peers", format!("`{p}` is not id=host:port")))?;
                let id =
                    id.trim().parse().map_err(|_| ConfigError::invalid("peers", format!("`{id}` is not a node id")))?;
                Ok(PeerConfig { id, raft_addr: addr.trim().to_string() })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot (and compact the log) after this many entries.
    pub snapshot_every: u64,
    /// Entries kept in the log behind the latest snapshot, so briefly absent followers catch up from the
    /// log rather than by snapshot.
    pub keep_logs: u64,
    /// A write not committed in this time fails (e.g. a leader cut off from its majority) instead of
    /// hanging; the client may resend.
    pub commit_timeout_ms: u64,
    /// How often a node checks whether it leads more groups than its share and hands one over
    /// (0: never; leadership then moves only on failures and `POST /cluster/leader/balance`).
    pub balance_interval_ms: u64,
    /// Voters that should lead every slot while one of them is up (the deployment's home region's):
    /// the balancer hands them leadership from the others (empty: spread over all voters).
    pub preferred_leaders: Vec<u64>,
}

/// `[http]` in the core's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time a connection has to send a request's head (its first, or the next on a kept-alive one).
    pub header_timeout_ms: u64,
    /// Time a users/channels/messages request has, body included, before it is answered 503.
    pub request_timeout_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits { max_connections: 10_000, header_timeout_ms: 10_000, request_timeout_ms: 30_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSettings {
    pub max_commands: usize,
    pub max_bytes: usize,
    pub max_in_flight: usize,
    /// While a group has other batches in flight, how long a new batch waits for more commands.
    pub linger_us: u64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            node_id: 1,
            data_dir: PathBuf::from("./data/core"),
            http_addr: "127.0.0.1:5001".into(),
            link_addr: "127.0.0.1:5301".into(),
            link_tls: None,
            link_quic_addr: String::new(),
            raft_tls: None,
            raft_addr: "127.0.0.1:5302".into(),
            peers: Vec::new(),
            join: false,
            dial: Vec::new(),
            manager_token: None,
            admin_token: None,
            insecure: false,
            slots: tern_shared::channel::DEFAULT_SLOTS,
            raft: RaftSettings::default(),
            batch: BatchSettings::default(),
            http: HttpLimits::default(),
            link_queue: 16 * 1024,
            link_send_budget: 64 << 20,
            max_link_version: tern_shared::link::LINK_VERSION,
            max_raft_version: tern_wire::rpc::RAFT_PORT_VERSION,
            regions: Vec::new(),
            webhook: WebhookSettings::default(),
        }
    }
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            // A follower campaigns `election_max_ms` (openraft's leader lease) plus 200–350 ms after it
            // last heard from the leader, checked every 1.5 heartbeats: 0.55–0.85 s without a leader.
            // openraft also gives each AppendEntries one heartbeat to answer: 50 ms timed out multi-MB
            // appends under load and made leadership churn.
            heartbeat_ms: 100,
            election_min_ms: 200,
            election_max_ms: 350,
            snapshot_every: 20_000,
            keep_logs: 1000,
            commit_timeout_ms: 10_000,
            balance_interval_ms: 10_000,
            preferred_leaders: Vec::new(),
        }
    }
}

impl Default for BatchSettings {
    fn default() -> Self {
        let d = crate::raft::proposer::BatchLimits::default();
        BatchSettings {
            max_commands: d.max_commands,
            max_bytes: d.max_bytes,
            max_in_flight: d.max_in_flight,
            linger_us: d.linger.as_micros() as u64,
        }
    }
}

impl Validate for CoreConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(ConfigError::invalid("node_id", "must be greater than 0"));
        }
        check_addr("http_addr", &self.http_addr, false)?;
        check_addr("link_addr", &self.link_addr, false)?;
        if !tern_shared::link::speaks(self.max_link_version) {
            let (min, max) = (tern_shared::link::MIN_LINK_VERSION, tern_shared::link::LINK_VERSION);
            return Err(ConfigError::invalid("max_link_version", format!("this release speaks {min} to {max}")));
        }
        let raft_versions = tern_wire::rpc::MIN_RAFT_PORT_VERSION..=tern_wire::rpc::RAFT_PORT_VERSION;
        if !raft_versions.contains(&self.max_raft_version) {
            return Err(ConfigError::invalid("max_raft_version", format!("this release speaks {raft_versions:?}")));
        }
        check_addr("raft_addr", &self.raft_addr, false)?;
        check_addr("link_quic_addr", &self.link_quic_addr, true)?;
        if !self.link_quic_addr.is_empty() && self.link_tls.is_none() {
            return Err(ConfigError::invalid("link_quic_addr", "QUIC links need [link_tls]"));
        }
        if !self.peers.is_empty() {
            if !self.peers.iter().any(|p| p.id == self.node_id) {
                return Err(ConfigError::invalid("peers", format!("must include this node (id {})", self.node_id)));
            }
            for p in &self.peers {
                if p.id == 0 {
                    return Err(ConfigError::invalid("peers", "node ids must be greater than 0"));
                }
                check_dial_addr("peers.raft_addr", &p.raft_addr)?;
            }
        }
        for p in &self.dial {
            check_dial_addr("dial.raft_addr", &p.raft_addr)?;
        }
        if self.slots == 0 || self.slots > 4096 {
            return Err(ConfigError::invalid("slots", "must be between 1 and 4096"));
        }
        if self.manager_token.as_deref() == Some("") {
            return Err(ConfigError::invalid("manager_token", "must not be empty (leave it out to disable)"));
        }
        if self.admin_token.as_deref() == Some("") {
            return Err(ConfigError::invalid("admin_token", "must not be empty (leave it out to disable)"));
        }
        if self.admin_token.is_some() && self.admin_token == self.manager_token {
            return Err(ConfigError::invalid("admin_token", "must differ from manager_token"));
        }
        if !self.insecure {
            self.check_exposure()?;
        }
        let r = &self.raft;
        if r.heartbeat_ms == 0 || r.election_min_ms <= r.heartbeat_ms {
            return Err(ConfigError::invalid("raft.election_min_ms", "must be greater than raft.heartbeat_ms"));
        }
        if r.election_max_ms <= r.election_min_ms {
            return Err(ConfigError::invalid("raft.election_max_ms", "must be greater than raft.election_min_ms"));
        }
        if r.commit_timeout_ms < 100 {
            return Err(ConfigError::invalid("raft.commit_timeout_ms", "must be at least 100"));
        }
        if r.snapshot_every == 0 {
            return Err(ConfigError::invalid("raft.snapshot_every", "must be greater than 0"));
        }
        if self.batch.max_commands == 0 || self.batch.max_commands > crate::store::apply::MAX_BATCH {
            return Err(ConfigError::invalid("batch.max_commands", "must be between 1 and 4096"));
        }
        if self.batch.max_in_flight == 0 {
            return Err(ConfigError::invalid("batch.max_in_flight", "must be greater than 0"));
        }
        if self.batch.linger_us > 100_000 {
            return Err(ConfigError::invalid("batch.linger_us", "must be at most 100000 (0.1 s)"));
        }
        if !(1 << 20..=1 << 30).contains(&self.link_send_budget) {
            return Err(ConfigError::invalid("link_send_budget", "must be between 1 MiB and 1 GiB"));
        }
        if self.http.max_connections == 0 {
            return Err(ConfigError::invalid("http.max_connections", "must be greater than 0"));
        }
        if self.http.header_timeout_ms < 100 {
            return Err(ConfigError::invalid("http.header_timeout_ms", "must be at least 100"));
        }
        if self.http.request_timeout_ms < 100 {
            return Err(ConfigError::invalid("http.request_timeout_ms", "must be at least 100"));
        }
        if self.link_queue < 16 {
            return Err(ConfigError::invalid("link_queue", "must be at least 16"));
        }
        self.check_webhook()
    }
}

const INSECURE_HINT: &str = "or set `insecure = true`, only on a private test network";

impl CoreConfig {
    fn check_webhook(&self) -> Result<(), ConfigError> {
        let w = &self.webhook;
        if let Some(bad) = w.events.iter().find(|e| !WEBHOOK_EVENTS.contains(&e.as_str())) {
            return Err(ConfigError::invalid("webhook.events", format!("`{bad}` is not one of {WEBHOOK_EVENTS:?}")));
        }
        if w.url.is_empty() {
            return Ok(());
        }
        if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            return Err(ConfigError::invalid("webhook.url", "must be an http:// or https:// URL"));
        }
        if w.secret.as_deref().unwrap_or("").is_empty() && !self.insecure {
            return Err(ConfigError::invalid(
                "webhook.secret",
                format!("required with webhook.url, so the receiver can tell events are ours ({INSECURE_HINT})"),
            ));
        }
        if w.batch_size == 0 || w.batch_size > 1000 {
            return Err(ConfigError::invalid("webhook.batch_size", "must be between 1 and 1000"));
        }
        if w.interval_ms == 0 || w.retry_min_ms == 0 || w.timeout_ms == 0 {
            return Err(ConfigError::invalid("webhook", "interval_ms, retry_min_ms and timeout_ms must be above 0"));
        }
        if w.retry_max_ms < w.retry_min_ms {
            return Err(ConfigError::invalid("webhook.retry_max_ms", "must be at least webhook.retry_min_ms"));
        }
        Ok(())
    }

    /// Ports reachable from other machines must authenticate their peers (docs/SECURITY.md).
    fn check_exposure(&self) -> Result<(), ConfigError> {
        if !is_loopback(&self.http_addr) {
            let why =
                |token: &str| format!("http_addr {} is not loopback: set {token} ({INSECURE_HINT})", self.http_addr);
            if self.manager_token.is_none() {
                return Err(ConfigError::invalid("manager_token", why("a business token")));
            }
            if self.admin_token.is_none() {
                return Err(ConfigError::invalid("admin_token", why("an admin token for /cluster/*")));
            }
        }
        let link_exposed =
            [&self.link_addr, &self.link_quic_addr].into_iter().find(|a| !a.is_empty() && !is_loopback(a));
        if let (Some(addr), None) = (link_exposed, &self.link_tls) {
            return Err(ConfigError::invalid(
                "link_tls",
                format!("edge links on {addr} are not loopback: set [link_tls] for mutual TLS ({INSECURE_HINT})"),
            ));
        }
        let raft_exposed = std::iter::once(&self.raft_addr)
            .chain(self.peers.iter().chain(&self.dial).map(|p| &p.raft_addr))
            .find(|a| !is_loopback(a));
        if let (Some(addr), None) = (raft_exposed, &self.raft_tls) {
            return Err(ConfigError::invalid(
                "raft_tls",
                format!("raft traffic to {addr} leaves loopback: set [raft_tls] for mutual TLS ({INSECURE_HINT})"),
            ));
        }
        Ok(())
    }

    /// What `insecure = true` leaves open, one line each, for the start-up warning.
    pub fn insecure_ports(&self) -> Vec<String> {
        let mut open = Vec::new();
        if self.manager_token.is_none() || self.admin_token.is_none() {
            open.push(format!("HTTP API {} without a business or admin token", self.http_addr));
        }
        if self.link_tls.is_none() {
            open.push(format!("edge links {} without mutual TLS", self.link_addr));
        }
        if self.raft_tls.is_none() {
            open.push(format!("raft {} without mutual TLS", self.raft_addr));
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        let e = tern_shared::config::parse::<CoreConfig>("t.toml", "slots = 0").unwrap_err();
        assert!(e.to_string().contains("`slots`"), "{e}");
        let e = tern_shared::config::parse::<CoreConfig>("t.toml", "[raft]\nelection_max_ms = 1").unwrap_err();
        assert!(e.to_string().contains("raft.election_max_ms"), "{e}");
        let e = tern_shared::config::parse::<CoreConfig>("t.toml", "[batch]\nlinger_us = 200000").unwrap_err();
        assert!(e.to_string().contains("batch.linger_us"), "{e}");
        let e = tern_shared::config::parse::<CoreConfig>("t.toml", "http_adr = \"x\"").unwrap_err();
        assert!(e.to_string().contains("http_adr"), "{e}");
        assert!(tern_shared::config::parse::<CoreConfig>("t.toml", "").is_ok());
        let hook = "[webhook]\nurl = \"http://127.0.0.1:9/hook\"\n";
        let e = tern_shared::config::parse::<CoreConfig>("t.toml", hook).unwrap_err();
        assert!(e.to_string().contains("webhook.secret"), "{e}");
        let e =
            tern_shared::config::parse::<CoreConfig>("t.toml", &format!("{hook}secret = \"s\"\nevents = [\"msg.x\"]"))
                .unwrap_err();
        assert!(e.to_string().contains("webhook.events"), "{e}");
        assert!(tern_shared::config::parse::<CoreConfig>("t.toml", &format!("{hook}secret = \"s\"")).is_ok());
    }

    fn mtls(table: &str) -> String {
        format!("[{table}]\ncert = \"n.pem\"\nkey = \"n.key\"\nca = \"ca.pem\"\n")
    }

    #[test]
    fn ports_off_loopback_need_authentication() {
        let parse = |t: &str| tern_shared::config::parse::<CoreConfig>("t.toml", t);
        let err = |t: &str| parse(t).unwrap_err().to_string();
        assert!(err("http_addr = \"0.0.0.0:5001\"").contains("`manager_token`"));
        assert!(err("http_addr = \"0.0.0.0:5001\"\nmanager_token = \"b\"").contains("`admin_token`"));
        assert!(err("manager_token = \"b\"\nadmin_token = \"b\"").contains("must differ"));
        assert!(err("link_addr = \"10.0.0.1:5301\"").contains("`link_tls`"));
        let quic = format!("link_quic_addr = \"0.0.0.0:5303\"\n{}", mtls("link_tls"));
        assert!(parse(&quic).is_ok(), "QUIC links are always mutual TLS");
        assert!(err("raft_addr = \"[::]:5302\"").contains("`raft_tls`"));
        let remote_peer = "peers = [{id = 1, raft_addr = \"127.0.0.1:5302\"}, {id = 2, raft_addr = \"10.0.0.2:5302\"}]";
        assert!(err(remote_peer).contains("`raft_tls`"), "raft to another machine is exposed too");

        let secure = format!(
            "http_addr = \"0.0.0.0:5001\"\nlink_addr = \"0.0.0.0:5301\"\nraft_addr = \"0.0.0.0:5302\"\n\
             manager_token = \"b\"\nadmin_token = \"a\"\n{}{}",
            mtls("link_tls"),
            mtls("raft_tls")
        );
        assert!(parse(&secure).is_ok());
        let open =
            "insecure = true\nhttp_addr = \"0.0.0.0:5001\"\nlink_addr = \"0.0.0.0:5301\"\nraft_addr = \"0.0.0.0:5302\"";
        assert_eq!(parse(open).unwrap().insecure_ports().len(), 3);
        assert!(parse("").is_ok(), "the defaults are loopback");
        assert!(is_loopback("localhost:1") && is_loopback("[::1]:1") && !is_loopback("core1:5302"));
    }
}

//! Settings of one core node (TOML, every key optional).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tern_shared::config::{check_addr, ConfigError, Validate};

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
    /// Required in the `token` header of API calls when set.
    pub manager_token: Option<String>,
    /// Slots, each its own raft group; fixed at cluster creation (recorded in the data dir).
    pub slots: u16,
    pub raft: RaftSettings,
    pub batch: BatchSettings,
    /// Frames queued per edge link before deliveries to that edge are dropped.
    pub link_queue: usize,
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
            http_addr: "0.0.0.0:5001".into(),
            link_addr: "0.0.0.0:5301".into(),
            link_tls: None,
            link_quic_addr: String::new(),
            raft_tls: None,
            raft_addr: "0.0.0.0:5302".into(),
            peers: Vec::new(),
            join: false,
            dial: Vec::new(),
            manager_token: None,
            slots: tern_shared::channel::DEFAULT_SLOTS,
            raft: RaftSettings::default(),
            batch: BatchSettings::default(),
            link_queue: 16 * 1024,
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
                check_addr("peers.raft_addr", &p.raft_addr, false)?;
            }
        }
        for p in &self.dial {
            check_addr("dial.raft_addr", &p.raft_addr, false)?;
        }
        if self.slots == 0 || self.slots > 4096 {
            return Err(ConfigError::invalid("slots", "must be between 1 and 4096"));
        }
        if self.manager_token.as_deref() == Some("") {
            return Err(ConfigError::invalid("manager_token", "must not be empty (leave it out to disable)"));
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
        if self.link_queue < 16 {
            return Err(ConfigError::invalid("link_queue", "must be at least 16"));
        }
        Ok(())
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
    }
}

//! A client that outlives its edge and its region. It resolves the deployment's domain through DNS (the
//! nearest healthy region's edges); when its connection drops it walks its region's fallback list
//! without waiting for DNS to notice: the region's other edges, then the other regions nearest first by
//! their stable names, then the domain again. Each attempt waits a full-jitter backoff first, so a
//! region's clients do not all arrive at once. Back online, it syncs every channel it follows from the
//! last seq it saw, so nothing sent meanwhile is missed, and a send cut off before its SENDACK is resent
//! with the same `client_msg_no`, which the core deduplicates.

use super::backoff::Backoff;
use super::{Client, ClientError, ClientOptions, Incoming, Outgoing, Received};
use crate::proto::{self, Reason};
use base64::Engine;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Resolver, TokioResolver};
use rand::Rng;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

/// What a client ships with: `bootstrap.json` from `tern deploy render` (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Bootstrap {
    pub domain: String,
    pub regions: Vec<BootRegion>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BootRegion {
    pub id: String,
    pub dns_name: String,
    /// The other regions, nearest first.
    #[serde(default)]
    pub fallback: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RoamOptions {
    pub bootstrap: Bootstrap,
    /// The DNS server to ask; the system's resolvers when `None`.
    pub dns: Option<SocketAddr>,
    /// The edges' client port (`ports.edge_tcp`).
    pub port: u16,
    /// Who connects; `addr` is filled in per attempt, and `source` also sends the DNS queries.
    pub client: ClientOptions,
    /// HTTP API base URLs for `/channel/messagesync`, tried in order, and the token they want.
    pub api: Vec<String>,
    pub api_token: Option<String>,
    pub backoff: Backoff,
    /// How long to keep trying after a loss before giving up.
    pub give_up: Duration,
}

impl RoamOptions {
    pub fn new(bootstrap: Bootstrap, port: u16, client: ClientOptions) -> RoamOptions {
        RoamOptions {
            bootstrap,
            dns: None,
            port,
            client,
            api: Vec::new(),
            api_token: None,
            backoff: Backoff::default(),
            give_up: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RoamError {
    /// The token was refused: trying other edges would not help.
    #[error("the edge refused the login with reason code {0}")]
    Refused(u8),
    #[error("no edge answered within {0:?} ({1} attempts; last error: {2})")]
    GaveUp(Duration, u32, String),
    #[error("DNS resolver: {0}")]
    Resolver(String),
}

/// Logins refused for who the client is, not for where it connected.
fn refused_for_good(code: u8) -> bool {
    [Reason::AuthFail, Reason::Ban, Reason::ClientKeyIsEmpty].iter().any(|r| r.code() == code)
}

/// SENDACK reasons that mean "not now": a leader being elected, a node or edge going away.
fn retryable(code: u8) -> bool {
    [Reason::SystemError, Reason::ForwardError, Reason::NodeMatchError, Reason::NodeNotMatch, Reason::RateLimit]
        .iter()
        .any(|r| r.code() == code)
}

/// The names to resolve after losing an edge of `region` (unknown: `None`), in order.
pub fn plan<'a>(b: &'a Bootstrap, region: Option<&str>) -> Vec<&'a str> {
    let mut names = Vec::new();
    match region.and_then(|id| b.regions.iter().find(|r| r.id == id)) {
        Some(r) => {
            names.push(r.dns_name.as_str());
            for id in &r.fallback {
                if let Some(f) = b.regions.iter().find(|x| &x.id == id) {
                    names.push(f.dns_name.as_str());
                }
            }
            names.push(b.domain.as_str());
        }
        None => {
            names.push(b.domain.as_str());
            names.extend(b.regions.iter().map(|r| r.dns_name.as_str()));
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(*n));
    names
}

pub struct Roaming {
    opts: RoamOptions,
    resolver: TokioResolver,
    http: reqwest::Client,
    client: Option<Client>,
    /// The edge of the live connection, or of the last one.
    at: Option<SocketAddr>,
    /// Per followed channel, the last seq delivered from others.
    seqs: HashMap<(String, u8), u32>,
    synced: VecDeque<Received>,
    reconnects: u32,
}

impl Roaming {
    /// Resolves the domain and connects to the first edge that takes the login.
    pub async fn connect(opts: RoamOptions) -> Result<Roaming, RoamError> {
        let resolver = resolver(opts.dns, opts.client.source)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| RoamError::Resolver(e.to_string()))?;
        let mut r = Roaming {
            opts,
            resolver,
            http,
            client: None,
            at: None,
            seqs: HashMap::new(),
            synced: VecDeque::new(),
            reconnects: 0,
        };
        r.reconnect().await?;
        r.reconnects = 0;
        Ok(r)
    }

    /// The edge this client is (or was last) connected to.
    pub fn edge(&self) -> Option<SocketAddr> {
        self.at
    }

    /// Connections made after the first.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    /// Syncs this channel after every reconnect, from the seq after `last_seq`.
    pub fn follow(&mut self, channel_id: &str, channel_type: u8, last_seq: u32) {
        let seq = self.seqs.entry((channel_id.to_string(), channel_type)).or_insert(0);
        *seq = (*seq).max(last_seq);
    }

    /// Sends `msg` and waits for a successful SENDACK, reconnecting and resending (same
    /// `client_msg_no`) across losses and retryable refusals until `give_up`.
    pub async fn send(&mut self, mut msg: Outgoing) -> Result<proto::Sendack, RoamError> {
        if msg.client_msg_no.is_empty() {
            msg.client_msg_no = super::random_msg_no();
        }
        let deadline = Instant::now() + self.opts.give_up;
        let (mut tries, mut timeouts) = (0u32, 0u32);
        let mut last = String::new();
        while Instant::now() < deadline {
            if self.client.is_none() {
                self.reconnect().await?;
            }
            let Some(client) = &self.client else { continue };
            match client.send(msg.clone()).await {
                Ok(ack) if ack.reason_code == Reason::Success.code() || !retryable(ack.reason_code) => return Ok(ack),
                Ok(ack) => last = format!("SENDACK reason {}", ack.reason_code),
                // A slow answer (a leader being elected) is not a lost connection: resend on it once
                // before moving elsewhere.
                Err(ClientError::Timeout) if timeouts == 0 => {
                    timeouts += 1;
                    last = ClientError::Timeout.to_string();
                }
                Err(e) => {
                    last = e.to_string();
                    self.client = None;
                    timeouts = 0;
                }
            }
            tries += 1;
            // Short waits: the connection is up, and a leader is usually elected within seconds.
            tokio::time::sleep(self.opts.backoff.wait(tries.min(3), unit())).await;
        }
        Err(RoamError::GaveUp(self.opts.give_up, tries, last))
    }

    /// The next message from another sender, in seq order per channel and at most once, waiting up to
    /// `wait`; after a lost connection, first those the resync found.
    pub async fn recv(&mut self, wait: Duration) -> Option<Received> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(m) = self.synced.pop_front() {
                return Some(m);
            }
            if self.client.is_none() && self.reconnect().await.is_err() {
                return None;
            }
            let client = self.client.as_mut()?;
            match tokio::time::timeout_at(deadline, client.recv()).await {
                Err(_) => return None,
                Ok(Some(Incoming::Message(m))) => {
                    let last = self.seqs.entry((m.channel_id.clone(), m.channel_type)).or_insert(0);
                    if m.message_seq > *last {
                        *last = m.message_seq;
                        return Some(m);
                    }
                }
                Ok(Some(Incoming::Disconnect { .. })) | Ok(None) => self.client = None,
            }
        }
    }

    /// Connects down the plan with backoff, then resyncs.
    async fn reconnect(&mut self) -> Result<(), RoamError> {
        let lost = self.at;
        self.client = None;
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut last = String::from("no address resolved");
        while started.elapsed() < self.opts.give_up {
            for addr in self.candidates(lost).await {
                tokio::time::sleep(self.opts.backoff.wait(attempt, unit())).await;
                attempt += 1;
                let mut opts = self.opts.client.clone();
                opts.addr = addr.to_string();
                match Client::connect(opts).await {
                    Ok(c) => {
                        self.client = Some(c);
                        self.at = Some(addr);
                        if lost.is_some() {
                            tracing::info!(uid = %self.opts.client.uid, edge = %addr, took = ?started.elapsed(), attempts = attempt, "reconnected");
                            self.reconnects += 1;
                            self.resync().await;
                        }
                        return Ok(());
                    }
                    Err(ClientError::Rejected(code)) if refused_for_good(code) => return Err(RoamError::Refused(code)),
                    Err(e) => last = format!("{addr}: {e}"),
                }
                if started.elapsed() >= self.opts.give_up {
                    break;
                }
            }
            if attempt == 0 {
                // Nothing resolved: wait before asking DNS again.
                tokio::time::sleep(self.opts.backoff.wait(3, unit())).await;
            }
        }
        Err(RoamError::GaveUp(self.opts.give_up, attempt, last))
    }

    /// Edges to try after losing `lost`: down the plan for its region, `lost` itself last.
    async fn candidates(&self, lost: Option<SocketAddr>) -> Vec<SocketAddr> {
        let b = &self.opts.bootstrap;
        // Each name is asked once a round: finding the lost edge's region resolves the region names
        // the plan then walks.
        let mut answers: HashMap<&str, Vec<IpAddr>> = HashMap::new();
        let mut region = None;
        if let Some(lost) = lost {
            for r in &b.regions {
                let ips = self.resolve(&r.dns_name).await;
                let found = ips.contains(&lost.ip());
                answers.insert(&r.dns_name, ips);
                if found {
                    region = Some(r.id.as_str());
                    break;
                }
            }
        }
        let mut out: Vec<SocketAddr> = Vec::new();
        for name in plan(b, region) {
            let ips = match answers.remove(name) {
                Some(ips) => ips,
                None => self.resolve(name).await,
            };
            for ip in ips {
                let addr = SocketAddr::new(ip, self.opts.port);
                if Some(addr) != lost && !out.contains(&addr) {
                    out.push(addr);
                }
            }
        }
        out.extend(lost);
        out
    }

    async fn resolve(&self, name: &str) -> Vec<IpAddr> {
        match self.resolver.lookup_ip(name).await {
            Ok(ips) => ips.iter().collect(),
            Err(e) => {
                tracing::debug!(name, error = %e, "DNS lookup failed");
                Vec::new()
            }
        }
    }

    /// Fetches what every followed channel received since its last seq, from the first API that answers.
    async fn resync(&mut self) {
        let channels: Vec<(String, u8)> = self.seqs.keys().cloned().collect();
        for (channel_id, channel_type) in channels {
            let last = self.seqs.get(&(channel_id.clone(), channel_type)).copied().unwrap_or(0);
            match self.sync_from(&channel_id, channel_type, last).await {
                Some(found) => {
                    for m in found {
                        let seq = self.seqs.entry((channel_id.clone(), channel_type)).or_insert(0);
                        if m.message_seq > *seq {
                            *seq = m.message_seq;
                            if m.from_uid != self.opts.client.uid {
                                self.synced.push_back(m);
                            }
                        }
                    }
                }
                None => tracing::warn!(channel_id, "no API answered the resync; the channel may miss messages"),
            }
        }
    }

    async fn sync_from(&self, channel_id: &str, channel_type: u8, last: u32) -> Option<Vec<Received>> {
        let mut found = Vec::new();
        let mut start = u64::from(last) + 1;
        for _ in 0..1000 {
            let body = serde_json::json!({
                "login_uid": self.opts.client.uid, "channel_id": channel_id, "channel_type": channel_type,
                "start_message_seq": start, "end_message_seq": 0, "limit": 1000, "pull_mode": 1,
            });
            let page = self.sync_page(&body).await?;
            let more = page["more"].as_u64() == Some(1);
            for m in page["messages"].as_array().into_iter().flatten() {
                let seq = m["message_seq"].as_u64().unwrap_or(0);
                start = start.max(seq + 1);
                let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                found.push(Received {
                    flags: 0,
                    message_id: m["message_id"].as_i64().unwrap_or(0),
                    message_seq: u32::try_from(seq).unwrap_or(u32::MAX),
                    from_uid: text("from_uid"),
                    channel_id: text("channel_id"),
                    channel_type,
                    client_msg_no: text("client_msg_no"),
                    timestamp: m["timestamp"].as_i64().and_then(|t| i32::try_from(t).ok()).unwrap_or(0),
                    payload: base64::engine::general_purpose::STANDARD.decode(text("payload")).unwrap_or_default(),
                });
            }
            if !more {
                return Some(found);
            }
        }
        Some(found)
    }

    async fn sync_page(&self, body: &serde_json::Value) -> Option<serde_json::Value> {
        for base in &self.opts.api {
            let mut req = self.http.post(format!("{}/channel/messagesync", base.trim_end_matches('/'))).json(body);
            if let Some(t) = &self.opts.api_token {
                req = req.header("token", t);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => match r.json().await {
                    Ok(v) => return Some(v),
                    Err(e) => tracing::debug!(base, error = %e, "unreadable sync answer"),
                },
                Ok(r) => tracing::debug!(base, status = %r.status(), "sync refused"),
                Err(e) => tracing::debug!(base, error = %e, "sync failed"),
            }
        }
        None
    }
}

/// A random number in [0, 1) for the backoff (a plain function: `ThreadRng` must not live across an await).
fn unit() -> f64 {
    rand::thread_rng().gen()
}

fn resolver(dns: Option<SocketAddr>, source: Option<IpAddr>) -> Result<TokioResolver, RoamError> {
    let mut opts = ResolverOpts::default();
    // A region's loss must show in the next answer, not after a cached record's TTL.
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(1);
    opts.attempts = 2;
    let builder = match dns {
        Some(addr) => {
            let mut ns = NameServerConfig::new(addr, Protocol::Udp);
            ns.bind_addr = source.map(|ip| SocketAddr::new(ip, 0));
            let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
            Resolver::builder_with_config(config, TokioConnectionProvider::default())
        }
        None => Resolver::builder_tokio().map_err(|e| RoamError::Resolver(e.to_string()))?,
    };
    Ok(builder.with_options(opts).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bootstrap() -> Bootstrap {
        serde_json::from_value(serde_json::json!({
            "deployment": "local", "domain": "im.example",
            "regions": [
                {"id": "ap", "dns_name": "ap.im.example", "fallback": ["eu", "us"], "edges": []},
                {"id": "eu", "dns_name": "eu.im.example", "fallback": ["us", "ap"]},
                {"id": "us", "dns_name": "us.im.example", "fallback": ["eu", "ap"]},
            ]
        }))
        .unwrap()
    }

    #[test]
    fn a_lost_region_is_followed_by_its_fallbacks_then_the_domain() {
        let b = bootstrap();
        assert_eq!(plan(&b, Some("ap")), ["ap.im.example", "eu.im.example", "us.im.example", "im.example"]);
        assert_eq!(plan(&b, None), ["im.example", "ap.im.example", "eu.im.example", "us.im.example"]);
        assert_eq!(plan(&b, Some("gone")), plan(&b, None));
    }

    #[test]
    fn only_identity_refusals_stop_the_client() {
        assert!(refused_for_good(Reason::AuthFail.code()) && refused_for_good(Reason::Ban.code()));
        assert!(!refused_for_good(Reason::SystemError.code()));
        assert!(retryable(Reason::SystemError.code()) && !retryable(Reason::InDenyList.code()));
    }
}

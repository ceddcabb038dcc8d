//! Settings of the HTTP access layer (`[http_proxy]` in the edge's TOML).

use serde::{Deserialize, Serialize};
use tern_shared::config::{check_addr, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpProxyConfig {
    /// Plain HTTP listener (empty disables).
    pub addr: String,
    /// HTTPS listener, with the edge's `[[certs]]` chosen by SNI and reloaded like the client listeners.
    pub tls_addr: String,
    /// Upstream groups; a request goes to the one with the longest matching path prefix.
    pub upstreams: Vec<UpstreamConfig>,
    /// How often every backend is probed (active health check).
    pub health_interval_ms: u64,
    /// Consecutive failed requests to one backend before it is ejected (passive health check; 0: never).
    pub eject_after: u32,
    /// How long an ejected backend gets no requests.
    pub eject_ms: u64,
    pub connect_timeout_ms: u64,
    /// Longest wait for each read from a backend (not applied to upgraded WebSocket connections).
    pub read_timeout_ms: u64,
    /// Other backends tried after a failure: any request whose connect failed, idempotent ones after that.
    pub retries: usize,
    /// Requests per second one client address may make (0: no limit); past it the answer is 429.
    pub requests_per_sec_per_ip: u32,
    /// Requests one client address may have in flight at once, upgraded WebSockets included (0: no limit).
    pub max_inflight_per_ip: usize,
    /// Connections one client address may hold open at once (0: no limit); past it they are closed.
    pub max_conns_per_ip: usize,
    /// Every connection starts with a PROXY protocol header (v1 or v2) from a load balancer in front;
    /// its source address is the client for limits, logs and `X-Forwarded-For`.
    pub proxy_protocol: bool,
    /// One `tern_edge::access` log line per request.
    pub access_log: bool,
    /// Threads serving the proxy, each its own runtime without work stealing, as pingora runs its
    /// services (0: one per CPU).
    pub threads: usize,
    /// Forward the core's operator API (`/cluster/*`: membership, leadership) from the internet; off, the
    /// access layer answers 403 itself and operators reach a core node directly.
    pub forward_cluster: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    /// Path prefix routed here ("/" catches everything).
    pub prefix: String,
    /// Backend `host:port`s, load balanced round robin.
    pub addrs: Vec<String>,
    /// Path probed with GET (200 = healthy); empty: a TCP connect is the probe.
    pub health_path: String,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            name: "core".into(),
            prefix: "/".into(),
            addrs: vec!["127.0.0.1:5001".into()],
            health_path: "/health".into(),
        }
    }
}

impl Default for HttpProxyConfig {
    fn default() -> Self {
        HttpProxyConfig {
            addr: String::new(),
            tls_addr: String::new(),
            upstreams: vec![UpstreamConfig::default()],
            health_interval_ms: 1_000,
            eject_after: 2,
            eject_ms: 5_000,
            connect_timeout_ms: 1_000,
            read_timeout_ms: 30_000,
            retries: 2,
            requests_per_sec_per_ip: 0,
            max_inflight_per_ip: 0,
            max_conns_per_ip: 0,
            proxy_protocol: false,
            access_log: true,
            threads: 0,
            forward_cluster: false,
        }
    }
}

impl HttpProxyConfig {
    pub fn enabled(&self) -> bool {
        !self.addr.is_empty() || !self.tls_addr.is_empty()
    }

    pub fn validate(&self, have_certs: bool) -> Result<(), ConfigError> {
        check_addr("http_proxy.addr", &self.addr, true)?;
        check_addr("http_proxy.tls_addr", &self.tls_addr, true)?;
        if !self.tls_addr.is_empty() && !have_certs {
            return Err(ConfigError::invalid("http_proxy.tls_addr", "needs at least one [[certs]] entry"));
        }
        if !self.enabled() {
            return Ok(());
        }
        if self.upstreams.is_empty() {
            return Err(ConfigError::invalid("http_proxy.upstreams", "needs at least one upstream"));
        }
        let mut names = std::collections::HashSet::new();
        for u in &self.upstreams {
            if u.name.is_empty() || !names.insert(u.name.as_str()) {
                return Err(ConfigError::invalid(
                    "http_proxy.upstreams",
                    format!("name `{}` is empty or repeated", u.name),
                ));
            }
            if !u.prefix.starts_with('/') {
                return Err(ConfigError::invalid(
                    "http_proxy.upstreams",
                    format!("prefix of `{}` must start with /", u.name),
                ));
            }
            if !u.health_path.is_empty() && !u.health_path.starts_with('/') {
                return Err(ConfigError::invalid(
                    "http_proxy.upstreams",
                    format!("health_path of `{}` must start with /", u.name),
                ));
            }
            if u.addrs.is_empty() {
                return Err(ConfigError::invalid("http_proxy.upstreams", format!("`{}` has no addrs", u.name)));
            }
            if let Some(bad) = u.addrs.iter().find(|a| a.parse::<std::net::SocketAddr>().is_err()) {
                return Err(ConfigError::invalid(
                    "http_proxy.upstreams",
                    format!("`{}`: `{bad}` is not ip:port", u.name),
                ));
            }
        }
        if self.health_interval_ms < 100 {
            return Err(ConfigError::invalid("http_proxy.health_interval_ms", "must be at least 100"));
        }
        if self.connect_timeout_ms == 0 {
            return Err(ConfigError::invalid("http_proxy.connect_timeout_ms", "must be greater than 0"));
        }
        if self.read_timeout_ms == 0 {
            return Err(ConfigError::invalid("http_proxy.read_timeout_ms", "must be greater than 0"));
        }
        Ok(())
    }
}

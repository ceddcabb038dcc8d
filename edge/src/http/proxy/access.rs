//! What both request paths of the access layer (pingora's and the tunnels) share: the upstream groups
//! and routing by path prefix, per-address limits, and the access log.

use super::config::HttpProxyConfig;
use super::upstream::Upstream;
use crate::Edge;
use pingora_limits::inflight::{Guard, Inflight};
use pingora_limits::rate::Rate;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The body of an answer the access layer gives itself (the core's API error shape).
pub fn error_body(status: u16, msg: &str) -> String {
    serde_json::json!({ "status": status, "msg": msg }).to_string()
}

/// Whether `path` names `/cluster` or below once percent escapes, repeated slashes, dot segments and
/// letter case are set aside: any spelling a backend might take for it counts.
pub fn is_cluster_path(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                decoded.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&b| b == b'/' || b == b'\\') {
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments.first().is_some_and(|s| s.eq_ignore_ascii_case(b"cluster"))
}

/// Shared by every proxy thread.
pub struct Access {
    pub edge: Arc<Edge>,
    /// Longest prefix first, so the first match is the most specific.
    upstreams: Vec<Arc<Upstream>>,
    limits: Limits,
}

struct Limits {
    rate: Rate,
    inflight: Inflight,
    conns: Inflight,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { rate: Rate::new(Duration::from_secs(1)), inflight: Inflight::new(), conns: Inflight::new() }
    }
}

impl Access {
    pub fn new(edge: Arc<Edge>, mut upstreams: Vec<Arc<Upstream>>) -> Access {
        upstreams.sort_by_key(|u| std::cmp::Reverse(u.prefix.len()));
        Access { edge, upstreams, limits: Limits::default() }
    }

    pub fn config(&self) -> &HttpProxyConfig {
        &self.edge.config.http_proxy
    }

    pub fn route(&self, path: &str) -> Option<Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.matches(path)).cloned()
    }

    /// Whether a request for `path` is refused because it reaches the core's operator API.
    pub fn forbidden(&self, path: &str) -> bool {
        !self.config().forward_cluster && is_cluster_path(path)
    }

    /// Counts a request from `client` against its per-address limits: the in-flight guard to hold
    /// while it lasts, or the reason it is refused.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<Option<Guard>, &'static str> {
        let Some(ip) = client else { return Ok(None) };
        let per_sec = self.config().requests_per_sec_per_ip as isize;
        if per_sec > 0 && self.limits.rate.observe(&ip, 1) > per_sec {
            return Err("rate");
        }
        if self.config().max_inflight_per_ip == 0 {
            return Ok(None);
        }
        let (guard, now) = self.limits.inflight.incr(ip, 1);
        if now > self.config().max_inflight_per_ip as isize {
            return Err("inflight");
        }
        Ok(Some(guard))
    }

    /// Counts a connection from `client`: the guard to hold while it is open, or the reason it is
    /// refused.
    pub fn admit_conn(&self, client: IpAddr) -> Result<Option<Guard>, &'static str> {
        let max = self.config().max_conns_per_ip;
        if max == 0 {
            return Ok(None);
        }
        let (guard, now) = self.limits.conns.incr(client, 1);
        if now > max as isize {
            return Err("conns");
        }
        Ok(Some(guard))
    }

    /// One `tern_edge::access` line, when access logs are on.
    #[allow(clippy::too_many_arguments)]
    pub fn log(
        &self,
        client: Option<IpAddr>,
        method: &str,
        path: &str,
        status: u16,
        upstream: Option<&str>,
        tried: &[SocketAddr],
        started: Instant,
        error: Option<&str>,
    ) {
        if !self.config().access_log {
            return;
        }
        tracing::info!(
            target: "tern_edge::access",
            client = %client.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
            method = %method,
            path = %path,
            status,
            upstream = %upstream.unwrap_or("-"),
            backend = %tried.last().map_or_else(|| "-".to_string(), |a| a.to_string()),
            tries = tried.len(),
            ms = %format_args!("{:.3}", started.elapsed().as_secs_f64() * 1e3),
            error = %error.unwrap_or(""),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::is_cluster_path;

    #[test]
    fn every_spelling_of_the_cluster_api_is_caught() {
        for p in [
            "/cluster",
            "/cluster/nodes/add",
            "//cluster/nodes/add",
            "/CLUSTER/nodes/add",
            "/%63luster/nodes/add",
            "/x/../cluster/leader/transfer",
            "/./cluster?x=1",
            "/\\cluster",
        ] {
            assert!(is_cluster_path(p), "{p}");
        }
        for p in ["/", "/clusters", "/user/token", "/channel/cluster", "/route?uid=cluster"] {
            assert!(!is_cluster_path(p), "{p}");
        }
    }
}

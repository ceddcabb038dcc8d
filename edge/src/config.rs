//! Settings of one edge (TOML, every key optional).

use serde::{Deserialize, Serialize};
use tern_shared::config::{check_addr, ConfigError, Validate};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Names this edge to the core; a restarted edge with the same id replaces its old presence.
    pub edge_id: String,
    /// Where this edge runs (e.g. `eu-west`); `/route` falls back to edges of the same region first.
    pub region: String,
    /// Client protocol over TCP (WuKongIM's default port); empty disables.
    pub tcp_addr: String,
    /// Client protocol over WebSocket; empty disables.
    pub ws_addr: String,
    /// Client protocol over TLS (empty disables; needs `certs`).
    pub tls_addr: String,
    /// Client protocol over WebSocket + TLS (empty disables; needs `certs`).
    pub wss_addr: String,
    /// Client protocol over QUIC (UDP; empty disables; needs `certs`).
    pub quic_addr: String,
    /// Certificates for `tls_addr`, `wss_addr` and `quic_addr`, picked by SNI; the first is the default.
    pub certs: Vec<tern_shared::tls::CertFiles>,
    /// How often certificate files are checked for changes (0: only on SIGHUP).
    pub cert_reload_ms: u64,
    /// `/healthz` and `/metrics`.
    pub http_addr: String,
    /// Mutual TLS to the core: this edge's certificate, and the CA and name it expects of the core.
    pub link_tls: Option<tern_shared::tls::LinkTls>,
    /// Core nodes' link addresses, comma-separated; the edge keeps `links_per_node` links to each.
    pub core_addr: String,
    /// Core nodes' QUIC link addresses (`link_quic_addr`), comma-separated in `core_addr`'s order; empty:
    /// TCP only. Needs `link_tls`. Links try QUIC first and fall back to TCP at `core_addr`.
    pub core_quic_addr: String,
    /// Links to each core node. The first carries presence and deliveries; requests are spread over
    /// all of them by session, so one busy or stalled link does not hold up every client.
    pub links_per_node: usize,
    /// Addresses handed to clients by `/route` (defaults: the bound listener addresses).
    pub advertise: Advertise,
    /// Largest client frame body accepted.
    pub max_frame: usize,
    /// Time a new connection has to send CONNECT.
    pub connect_timeout_ms: u64,
    /// An authenticated connection silent this long is closed (clients ping every ~60 s).
    pub idle_timeout_ms: u64,
    /// Frames queued toward one client, and RECVs it has not acked, before it counts as too slow and is
    /// closed (it then resyncs by seq).
    pub session_queue: usize,
    /// A RECV not acked (RECVACK) in this time is written again.
    pub recv_resend_ms: u64,
    /// Resends of one RECV before its client is closed as not acking.
    pub recv_resends: u32,
    /// A write to a client that cannot finish in this time closes it as too slow.
    pub write_timeout_ms: u64,
    /// Frames queued toward the core before client reads wait.
    pub link_queue: usize,
    /// SENDs that ask for `NO_ENCRYPT` (payload in the clear on the client connection) are refused
    /// with reason `NotAllowSend`.
    pub refuse_no_encrypt: bool,
    /// Bytes of one client's SENDs the edge holds until the core answers; past it the edge stops
    /// reading that client until answers come back.
    pub send_budget: usize,
    /// TCP and TLS listeners expect a PROXY protocol (v1 or v2) header first, from a load balancer.
    pub proxy_protocol: bool,
    /// Sessions one client address may hold at once (0: no limit); loopback addresses are not limited.
    /// A QUIC connection holds one besides its sessions.
    pub max_sessions_per_ip: usize,
    /// Connections each client listener lets wait to be accepted (the kernel caps it at
    /// `net.core.somaxconn`).
    pub accept_backlog: u32,
    /// Failed logins are counted over windows this long.
    pub login_window_ms: u64,
    /// Failed logins one address may make per window; past it its CONNECTs are refused unchecked (0: no limit).
    pub login_failures_per_addr: u32,
    /// Failed logins one uid may take per window; past it, addresses that failed are refused for that uid
    /// while the others still log in (0: no limit).
    pub login_failures_per_uid: u32,
    /// Logins (token checks at the core) per second, a second's worth at once; more wait their turn, up
    /// to `connect_timeout_ms`, and only past that are refused (0: no limit). A reconnect storm, such as
    /// a failed region's clients arriving, is admitted at this rate rather than refused.
    pub logins_per_sec: u32,
    /// On SIGTERM: how long to wait for sessions to close before exiting.
    pub drain_timeout_ms: u64,
    /// The edge↔core link version offered first (this release's by default). During an upgrade, new
    /// edges may be held at the previous release's version until every core node speaks the new one;
    /// an edge also steps down by itself when a core node refuses its version.
    pub link_version: u16,
    /// On SIGTERM: how long the HTTP access layer keeps serving, closing each connection after its
    /// answer, before it stops (within `drain_timeout_ms`).
    pub drain_grace_ms: u64,
    /// Sessions this edge accepts; past it CONNECT is refused. The open-files limit is checked against it.
    pub max_sessions: usize,
    /// The HTTP access layer in front of the core's API.
    pub http_proxy: crate::http::proxy::config::HttpProxyConfig,
    /// Lets links to core nodes off loopback go without mutual TLS: only for private test networks,
    /// and logged as a warning at every start.
    pub insecure: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Advertise {
    pub tcp: String,
    pub ws: String,
    pub wss: String,
    pub tls: String,
    pub quic: String,
}

impl EdgeConfig {
    pub fn recv_resend(&self) -> crate::session::outbox::Resend {
        crate::session::outbox::Resend {
            after: std::time::Duration::from_millis(self.recv_resend_ms),
            times: self.recv_resends,
        }
    }
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            edge_id: "edge-1".into(),
            region: "local".into(),
            tcp_addr: "0.0.0.0:5100".into(),
            ws_addr: "0.0.0.0:5200".into(),
            tls_addr: String::new(),
            wss_addr: String::new(),
            quic_addr: String::new(),
            certs: Vec::new(),
            cert_reload_ms: 5_000,
            http_addr: "0.0.0.0:5080".into(),
            core_addr: "127.0.0.1:5301".into(),
            link_tls: None,
            links_per_node: 2,
            core_quic_addr: String::new(),
            advertise: Advertise::default(),
            max_frame: tern_shared::proto::DEFAULT_MAX_FRAME,
            connect_timeout_ms: 5_000,
            idle_timeout_ms: 180_000,
            session_queue: 1024,
            recv_resend_ms: 10_000,
            recv_resends: 3,
            write_timeout_ms: 10_000,
            link_queue: 64 * 1024,
            send_budget: 2 << 20,
            refuse_no_encrypt: false,
            max_sessions: 1_000_000,
            drain_timeout_ms: 10_000,
            link_version: tern_shared::link::LINK_VERSION,
            drain_grace_ms: 1_000,
            proxy_protocol: false,
            max_sessions_per_ip: 10_000,
            accept_backlog: 4096,
            login_window_ms: 60_000,
            logins_per_sec: 5_000,
            login_failures_per_addr: 100,
            login_failures_per_uid: 10,
            http_proxy: Default::default(),
            insecure: false,
        }
    }
}

impl Validate for EdgeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !tern_shared::pki::valid_name(&self.edge_id) {
            return Err(ConfigError::invalid("edge_id", "must be 1-64 letters, digits, '.', '_' or '-'"));
        }
        if !tern_shared::pki::valid_name(&self.region) {
            return Err(ConfigError::invalid("region", "must be 1-64 letters, digits, '.', '_' or '-'"));
        }
        if !tern_shared::link::speaks(self.link_version) {
            let (min, max) = (tern_shared::link::MIN_LINK_VERSION, tern_shared::link::LINK_VERSION);
            return Err(ConfigError::invalid("link_version", format!("this release speaks {min} to {max}")));
        }
        check_addr("tcp_addr", &self.tcp_addr, true)?;
        check_addr("ws_addr", &self.ws_addr, true)?;
        check_addr("http_addr", &self.http_addr, true)?;
        check_addr("tls_addr", &self.tls_addr, true)?;
        check_addr("wss_addr", &self.wss_addr, true)?;
        check_addr("quic_addr", &self.quic_addr, true)?;
        let secure = [&self.tls_addr, &self.wss_addr, &self.quic_addr];
        if secure.iter().any(|a| !a.is_empty()) && self.certs.is_empty() {
            return Err(ConfigError::invalid(
                "certs",
                "tls_addr, wss_addr and quic_addr need at least one [[certs]] entry",
            ));
        }
        if self.tcp_addr.is_empty() && self.ws_addr.is_empty() {
            return Err(ConfigError::invalid("tcp_addr", "at least one of tcp_addr and ws_addr must be set"));
        }
        if self.core_addr.is_empty() {
            return Err(ConfigError::invalid("core_addr", "must name the core's link address"));
        }
        if let (Some(addr), None, false) = (self.remote_core(), &self.link_tls, self.insecure) {
            return Err(ConfigError::invalid(
                "link_tls",
                format!(
                    "core_addr {addr} is not loopback: set [link_tls] for mutual TLS (or `insecure = true`, only on a private test network)"
                ),
            ));
        }
        // A client frame travels to the core inside one link frame, with room for its envelope.
        let most = tern_shared::link::MAX_LINK_FRAME - (64 << 10);
        if !(64..=most).contains(&self.max_frame) {
            return Err(ConfigError::invalid(
                "max_frame",
                format!("must be between 64 bytes and {most} (the link's frame limit)"),
            ));
        }
        if self.connect_timeout_ms == 0 {
            return Err(ConfigError::invalid("connect_timeout_ms", "must be greater than 0"));
        }
        if self.idle_timeout_ms < 1000 {
            return Err(ConfigError::invalid("idle_timeout_ms", "must be at least 1000"));
        }
        if self.write_timeout_ms == 0 {
            return Err(ConfigError::invalid("write_timeout_ms", "must be greater than 0"));
        }
        if self.session_queue < 8 {
            return Err(ConfigError::invalid("session_queue", "must be at least 8"));
        }
        if self.recv_resend_ms < 100 {
            return Err(ConfigError::invalid("recv_resend_ms", "must be at least 100"));
        }
        if self.accept_backlog == 0 {
            return Err(ConfigError::invalid("accept_backlog", "must be greater than 0"));
        }
        if self.login_window_ms < 1000 {
            return Err(ConfigError::invalid("login_window_ms", "must be at least 1000"));
        }
        if self.max_sessions == 0 {
            return Err(ConfigError::invalid("max_sessions", "must be greater than 0"));
        }
        if !self.core_quic_addr.is_empty() {
            let count = |s: &str| s.split(',').filter(|a| !a.trim().is_empty()).count();
            if count(&self.core_quic_addr) != count(&self.core_addr) {
                return Err(ConfigError::invalid("core_quic_addr", "must list one address per core_addr entry"));
            }
            if let Some(bad) =
                self.core_quic_addr.split(',').map(str::trim).find(|a| a.parse::<std::net::SocketAddr>().is_err())
            {
                return Err(ConfigError::invalid("core_quic_addr", format!("`{bad}` is not ip:port")));
            }
            if self.link_tls.is_none() {
                return Err(ConfigError::invalid("core_quic_addr", "QUIC links need [link_tls]"));
            }
        }
        if !(1..=16).contains(&self.links_per_node) {
            return Err(ConfigError::invalid("links_per_node", "must be between 1 and 16"));
        }
        if !(64 << 10..=1 << 30).contains(&self.send_budget) {
            return Err(ConfigError::invalid("send_budget", "must be between 64 KiB and 1 GiB"));
        }
        if self.link_queue < 64 {
            return Err(ConfigError::invalid("link_queue", "must be at least 64"));
        }
        self.http_proxy.validate(!self.certs.is_empty())
    }
}

impl EdgeConfig {
    /// A core node this edge links to over the network, if any (its links then need mutual TLS).
    pub fn remote_core(&self) -> Option<&str> {
        self.core_addr.split(',').map(str::trim).find(|a| !a.is_empty() && !tern_shared::config::is_loopback(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        let e = tern_shared::config::parse::<EdgeConfig>("e.toml", "max_frame = 1").unwrap_err();
        assert!(e.to_string().contains("`max_frame`"), "{e}");
        let e = tern_shared::config::parse::<EdgeConfig>("e.toml", "tcp_addr = \"nope\"").unwrap_err();
        assert!(e.to_string().contains("`tcp_addr`"), "{e}");
        assert!(tern_shared::config::parse::<EdgeConfig>("e.toml", "").is_ok());
        let bad_upstream =
            "[http_proxy]\naddr = \"127.0.0.1:0\"\n[[http_proxy.upstreams]]\nname = \"api\"\naddrs = [\"core:5001\"]";
        let e = tern_shared::config::parse::<EdgeConfig>("e.toml", bad_upstream).unwrap_err();
        assert!(e.to_string().contains("`http_proxy.upstreams`") && e.to_string().contains("core:5001"), "{e}");
        let e =
            tern_shared::config::parse::<EdgeConfig>("e.toml", "[http_proxy]\ntls_addr = \"127.0.0.1:0\"").unwrap_err();
        assert!(e.to_string().contains("`http_proxy.tls_addr`"), "{e}");
        let e = tern_shared::config::parse::<EdgeConfig>("e.toml", "edge_id = \"a/b\"").unwrap_err();
        assert!(e.to_string().contains("`edge_id`"), "{e}");
    }

    #[test]
    fn links_off_loopback_need_mutual_tls() {
        let parse = |t: &str| tern_shared::config::parse::<EdgeConfig>("e.toml", t);
        let e = parse("core_addr = \"127.0.0.1:5301,10.0.0.2:5301\"").unwrap_err();
        assert!(e.to_string().contains("`link_tls`") && e.to_string().contains("10.0.0.2"), "{e}");
        assert!(parse("core_addr = \"core1.internal:5301\"").is_err(), "a host name may be anywhere");
        assert!(parse("core_addr = \"localhost:5301,[::1]:5301\"").is_ok());
        assert!(parse("core_addr = \"10.0.0.2:5301\"\ninsecure = true").is_ok());
        let tls = "core_addr = \"10.0.0.2:5301\"\n[link_tls]\ncert = \"e.pem\"\nkey = \"e.key\"\nca = \"ca.pem\"";
        assert!(parse(tls).is_ok());
    }
}

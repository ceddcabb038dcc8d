//! A small authoritative DNS server on loopback for `tern dev --regions`: it answers the deployment's
//! names the way the cloud's DNS does with the records `terraform/modules/dns` creates (`answer.rs`),
//! and checks every edge's `/healthz` the way Route 53's health checks do (`health.rs`), so "the nearest
//! healthy region by DNS" is exercised end to end. Built on hickory-server.

pub mod answer;
mod health;

use answer::Answer;
use health::Health;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::proto::op::{Header, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tern_shared::deployment::Deployment;

/// Health checking and answers; Route 53's own figures are 10 or 30 s between checks, a threshold of 3
/// and whatever TTL the records carry (60 s in `terraform/modules/dns`).
#[derive(Debug, Clone, Copy)]
pub struct DnsOptions {
    pub check_interval: Duration,
    pub check_timeout: Duration,
    pub threshold: u32,
    pub ttl: u32,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            check_interval: Duration::from_millis(500),
            check_timeout: Duration::from_millis(400),
            threshold: 2,
            ttl: 5,
        }
    }
}

/// The address a client in a region dials for an edge (the edge's own, or a WAN relay in front of it).
pub type AddrOf = Arc<dyn Fn(&str, &str) -> Option<IpAddr> + Send + Sync>;

#[derive(Clone)]
pub struct Dns {
    pub addr: SocketAddr,
    health: Arc<Mutex<Health>>,
}

impl Dns {
    /// Every edge and whether it passes its health checks now.
    pub fn healthy(&self) -> std::collections::BTreeMap<String, bool> {
        self.health.lock().unwrap_or_else(|e| e.into_inner()).all()
    }
}

/// Serves the deployment's names on `bind` (UDP and TCP on one port) and checks every edge at its URL in
/// `checks` (edge id, `http://…/healthz`).
pub async fn serve(
    bind: SocketAddr,
    d: Arc<Deployment>,
    addr_of: AddrOf,
    checks: Vec<(String, String)>,
    opts: DnsOptions,
) -> std::io::Result<Dns> {
    let health = Arc::new(Mutex::new(Health::new(d.edges().map(|(_, e)| e.id.as_str()), opts.threshold)));
    let (udp, tcp) = bind_both(bind).await?;
    let addr = udp.local_addr()?;
    let handler = Handler { d, health: health.clone(), addr_of, ttl: opts.ttl };
    let mut server = hickory_server::ServerFuture::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5));
    tokio::spawn(async move {
        if let Err(e) = server.block_until_done().await {
            tracing::warn!(error = %e, "DNS server stopped");
        }
    });
    tokio::spawn(check_loop(checks, health.clone(), opts));
    Ok(Dns { addr, health })
}

/// A UDP socket and a TCP listener on one port. For port 0 the port the kernel gave UDP may be taken for
/// TCP (by any process's outgoing connection), so a few ports are tried.
async fn bind_both(bind: SocketAddr) -> std::io::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let mut tries = 0;
    loop {
        let udp = tokio::net::UdpSocket::bind(bind).await?;
        match tokio::net::TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if bind.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

async fn check_loop(checks: Vec<(String, String)>, health: Arc<Mutex<Health>>, opts: DnsOptions) {
    let http = match reqwest::Client::builder().timeout(opts.check_timeout).build() {
        Ok(c) => c,
        Err(e) => return tracing::warn!(error = %e, "no HTTP client for health checks"),
    };
    let mut tick = tokio::time::interval(opts.check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let results = futures_util::future::join_all(checks.iter().map(|(edge, url)| {
            let http = &http;
            async move { (edge, matches!(http.get(url).send().await, Ok(r) if r.status().is_success())) }
        }))
        .await;
        let mut h = health.lock().unwrap_or_else(|e| e.into_inner());
        for (edge, passed) in results {
            if let Some(now) = h.observe(edge, passed) {
                tracing::info!(edge = %edge, healthy = now, "DNS health check changed");
            }
        }
    }
}

struct Handler {
    d: Arc<Deployment>,
    health: Arc<Mutex<Health>>,
    addr_of: AddrOf,
    ttl: u32,
}

impl Handler {
    fn records(&self, name: &Name, qtype: RecordType, source: IpAddr) -> Result<Vec<Record>, ResponseCode> {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let healthy = |edge: &str| health.healthy(edge);
        match answer::answer(&self.d, &name.to_ascii(), source, &healthy) {
            Answer::NotOurs => Err(ResponseCode::Refused),
            Answer::NoSuchName => Err(ResponseCode::NXDomain),
            Answer::Edges { client_region, edges } => Ok(edges
                .iter()
                .filter_map(|e| (self.addr_of)(client_region, &e.id))
                .filter_map(|ip| match (ip, qtype) {
                    (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(v4))),
                    (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(v6))),
                    _ => None,
                })
                .map(|rdata| Record::from_rdata(name.clone(), self.ttl, rdata))
                .collect()),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());
        header.set_authoritative(true);
        let records = match request.request_info() {
            Ok(info) => {
                let name = Name::from(info.query.name().clone());
                self.records(&name, info.query.query_type(), request.src().ip())
            }
            Err(_) => Err(ResponseCode::FormErr),
        };
        let records = records.unwrap_or_else(|code| {
            header.set_response_code(code);
            Vec::new()
        });
        let sent = response.send_response(builder.build(header, records.iter(), [], [], [])).await;
        sent.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "DNS answer not sent");
            let mut h = Header::new();
            h.set_response_code(ResponseCode::ServFail);
            h.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::bind_both;

    #[tokio::test]
    async fn udp_and_tcp_share_a_port_and_a_taken_fixed_port_is_an_error() {
        let (udp, tcp) = bind_both("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert_eq!(udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let held = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = bind_both(held.local_addr().unwrap()).await.err().map(|e| e.kind());
        assert_eq!(err, Some(std::io::ErrorKind::AddrInUse));
    }
}

//! Behind a load balancer: the PROXY protocol gives the edge each client's real address, and sessions
//! per address are limited. A reconnect storm is admitted at a bounded rate.

mod common;

use common::Topology;
use std::net::SocketAddr;
use std::time::Duration;
use tern_shared::proto::{self, Packet};
use tern_shared::proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects with `header` in front of CONNECT; the CONNACK reason, or `None` if the edge just closed.
async fn login(edge: &str, header: &[u8], uid: &str) -> (Option<u8>, TcpStream) {
    let mut s = TcpStream::connect(edge).await.unwrap();
    let keys = proto::crypto::ClientKeys::generate();
    let connect = Packet::Connect(proto::Connect {
        version: 4,
        uid: uid.into(),
        token: format!("{uid}-tok"),
        device_id: "d".into(),
        client_key: keys.public_b64(),
        ..Default::default()
    });
    s.write_all(&[header, &proto::encode_to_vec(&connect, 4).unwrap()].concat()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap_or(0);
    let reason = match proto::decode(&buf[..n], 4, 4096) {
        Ok(Some((Packet::Connack(a), _))) => Some(a.reason_code),
        _ => None,
    };
    (reason, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_addresses_and_per_address_limits() {
    let cl = Topology::nodes(1).edge("proxy_protocol = true\nmax_sessions_per_ip = 2").start().await;
    for uid in ["u1", "u2", "u3", "u4"] {
        cl.api.user(uid, 0).await;
    }
    let edge = cl.tcp();
    let dst: SocketAddr = edge.parse().unwrap();
    let from = |ip: &str, port: u16| SocketAddr::new(ip.parse().unwrap(), port);

    // Two sessions from one client address (v1 and v2 headers) are fine, the third is refused.
    let (r1, _s1) = login(&edge, &proxy::encode_v1(from("203.0.113.7", 4000), dst), "u1").await;
    let (r2, _s2) = login(&edge, &proxy::encode_v2(from("203.0.113.7", 4001), dst), "u2").await;
    assert_eq!((r1, r2), (Some(1), Some(1)));
    let (r3, _s3) = login(&edge, &proxy::encode_v1(from("203.0.113.7", 4002), dst), "u3").await;
    assert_eq!(r3, None, "a third session from the same address is refused");
    // Another address has its own allowance, though every connection comes from the same proxy.
    let (r4, _s4) = login(&edge, &proxy::encode_v2(from("198.51.100.9", 4000), dst), "u4").await;
    assert_eq!(r4, Some(1));
    // Without the header the connection is dropped.
    let (r5, _s5) = login(&edge, b"", "u3").await;
    assert_eq!(r5, None);

    let metrics = reqwest::get(format!("http://{}/metrics", cl.edge.addr("http"))).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tern_edge_connect_rejected_total{reason=\"per_ip\"} 1"), "{metrics}");
    assert!(metrics.contains("tern_edge_connect_rejected_total{reason=\"proxy\"} 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_storm_is_admitted_at_the_configured_rate_and_only_the_far_end_refused() {
    // 20 logins a second, none waiting over 2 s: of 80 at once, 20 go at once, about 40 wait their turn
    // (up to 2 s), and the rest are refused with a retryable reason.
    let cl = Topology::nodes(1).edge("logins_per_sec = 20\nconnect_timeout_ms = 2000").start().await;
    for i in 0..80 {
        cl.api.user(&format!("storm-{i}"), 0).await;
    }
    let started = std::time::Instant::now();
    let logins = (0..80).map(|i| {
        let edge = cl.tcp();
        async move {
            let (reason, _s) = login(&edge, &[], &format!("storm-{i}")).await;
            (reason, started.elapsed())
        }
    });
    let results = futures_util::future::join_all(logins).await;
    let ok: Vec<Duration> = results.iter().filter(|(r, _)| *r == Some(1)).map(|(_, t)| *t).collect();
    let busy = results.iter().filter(|(r, _)| *r == Some(proto::Reason::SystemError.code())).count();
    assert_eq!(ok.len() + busy, 80, "{results:?}");
    assert!((55..=65).contains(&ok.len()), "{} admitted", ok.len());
    let last = ok.iter().max().unwrap();
    assert!(*last >= Duration::from_millis(1800) && *last < Duration::from_secs(4), "last admitted after {last:?}");
    let paced = common::metric(&cl.edge.addr("http"), "tern_edge_logins_paced_total").await.unwrap();
    assert!(paced >= 35.0, "{paced} logins waited");
}

//! Mutual TLS on edge links: an edge with a certificate from the link CA links and serves clients; an
//! edge with no certificate, a certificate from another CA, or that does not trust the core's, gets none.
//! The edge id is the certificate's: a link cannot claim another edge, and a second process cannot take
//! a live edge's id.

mod common;

use common::certs::{ca, mtls, Ca};
use common::{connect, never_up, start_edge, wait_edge_up, wait_metric, Api, Proc};
use std::path::Path;
use std::time::Duration;

/// A core requiring edge certificates from `ca`, with `extra` settings.
fn start_core(d: &Path, ca: &Ca, extra: &str) -> Proc {
    Proc::core_with_toml(d, &format!("{extra}\n{}", mtls("link_tls", &ca.node(1), &ca.pem())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_edges_with_a_certificate_from_the_link_ca_get_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (good, rogue) = (ca(d, "link-ca"), ca(d, "someone-else"));
    let (edge_cert, rogue_cert) = (good.edge("edge-1"), rogue.edge("edge-1"));

    let core = start_core(d, &good, "");
    let link = core.addr("link");
    let api = Api::new(&core.addr("http"));

    let edge = start_edge(d, &link, &mtls("link_tls", &edge_cert, &good.pem()), 0);
    wait_edge_up(&edge).await;
    api.user("alice", 0).await;
    api.user("bob", 0).await;
    let alice = connect(&edge.addr("tcp"), "alice", 0).await;
    let mut bob = connect(&edge.addr("tcp"), "bob", 0).await;
    assert_eq!(alice.send_text("bob", 1, "over an mTLS link").await.unwrap().reason_code, 1);
    assert!(matches!(bob.recv_timeout(Duration::from_secs(5)).await, Some(tern_shared::client::Incoming::Message(_))));

    // A certificate from another CA, no certificate at all, and an edge that does not trust the core.
    let rogue_edge = start_edge(d, &link, &mtls("link_tls", &rogue_cert, &good.pem()), 1);
    let plain_edge = start_edge(d, &link, "", 2);
    let distrusting_edge = start_edge(d, &link, &mtls("link_tls", &edge_cert, &rogue.pem()), 3);
    for e in [&rogue_edge, &plain_edge, &distrusting_edge] {
        never_up(e, Duration::from_millis(1500)).await;
    }
    let log = std::fs::read_to_string(d.join("core.log")).unwrap();
    assert!(log.contains("tls handshake"), "the core logs why links were refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_prefer_quic_and_fall_back_to_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (good, rogue) = (ca(d, "link-ca"), ca(d, "someone-else"));
    let (edge_cert, edge2_cert, rogue_cert) = (good.edge("edge-1"), good.edge("edge-2"), rogue.edge("edge-1"));
    let core = start_core(d, &good, "link_quic_addr = \"127.0.0.1:0\"");
    let (link, link_quic) = (core.addr("link"), core.addr("link_quic"));
    let api = Api::new(&core.addr("http"));
    api.user("alice", 0).await;
    api.user("alice", 1).await;
    api.user("bob", 0).await;

    // Both lanes over QUIC; messages flow.
    let quic = start_edge(
        d,
        &link,
        &format!("core_quic_addr = \"{link_quic}\"\n{}", mtls("link_tls", &edge_cert, &good.pem())),
        0,
    );
    wait_edge_up(&quic).await;
    wait_metric(&quic.addr("http"), "tern_edge_core_links_quic", Duration::from_secs(15), |v| v == 2.0).await;
    let alice = connect(&quic.addr("tcp"), "alice", 0).await;
    let mut bob = connect(&quic.addr("tcp"), "bob", 0).await;
    assert_eq!(alice.send_text("bob", 1, "over a QUIC link").await.unwrap().reason_code, 1);
    assert!(matches!(bob.recv_timeout(Duration::from_secs(5)).await, Some(tern_shared::client::Incoming::Message(_))));

    // Nothing answers QUIC at this address: the links come up over TCP instead.
    let silent_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let nowhere = silent_udp.local_addr().unwrap();
    let toml =
        format!("edge_id = \"edge-2\"\ncore_quic_addr = \"{nowhere}\"\n{}", mtls("link_tls", &edge2_cert, &good.pem()));
    let fallback = start_edge(d, &link, &toml, 1);
    wait_edge_up(&fallback).await;
    wait_metric(&fallback.addr("http"), "tern_edge_core_links_up", Duration::from_secs(15), |v| v == 2.0).await;
    wait_metric(&fallback.addr("http"), "tern_edge_core_links_quic", Duration::from_secs(15), |v| v == 0.0).await;
    let alice_web = connect(&fallback.addr("tcp"), "alice", 1).await;
    assert_eq!(alice_web.send_text("bob", 1, "over the TCP fallback").await.unwrap().reason_code, 1);
    assert!(matches!(bob.recv_timeout(Duration::from_secs(5)).await, Some(tern_shared::client::Incoming::Message(_))));

    // QUIC is no way around the certificate check.
    let toml = format!("core_quic_addr = \"{link_quic}\"\n{}", mtls("link_tls", &rogue_cert, &good.pem()));
    let rogue_edge = start_edge(d, &link, &toml, 2);
    never_up(&rogue_edge, Duration::from_millis(1500)).await;
    let log = std::fs::read_to_string(d.join("core.log")).unwrap();
    assert!(log.contains("quic edge link refused"), "the core logs the refused QUIC link");
}

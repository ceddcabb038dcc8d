//! TLS and WSS listeners: certificates chosen by SNI, and rotated on disk without dropping sessions.

mod common;

use common::Topology;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_shared::client::{Client, ClientOptions, Incoming};

struct TestCert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

fn cert_for(name: &str) -> TestCert {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
    TestCert { pem: c.cert.pem(), key: c.signing_key.serialize_pem(), der: c.cert.der().to_vec() }
}

/// Replaces a cert/key pair the way a deploy tool would: write aside, then rename over.
fn install(dir: &Path, stem: &str, c: &TestCert) {
    for (ext, text) in [("pem", &c.pem), ("key", &c.key)] {
        let tmp = dir.join(format!("{stem}.{ext}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, dir.join(format!("{stem}.{ext}"))).unwrap();
    }
}

async fn client(addr: String, uid: &str, sni: &str, roots: &Arc<rustls::ClientConfig>) -> Client {
    let mut o = ClientOptions::new(addr, uid, format!("{uid}-tok"));
    o.tls = Some(roots.clone());
    o.server_name = Some(sni.into());
    Client::connect(o).await.unwrap_or_else(|e| panic!("{uid} over TLS: {e}"))
}

async fn exchange(from: &Client, to: &mut Client, to_uid: &str, text: &str) {
    let ack = from.send_text(to_uid, 1, text).await.unwrap();
    assert_eq!(ack.reason_code, 1);
    match to.recv_timeout(Duration::from_secs(5)).await {
        Some(Incoming::Message(m)) => assert_eq!(m.message_seq, ack.message_seq),
        other => panic!("expected {text:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_wss_pick_certificates_by_sni_and_rotate_without_dropping_sessions() {
    let certs = tempfile::tempdir().unwrap();
    let (a, b, a2) = (cert_for("a.test"), cert_for("b.test"), cert_for("a.test"));
    install(certs.path(), "a", &a);
    install(certs.path(), "b", &b);
    let p = |f: &str| certs.path().join(f).display().to_string();
    let edge_toml = format!(
        "tls_addr = \"127.0.0.1:0\"\nwss_addr = \"127.0.0.1:0\"\ncert_reload_ms = 100\n\
         [[certs]]\nnames = [\"a.test\"]\ncert = \"{}\"\nkey = \"{}\"\n\
         [[certs]]\nnames = [\"b.test\"]\ncert = \"{}\"\nkey = \"{}\"\n",
        p("a.pem"),
        p("a.key"),
        p("b.pem"),
        p("b.key")
    );
    let cl = Topology::nodes(1).edge(&edge_toml).start().await;
    cl.api.user("alice", 0).await;
    cl.api.user("bob", 0).await;
    cl.api.user("carol", 0).await;
    let roots = tern_shared::tls::client_config(format!("{}{}{}", a.pem, b.pem, a2.pem).as_bytes()).unwrap();
    let tls = format!("tls://{}", cl.edge.addr("tls"));
    let wss = format!("wss://{}", cl.edge.addr("wss"));

    let mut alice = client(tls.clone(), "alice", "a.test", &roots).await;
    let mut bob = client(wss.clone(), "bob", "b.test", &roots).await;
    assert_eq!(alice.peer_cert(), Some(a.der.as_slice()), "SNI a.test gets a's certificate");
    assert_eq!(bob.peer_cert(), Some(b.der.as_slice()), "SNI b.test gets b's certificate");
    exchange(&alice, &mut bob, "bob", "over tls to wss").await;
    exchange(&bob, &mut alice, "alice", "over wss to tls").await;

    // Rotate a.test's certificate on disk: new handshakes see it, the live sessions stay up.
    install(certs.path(), "a", &a2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A fresh client config each time: a resumed TLS session would not show the new certificate.
        let fresh = tern_shared::tls::client_config(format!("{}{}", a.pem, a2.pem).as_bytes()).unwrap();
        let probe = client(tls.clone(), "carol", "a.test", &fresh).await;
        if probe.peer_cert() == Some(a2.der.as_slice()) {
            break;
        }
        assert!(Instant::now() < deadline, "the rotated certificate was never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Alice's session, whose handshake used the old certificate, still works both ways.
    exchange(&alice, &mut bob, "bob", "after rotation").await;
    exchange(&bob, &mut alice, "alice", "back after rotation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_sessions_survive_the_client_changing_address() {
    let certs = tempfile::tempdir().unwrap();
    let a = cert_for("a.test");
    install(certs.path(), "a", &a);
    let p = |f: &str| certs.path().join(f).display().to_string();
    let edge_toml = format!(
        "quic_addr = \"127.0.0.1:0\"\n[[certs]]\nnames = [\"a.test\"]\ncert = \"{}\"\nkey = \"{}\"\n",
        p("a.pem"),
        p("a.key")
    );
    let cl = Topology::nodes(1).edge(&edge_toml).start().await;
    cl.api.user("alice", 0).await;
    cl.api.user("bob", 0).await;
    let roots = tern_shared::tls::client_config(a.pem.as_bytes()).unwrap();
    // /route hands out the QUIC address along with WuKongIM's fields.
    let route = cl.api.ok_get("/route?uid=alice").await;
    assert_eq!(route["quic_addr"], format!("quic://{}", cl.edge.addr("quic")), "{route}");
    assert_eq!(route["tcp_addr"], cl.tcp(), "{route}");
    let mut alice = client(format!("quic://{}", cl.edge.addr("quic")), "alice", "a.test", &roots).await;
    assert_eq!(alice.peer_cert(), Some(a.der.as_slice()));
    let mut bob = common::connect(&cl.tcp(), "bob", 0).await;
    exchange(&alice, &mut bob, "bob", "over quic").await;
    exchange(&bob, &mut alice, "alice", "to quic").await;

    // The client moves to a new UDP socket (a new source port): same QUIC connection, same session.
    let before = alice.quic_local_addr().unwrap();
    alice.rebind(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
    assert_ne!(alice.quic_local_addr().unwrap(), before);
    exchange(&alice, &mut bob, "bob", "after migrating").await;
    exchange(&bob, &mut alice, "alice", "to the new address").await;
}

//! Bad input closes (or refuses) that one connection with a clear reason; a healthy client on the same
//! edge keeps working throughout.

mod common;

use common::{connect, Cluster, Topology};
use std::time::Duration;
use tern_shared::client::{Client, ClientError, ClientOptions, Incoming};
use tern_shared::proto::{self, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `bytes` on a fresh connection and returns every frame the edge sent before closing it.
async fn raw_exchange(addr: &str, bytes: &[u8]) -> Vec<Packet> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the edge must close the connection");
    let mut packets = Vec::new();
    let mut rest = &got[..];
    while let Ok(Some((p, used))) = proto::decode(rest, 4, proto::DEFAULT_MAX_FRAME) {
        packets.push(p);
        rest = &rest[used..];
    }
    packets
}

fn disconnect_reason(packets: &[Packet]) -> String {
    match packets.last() {
        Some(Packet::Disconnect(d)) => d.reason.clone(),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

async fn still_works(alice: &Client, bob: &mut Client, n: usize) {
    let ack = alice.send_text("bob", 1, &format!("ping {n}")).await.unwrap();
    assert_eq!(ack.reason_code, 1);
    match bob.recv_timeout(Duration::from_secs(5)).await {
        Some(Incoming::Message(m)) => assert_eq!(m.message_seq, ack.message_seq),
        other => panic!("healthy client lost message {n}: {other:?}"),
    }
}

fn connect_frame(uid: &str, token: &str) -> Vec<u8> {
    let keys = proto::crypto::ClientKeys::generate();
    let c = Packet::Connect(proto::Connect {
        version: 4,
        uid: uid.into(),
        token: token.into(),
        device_id: "d".into(),
        client_key: keys.public_b64(),
        ..Default::default()
    });
    proto::encode_to_vec(&c, 4).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_connection_is_closed_alone_with_a_reason() {
    let cl = Topology::nodes(1).edge("connect_timeout_ms = 1000\nmax_frame = 4096").start().await;
    cl.api.user("alice", 0).await;
    cl.api.user("bob", 0).await;
    let alice = connect(&cl.tcp(), "alice", 0).await;
    let mut bob = connect(&cl.tcp(), "bob", 0).await;
    let addr = cl.tcp();
    still_works(&alice, &mut bob, 0).await;

    // Garbage: packet type 15 does not exist.
    let reason = disconnect_reason(&raw_exchange(&addr, &[0xff, 0xff, 0xff, 0xff]).await);
    assert!(reason.contains("unknown packet type"), "{reason}");
    still_works(&alice, &mut bob, 1).await;

    // A length over the limit is refused as soon as it is read, before any body arrives.
    let reason = disconnect_reason(&raw_exchange(&addr, &[0x10, 0xff, 0xff, 0xff, 0x7f]).await);
    assert!(reason.contains("exceeds the limit"), "{reason}");
    still_works(&alice, &mut bob, 2).await;

    // A complete frame whose body ends inside a field.
    let reason = disconnect_reason(&raw_exchange(&addr, &[0x10, 0x03, 0x04, 0x00, 0x00]).await);
    assert!(reason.contains("ends inside field"), "{reason}");
    // A frame that never finishes: the connection is dropped at the CONNECT deadline.
    let reason = disconnect_reason(&raw_exchange(&addr, &[0x10, 0x30, 0x04]).await);
    assert!(reason.contains("no CONNECT"), "{reason}");
    still_works(&alice, &mut bob, 3).await;

    // SEND before CONNECT.
    let send = Packet::Send(proto::Send { channel_id: "bob".into(), channel_type: 1, ..Default::default() });
    let reason = disconnect_reason(&raw_exchange(&addr, &proto::encode_to_vec(&send, 4).unwrap()).await);
    assert!(reason.contains("first frame must be CONNECT"), "{reason}");
    still_works(&alice, &mut bob, 4).await;

    // Wrong token: CONNACK with reason 2 (auth fail), then close.
    match raw_exchange(&addr, &connect_frame("alice", "wrong")).await.first() {
        Some(Packet::Connack(a)) => assert_eq!(a.reason_code, 2),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    let err = Client::connect(ClientOptions::new(addr.clone(), "alice", "wrong")).await.err();
    assert!(matches!(err, Some(ClientError::Rejected(2))), "{err:?}");
    still_works(&alice, &mut bob, 5).await;

    // After authenticating, garbage and oversize frames still close only that session.
    for (i, tail) in [vec![0x00u8, 0x01], vec![0x30, 0xff, 0xff, 0x01]].into_iter().enumerate() {
        let mut bytes = connect_frame("bob", "bob-tok");
        bytes.extend_from_slice(&tail);
        let packets = raw_exchange(&addr, &bytes).await;
        assert!(matches!(packets.first(), Some(Packet::Connack(a)) if a.reason_code == 1), "{packets:?}");
        assert!(disconnect_reason(&packets).contains("malformed frame"));
        // Bob's second login (same device) replaced his first session: reconnect him. The edge
        // announces sessions on its first link and alice's SEND may take another: wait until the core
        // counts bob's new session (alice and bob), or the message can overtake the announcement.
        bob = connect(&addr, "bob", 0).await;
        let http = cl.node(0).addr("http");
        common::wait_metric(&http, "tern_core_online_sessions", Duration::from_secs(5), |n| n == 2.0).await;
        still_works(&alice, &mut bob, 6 + i).await;
    }

    // A tampered SEND (bad msgKey) and an undecryptable payload are refused with reasons 8 and 9; the
    // session stays up and answers PING.
    cl.api.user("alice", 2).await;
    let keys = proto::crypto::ClientKeys::generate();
    let mut raw = Raw { s: TcpStream::connect(&addr).await.unwrap(), buf: Vec::new() };
    let c = Packet::Connect(proto::Connect {
        version: 4,
        uid: "alice".into(),
        token: "alice-tok".into(),
        device_flag: 2,
        device_id: "raw".into(),
        client_key: keys.public_b64(),
        ..Default::default()
    });
    raw.write(&c).await;
    let Packet::Connack(ack) = raw.next().await else { panic!("no CONNACK") };
    let cipher = keys.finish(&ack.server_key, &ack.salt).unwrap();
    let bad_payload = b"not-base64!".to_vec();
    let sends = [
        (1u32, cipher.encrypt(b"{}").into_bytes(), "0123456789abcdef0123456789abcdef".to_string(), 8u8),
        (2, bad_payload.clone(), cipher.send_msg_key(2, "m2", "bob", 1, &bad_payload), 9),
    ];
    for (seq, payload, msg_key, want) in sends {
        raw.write(&Packet::Send(proto::Send {
            client_seq: seq,
            client_msg_no: format!("m{seq}"),
            channel_id: "bob".into(),
            channel_type: 1,
            msg_key,
            payload,
            ..Default::default()
        }))
        .await;
        match raw.next().await {
            Packet::Sendack(a) => assert_eq!((a.client_seq, a.reason_code), (seq, want)),
            other => panic!("expected SENDACK, got {other:?}"),
        }
    }
    raw.write(&Packet::Ping).await;
    assert_eq!(raw.next().await, Packet::Pong);
    assert_eq!(bob.recv_timeout(Duration::from_millis(300)).await, None, "refused sends reach no one");
    still_works(&alice, &mut bob, 9).await;
}

/// A hand-driven client connection.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn write(&mut self, p: &Packet) {
        self.s.write_all(&proto::encode_to_vec(p, 4).unwrap()).await.unwrap();
    }

    async fn next(&mut self) -> Packet {
        loop {
            if let Some((p, used)) = proto::decode(&self.buf, 4, proto::DEFAULT_MAX_FRAME).unwrap() {
                self.buf.drain(..used);
                return p;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut chunk)).await.unwrap().unwrap();
            assert!(n > 0, "edge closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_others_keep_going() {
    let cl = Topology::nodes(1).edge("session_queue = 8\nwrite_timeout_ms = 1000").start().await;
    for uid in ["alice", "bob", "slow"] {
        cl.api.user(uid, 0).await;
    }
    let alice = connect(&cl.tcp(), "alice", 0).await;
    let mut bob = connect(&cl.tcp(), "bob", 0).await;

    // `slow` logs in with a tiny receive buffer, then never reads again.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = Raw { s: socket.connect(cl.tcp().parse().unwrap()).await.unwrap(), buf: Vec::new() };
    slow.s.write_all(&connect_frame("slow", "slow-tok")).await.unwrap();
    assert!(matches!(slow.next().await, Packet::Connack(a) if a.reason_code == 1));

    // ~11 MB of deliveries: more than any socket buffer holds.
    let big = format!("{{\"type\":1,\"content\":\"{}\"}}", "x".repeat(4000)).into_bytes();
    let mut waits = Vec::new();
    for _ in 0..2000 {
        let msg = tern_shared::client::Outgoing {
            channel_id: "slow".into(),
            channel_type: 1,
            payload: big.clone(),
            ..Default::default()
        };
        waits.push(alice.send_nowait(msg).await.unwrap());
    }
    for w in waits {
        assert_eq!(w.await.unwrap().reason_code, 1, "storing does not wait for a slow recipient");
    }
    let metrics = format!("http://{}/metrics", cl.edge.addr("http"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let online = cl.api.ok("/user/onlinestatus", serde_json::json!(["slow"])).await;
        let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        if online.as_array().is_some_and(|a| a.is_empty()) && !text.contains("tern_edge_slow_clients_closed_total 0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slow client was not closed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    still_works(&alice, &mut bob, 0).await;
}

/// The refusal's reason code, or `None` for a session.
async fn refusal(o: ClientOptions) -> Option<u8> {
    match Client::connect(o).await {
        Ok(_) => None,
        Err(ClientError::Rejected(code)) => Some(code),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guessing_is_cut_off_per_address_and_per_uid_without_locking_out_good_logins() {
    let cl = Topology::nodes(1).edge("login_failures_per_addr = 3\nlogin_failures_per_uid = 4").start().await;
    cl.api.user("alice", 0).await;
    cl.api.user("bob", 0).await;
    let login = |from: [u8; 4], uid: &str, token: &str| {
        let mut o = ClientOptions::new(cl.tcp(), uid, token);
        o.source = Some(std::net::IpAddr::from(from));
        refusal(o)
    };
    let auth_fail = Some(proto::Reason::AuthFail.code());
    let limited = |reason: &str| {
        let http = cl.edge.addr("http");
        let series = format!("tern_edge_connect_rejected_total{{reason=\"{reason}\"}}");
        async move { common::metric(&http, &series).await.unwrap_or(0.0) }
    };

    // One address guessing alice's token: three guesses are checked, then it is turned away unchecked,
    // even with the right token; other addresses log in as usual.
    for _ in 0..3 {
        assert_eq!(login([127, 0, 0, 2], "alice", "guess").await, auth_fail);
    }
    assert_eq!(login([127, 0, 0, 2], "alice", "alice-tok").await, auth_fail);
    assert_eq!(login([127, 0, 0, 2], "bob", "bob-tok").await, auth_fail);
    assert_eq!(limited("login_limit_addr").await, 2.0);
    assert_eq!(login([127, 0, 0, 3], "alice", "alice-tok").await, None);

    // Guesses for bob from several addresses: past four, addresses that failed are refused for bob,
    // while bob's own device, at an address that never failed, still logs in.
    for from in [[127, 0, 0, 4], [127, 0, 0, 5]] {
        for _ in 0..2 {
            assert_eq!(login(from, "bob", "guess").await, auth_fail);
        }
    }
    assert_eq!(login([127, 0, 0, 4], "bob", "bob-tok").await, auth_fail);
    assert_eq!(limited("login_limit_uid").await, 1.0);
    assert_eq!(login([127, 0, 0, 6], "bob", "bob-tok").await, None);
    assert_eq!(login([127, 0, 0, 4], "alice", "alice-tok").await, None, "the address may still log others in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_guesses_count_against_the_address_a_local_proxy_names() {
    let cl = Topology::nodes(1).edge("login_failures_per_addr = 3\nlogin_failures_per_uid = 100").start().await;
    cl.api.user("alice", 0).await;
    // The edge's own access layer and local proxies connect from loopback and name the client in
    // X-Forwarded-For (a remote peer's header is ignored: `listeners/ws.rs`'s unit test).
    let login = |forwarded: Option<&str>, token: &str| {
        let mut o = ClientOptions::new(cl.ws(), "alice", token);
        o.ws_headers = forwarded.map(|f| ("X-Forwarded-For".to_string(), f.to_string())).into_iter().collect();
        refusal(o)
    };
    let auth_fail = Some(proto::Reason::AuthFail.code());
    for n in 0..3 {
        // What the client wrote first, then what the proxy added.
        assert_eq!(login(Some(&format!("198.51.100.{n}, 203.0.113.9")), "guess").await, auth_fail);
    }
    assert_eq!(login(Some("203.0.113.9"), "alice-tok").await, auth_fail, "the named address is cut off");
    assert_eq!(login(Some("203.0.113.10"), "alice-tok").await, None, "another client behind the proxy is not");
    assert_eq!(login(None, "alice-tok").await, None, "nor is the proxy's own address");
}

/// The edge's resident memory, as its `/healthz` reports it.
async fn edge_rss(cl: &Cluster) -> u64 {
    let url = format!("http://{}/healthz", cl.edge.addr("http"));
    let health: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    health["rss_bytes"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pipelining_big_sends_is_held_to_its_budget_while_others_keep_their_latency() {
    const MIB: usize = 1 << 20;
    let cl = Topology::nodes(1).edge("max_frame = 2097152").start().await;
    for uid in ["flood", "alice", "bob"] {
        cl.api.user(uid, 0).await;
    }
    let flood = connect(&cl.tcp(), "flood", 0).await;
    let alice = connect(&cl.tcp(), "alice", 0).await;
    let mut bob = connect(&cl.tcp(), "bob", 0).await;
    still_works(&alice, &mut bob, 1).await;
    let before = edge_rss(&cl).await;

    // With the core paused, nothing is answered: the edge reads the flood only up to the client's
    // budget (2 MiB), and the rest waits in the client and the kernel. Unencrypted payloads (the
    // protocol's NO_ENCRYPT) keep the edge from being the bottleneck itself.
    cl.node(0).signal("STOP");
    let mut acks = Vec::new();
    for n in 0..40u8 {
        let msg = tern_shared::client::Outgoing {
            channel_id: "nobody".into(),
            channel_type: 1,
            payload: vec![n; MIB],
            setting: proto::setting::NO_ENCRYPT,
            ..Default::default()
        };
        acks.push(flood.send_nowait(msg).await.expect("queued"));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = edge_rss(&cl).await.saturating_sub(before) as usize;
    cl.node(0).signal("CONT");

    // While the flood drains, another client's messages still go through promptly.
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = std::time::Instant::now();
        assert_eq!(alice.send_text("bob", 1, "still quick").await.unwrap().reason_code, 1);
        slowest = slowest.max(started.elapsed());
    }
    let mut acked = 0;
    for ack in acks {
        if tokio::time::timeout(Duration::from_secs(20), ack).await.is_ok_and(|a| a.is_ok_and(|a| a.reason_code == 1)) {
            acked += 1;
        }
    }
    eprintln!("edge grew {} MiB with the core paused; slowest other send {slowest:?}; {acked} of 40 acked", held >> 20);
    assert!(held < 24 * MIB, "the edge held {} MiB of one client's sends", held >> 20);
    assert!(slowest < Duration::from_secs(3), "another client's send took {slowest:?}");
    assert_eq!(acked, 40, "every held SEND is stored once the core is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_can_refuse_payloads_in_the_clear() {
    let cl = Topology::nodes(1).edge("refuse_no_encrypt = true").start().await;
    cl.api.user("alice", 0).await;
    cl.api.user("bob", 0).await;
    let alice = connect(&cl.tcp(), "alice", 0).await;
    let mut bob = connect(&cl.tcp(), "bob", 0).await;
    let clear = tern_shared::client::Outgoing {
        channel_id: "bob".into(),
        channel_type: 1,
        payload: b"in the clear".to_vec(),
        setting: proto::setting::NO_ENCRYPT,
        ..Default::default()
    };
    assert_eq!(alice.send(clear).await.unwrap().reason_code, proto::Reason::NotAllowSend.code());
    still_works(&alice, &mut bob, 1).await;
}

/// An edge of a newer release (a link version this core does not speak) is told why and turned away,
/// and the links already up keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_speaking_another_link_version_is_refused_with_the_reason() {
    use tern_shared::link::{encode, io::FrameReader, EdgeAddrs, LinkFrame, LINK_VERSION};
    let cl = Topology::nodes(1).start().await;
    cl.api.user("alice", 0).await;
    cl.api.user("bob", 0).await;
    let newer = LINK_VERSION + 1;
    let hello = LinkFrame::Hello {
        version: newer,
        edge_id: "edge-next".into(),
        addrs: EdgeAddrs::default(),
        lane: 0,
        instance: 7,
    };
    let mut frame = Vec::new();
    encode(&hello, &mut frame).unwrap();
    let mut tcp = TcpStream::connect(cl.node(0).addr("link")).await.unwrap();
    tcp.write_all(&frame).await.unwrap();
    let mut reader = FrameReader::new(tcp);
    match tokio::time::timeout(Duration::from_secs(5), reader.next()).await {
        Ok(Ok(Some(LinkFrame::Refused(why)))) => assert!(why.contains(&format!("link version {newer}")), "{why}"),
        other => panic!("expected a refusal naming the version, got {other:?}"),
    }
    let alice = connect(&cl.tcp(), "alice", 0).await;
    let mut bob = connect(&cl.tcp(), "bob", 0).await;
    still_works(&alice, &mut bob, 1).await;
}

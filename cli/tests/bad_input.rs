//! Bad input closes (or refuses) that one connection with a clear reason; a healthy client on the same
//! edge keeps working throughout.

mod common;

use common::{connect, Cluster};
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
    let cl = Cluster::start("connect_timeout_ms = 1000\nmax_frame = 4096").await;
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
        // Bob's second login (same device) replaced his first session: reconnect him.
        bob = connect(&addr, "bob", 0).await;
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
    let cl = Cluster::start("session_queue = 8\nwrite_timeout_ms = 1000").await;
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

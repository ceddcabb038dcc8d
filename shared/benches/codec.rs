//! Client codec throughput: decode and encode of typical SEND and RECV frames (100-byte payload), and the
//! per-message crypto an edge does (decrypt + msgKey check on SEND, encrypt + msgKey on RECV).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tern_shared::proto::{self, crypto::SessionCipher, Packet};

fn frames() -> (SessionCipher, Vec<u8>, Packet) {
    let cipher = SessionCipher::new(b"0123456789abcdef", b"fedcba9876543210").unwrap();
    let plain = format!("{{\"type\":1,\"content\":\"{}\"}}", "x".repeat(75));
    let payload = cipher.encrypt(plain.as_bytes()).into_bytes();
    let send = Packet::Send(proto::Send {
        client_seq: 7,
        client_msg_no: "3f2a9c1e5b7d4a8f9e0c1b2a3d4e5f60".into(),
        channel_id: "bob".into(),
        channel_type: 1,
        msg_key: cipher.send_msg_key(7, "3f2a9c1e5b7d4a8f9e0c1b2a3d4e5f60", "bob", 1, &payload),
        payload: payload.clone(),
        ..Default::default()
    });
    let recv = Packet::Recv(proto::Recv {
        msg_key: "7ace59429d3d6662ff77f785c05ab634".into(),
        from_uid: "alice".into(),
        channel_id: "alice".into(),
        channel_type: 1,
        client_msg_no: "3f2a9c1e5b7d4a8f9e0c1b2a3d4e5f60".into(),
        message_id: 123_456_789,
        message_seq: 42,
        timestamp: 1_700_000_000,
        payload,
        ..Default::default()
    });
    (cipher, proto::encode_to_vec(&send, 4).unwrap(), recv)
}

fn codec(c: &mut Criterion) {
    let (cipher, send_bytes, recv) = frames();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode SEND", |b| {
        b.iter(|| proto::decode(black_box(&send_bytes), 4, proto::DEFAULT_MAX_FRAME).unwrap())
    });
    let mut out = Vec::with_capacity(512);
    g.bench_function("encode RECV", |b| {
        b.iter(|| {
            out.clear();
            proto::encode(black_box(&recv), 4, &mut out).unwrap();
        })
    });
    g.finish();

    let Ok(Some((Packet::Send(send), _))) = proto::decode(&send_bytes, 4, proto::DEFAULT_MAX_FRAME) else {
        panic!("bench frame must decode")
    };
    let mut g = c.benchmark_group("crypto");
    g.throughput(Throughput::Elements(1));
    g.bench_function("SEND: check msgKey + decrypt", |b| {
        b.iter(|| {
            let key = cipher.send_msg_key(send.client_seq, &send.client_msg_no, &send.channel_id, 1, &send.payload);
            assert_eq!(key, send.msg_key);
            cipher.decrypt(black_box(&send.payload)).unwrap()
        })
    });
    let plain = cipher.decrypt(&send.payload).unwrap();
    g.bench_function("RECV: encrypt + msgKey", |b| {
        b.iter(|| {
            let p = cipher.encrypt(black_box(&plain)).into_bytes();
            cipher.recv_msg_key(1, 2, "no", 3, "alice", "alice", 1, &p)
        })
    });
    // A login's token check, as stored before (the token itself) and now (its hash, and the proof the
    // edge sends with the session), side by side.
    let (uid, token) = ("user-0001234", "a-business-issued-token-0123456789");
    let hash = tern_shared::secret::user_token_hash(uid, token);
    g.bench_function("login: token compared as stored before", |b| {
        b.iter(|| tern_shared::secret::same(black_box(token.as_bytes()), black_box(token.as_bytes())))
    });
    g.bench_function("login: token hashed and compared", |b| {
        b.iter(|| {
            tern_shared::secret::same(&tern_shared::secret::user_token_hash(black_box(uid), black_box(token)), &hash)
        })
    });
    g.bench_function("login: session proof", |b| {
        b.iter(|| tern_shared::secret::session_proof(black_box(&hash), "edge-1", black_box(42), 0))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);

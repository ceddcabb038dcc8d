use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn decode_all(bytes: &[u8], version: u8) -> Packet {
    let (p, used) = decode(bytes, version, DEFAULT_MAX_FRAME).unwrap().unwrap();
    assert_eq!(used, bytes.len());
    p
}

#[test]
fn connect_vector() {
    let bytes = hex("10230201000564657631570005616c6963650003746f6b0000018bcfe56800000441414141");
    let p = decode_all(&bytes, 0);
    let Packet::Connect(c) = &p else { panic!("{p:?}") };
    assert_eq!((c.version, c.device_flag), (2, 1));
    assert_eq!((c.device_id.as_str(), c.uid.as_str(), c.token.as_str()), ("dev1W", "alice", "tok"));
    assert_eq!(c.client_timestamp, 1_700_000_000_000);
    assert_eq!(c.client_key, "AAAA");
    assert_eq!(encode_to_vec(&p, 2).unwrap(), bytes);
}

#[test]
fn send_vector() {
    let bytes = hex("306000000000070005636d6e2d310003626f620100203761636535393432396433643636363266663737663738356330356162363334685a493275456a48466b4231397450694830616b4543784d557a6f7853437548574e702b69474d313557413d");
    let p = decode_all(&bytes, 2);
    let Packet::Send(s) = &p else { panic!("{p:?}") };
    assert_eq!((s.setting, s.client_seq, s.client_msg_no.as_str()), (0, 7, "cmn-1"));
    assert_eq!((s.channel_id.as_str(), s.channel_type), ("bob", 1));
    assert_eq!(s.msg_key, "7ace59429d3d6662ff77f785c05ab634");
    assert_eq!(s.payload, b"hZI2uEjHFkB19tPiH0akECxMUzoxSCuHWNp+iGM15WA=");
    assert_eq!(encode_to_vec(&p, 2).unwrap(), bytes);
}

#[test]
fn recvack_vector() {
    let bytes = hex("600c00000000075bcd1500000003");
    let p = decode_all(&bytes, 2);
    assert_eq!(p, Packet::Recvack(Recvack { flags: 0, message_id: 123_456_789, message_seq: 3 }));
    assert_eq!(encode_to_vec(&p, 2).unwrap(), bytes);
}

#[test]
fn partial_frames_need_more_bytes() {
    let bytes = hex("600c00000000075bcd1500000003");
    for cut in 0..bytes.len() {
        assert_eq!(decode(&bytes[..cut], 2, DEFAULT_MAX_FRAME).unwrap(), None, "cut at {cut}");
    }
}

#[test]
fn bad_frames_are_errors() {
    assert_eq!(decode(&[0x00], 4, 1024), Err(DecodeError::UnknownPacketType(0)));
    assert_eq!(decode(&[0xf0, 0x00], 4, 1024), Err(DecodeError::UnknownPacketType(15)));
    assert_eq!(decode(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], 4, 1024), Err(DecodeError::VarintTooLong));
    // The limit is checked as soon as the length is known, before the body arrives.
    assert_eq!(decode(&[0x30, 0x80, 0x10], 4, 1024), Err(DecodeError::FrameTooLarge { len: 2048, max: 1024 }));
    // A complete frame whose body ends inside a field.
    assert!(matches!(
        decode(&[0x60, 0x03, 0, 0, 0], 4, 1024),
        Err(DecodeError::Truncated { packet: PacketType::Recvack, field: "messageID" })
    ));
    assert!(matches!(decode(&[0x90, 0x04, 1, 0, 2, 0xff, 0xfe], 4, 1024), Err(DecodeError::Truncated { .. })));
    assert!(matches!(decode(&[0x90, 0x05, 1, 0, 2, 0xff, 0xfe], 4, 1024), Err(DecodeError::InvalidUtf8 { .. })));
}

#[test]
fn ping_pong_are_one_byte() {
    assert_eq!(decode(&[0x70, 0x70], 4, 16).unwrap(), Some((Packet::Ping, 1)));
    assert_eq!(encode_to_vec(&Packet::Pong, 4).unwrap(), vec![0x80]);
}

#[test]
fn negotiation() {
    assert_eq!(negotiate_version(1), None);
    assert_eq!(negotiate_version(2), Some(2));
    assert_eq!(negotiate_version(9), Some(5));
}

fn s() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9@_-]{0,12}"
}
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..64)
}

/// Any packet; fields a version does not carry are fixed up by `for_version`.
fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        (any::<u8>(), any::<u8>(), any::<u8>(), s(), s(), s(), any::<i64>(), s()).prop_map(
            |(f, v, d, di, u, t, ts, k)| {
                Packet::Connect(Connect {
                    flags: f & 0x0f,
                    version: v,
                    device_flag: d,
                    device_id: di,
                    uid: u,
                    token: t,
                    client_timestamp: ts,
                    client_key: k,
                })
            }
        ),
        (proptest::option::of(any::<u8>()), any::<i64>(), any::<u8>(), s(), s(), any::<u64>()).prop_map(
            |(sv, td, r, k, salt, n)| {
                Packet::Connack(Connack {
                    server_version: sv,
                    time_diff: td,
                    reason_code: r,
                    server_key: k,
                    salt,
                    node_id: n,
                })
            }
        ),
        (any::<u8>(), any::<u8>(), any::<u32>(), s(), s(), s(), any::<u8>(), any::<u32>(), s(), s(), bytes()).prop_map(
            |(f, st, cs, cmn, sn, ch, ct, ex, mk, tp, pl)| Packet::Send(Send {
                flags: f & 0x0f,
                setting: st,
                client_seq: cs,
                client_msg_no: cmn,
                stream_no: sn,
                channel_id: ch,
                channel_type: ct,
                expire: ex,
                msg_key: mk,
                topic: tp,
                payload: pl,
            })
        ),
        (any::<u8>(), any::<i64>(), any::<u32>(), any::<u32>(), any::<u8>()).prop_map(|(f, id, cs, seq, r)| {
            Packet::Sendack(Sendack {
                flags: f & 0x0f,
                message_id: id,
                client_seq: cs,
                message_seq: seq,
                reason_code: r,
            })
        }),
        (
            (any::<u8>(), any::<u8>(), s(), s(), s(), any::<u8>()),
            (any::<u32>(), s(), any::<i64>(), any::<u32>(), any::<i32>(), s(), bytes())
        )
            .prop_map(|((f, st, mk, from, ch, ct), (ex, cmn, id, seq, ts, tp, pl))| Packet::Recv(Recv {
                flags: f & 0x0f,
                setting: st,
                msg_key: mk,
                from_uid: from,
                channel_id: ch,
                channel_type: ct,
                expire: ex,
                client_msg_no: cmn,
                message_id: id,
                message_seq: seq,
                timestamp: ts,
                topic: tp,
                payload: pl,
            })),
        (any::<u8>(), any::<i64>(), any::<u32>()).prop_map(|(f, id, seq)| Packet::Recvack(Recvack {
            flags: f & 0x0f,
            message_id: id,
            message_seq: seq
        })),
        Just(Packet::Ping),
        Just(Packet::Pong),
        (any::<u8>(), s()).prop_map(|(r, reason)| Packet::Disconnect(Disconnect { reason_code: r, reason })),
        (any::<u8>(), s(), s(), any::<u8>(), any::<u8>(), s()).prop_map(|(st, no, ch, ct, a, p)| {
            Packet::Sub(Sub { setting: st, sub_no: no, channel_id: ch, channel_type: ct, action: a, param: p })
        }),
        (s(), s(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(no, ch, ct, a, r)| {
            Packet::Suback(Suback { sub_no: no, channel_id: ch, channel_type: ct, action: a, reason_code: r })
        }),
        (s(), s(), any::<i64>(), bytes()).prop_map(|(id, t, ts, d)| Packet::Event(Event {
            id,
            event_type: t,
            timestamp: ts,
            data: d
        })),
    ]
}

fn for_version(mut p: Packet, v: u8) -> Packet {
    let stream_version = (2..5).contains(&v);
    match &mut p {
        Packet::Connack(c) if v < 4 => c.node_id = 0,
        Packet::Send(s) => {
            if v < 3 {
                s.expire = 0;
            }
            if !stream_version || s.setting & setting::STREAM == 0 {
                s.stream_no.clear();
            }
            if s.setting & setting::TOPIC == 0 {
                s.topic.clear();
            }
        }
        Packet::Recv(r) => {
            if v < 3 {
                r.expire = 0;
            }
            if stream_version {
                r.setting &= !setting::STREAM;
            }
            if r.setting & setting::TOPIC == 0 {
                r.topic.clear();
            }
        }
        _ => {}
    }
    p
}

proptest! {
    #[test]
    fn round_trip(p in packet(), v in 2u8..=5) {
        let p = for_version(p, v);
        let bytes = encode_to_vec(&p, v).unwrap();
        prop_assert_eq!(decode(&bytes, v, DEFAULT_MAX_FRAME).unwrap(), Some((p, bytes.len())));
    }

    #[test]
    fn back_to_back_frames(ps in proptest::collection::vec(packet(), 1..8), v in 2u8..=5) {
        let ps: Vec<_> = ps.into_iter().map(|p| for_version(p, v)).collect();
        let mut stream = Vec::new();
        for p in &ps {
            encode(p, v, &mut stream).unwrap();
        }
        let mut pos = 0;
        for p in &ps {
            let (got, used) = decode(&stream[pos..], v, DEFAULT_MAX_FRAME).unwrap().unwrap();
            prop_assert_eq!(&got, p);
            pos += used;
        }
        prop_assert_eq!(pos, stream.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256), v in 0u8..=6) {
        let mut rest = &data[..];
        while let Ok(Some((_, used))) = decode(rest, v, 128) {
            prop_assert!(used > 0 && used <= rest.len());
            rest = &rest[used..];
        }
    }
}

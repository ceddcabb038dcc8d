//! Any bytes, at any protocol version and frame limit: the client decoder returns a packet, asks for more
//! bytes or errors, never panics; a decoded packet re-encodes to bytes that decode to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_shared::proto;

fuzz_target!(|data: &[u8]| {
    let Some((&version, rest)) = data.split_first() else { return };
    let version = 2 + version % 4;
    let mut buf = rest;
    while let Ok(Some((packet, used))) = proto::decode(buf, version, 64 * 1024) {
        assert!(used > 0 && used <= buf.len());
        if let Ok(bytes) = proto::encode_to_vec(&packet, version) {
            let again = proto::decode(&bytes, version, usize::MAX >> 1).expect("re-encoded frame decodes");
            assert_eq!(again.map(|(p, _)| p), Some(packet));
        }
        buf = &buf[used..];
    }
});

//! Any bytes as a frame body on the raft port, read as a request (with its group) and as a response:
//! an error or a value, never a panic or an allocation past the frame limit; what decodes encodes back
//! to something that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_wire::rpc::{decode, RaftRequest, RaftResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode::<(u16, RaftRequest)>(data) {
        again(&request);
    }
    if let Ok(response) = decode::<RaftResponse>(data) {
        again(&response);
    }
});

fn again<T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(value: &T) {
    let body = bincode::serialize(value).expect("a decoded value encodes");
    let back: T = decode(&body).expect("an encoded value decodes");
    assert_eq!(format!("{back:?}"), format!("{value:?}"));
}

//! Any bytes fed to the edge↔core link decoder: a frame, a request for more bytes, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while let Ok(Some((_, used))) = tern_shared::link::decode(buf) {
        assert!(used > 0 && used <= buf.len());
        buf = &buf[used..];
    }
});

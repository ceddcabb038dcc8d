//! Any bytes fed to the PROXY protocol decoder: a header, a request for more bytes, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, used))) = tern_shared::proxy::decode(data) {
        assert!(used <= data.len());
    }
});

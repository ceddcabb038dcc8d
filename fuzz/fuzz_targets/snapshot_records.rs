//! Any bytes as a snapshot file's fields, under any bound: the reader returns fields within the bound,
//! ends or errors, never panics or allocates past the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_shared::records::read_field;

fuzz_target!(|data: &[u8]| {
    let Some((&bound, rest)) = data.split_first() else { return };
    let max = usize::from(bound) * 64;
    let mut r = rest;
    while let Ok(Some(field)) = read_field(&mut r, max, "field") {
        assert!(field.len() <= max);
    }
});

//! Length-prefixed fields (u32 BE length, then the bytes), as core nodes write their snapshot files and
//! send them to each other. The reader refuses a length over the caller's bound instead of allocating
//! it, and reports a field cut short as an error.

use std::io::{self, Read, Write};

pub fn write_field(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len =
        u32::try_from(bytes.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "field over 4 GiB"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(bytes)
}

/// The next field of at most `max` bytes; `None` at a clean end (no bytes left before a length).
pub fn read_field(r: &mut impl Read, max: usize, what: &str) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{what} length cut short"))),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{what} of {len} bytes (at most {max})")));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fields_come_back_as_written(fields in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut buf = Vec::new();
            for f in &fields {
                write_field(&mut buf, f).unwrap();
            }
            let mut r = buf.as_slice();
            let mut back = Vec::new();
            while let Some(f) = read_field(&mut r, 64, "field").unwrap() {
                back.push(f);
            }
            prop_assert_eq!(back, fields);
        }

        #[test]
        fn any_bytes_end_cleanly_or_err(bytes in proptest::collection::vec(any::<u8>(), 0..256), max in 0usize..128) {
            let mut r = bytes.as_slice();
            let mut total = 0;
            while let Ok(Some(f)) = read_field(&mut r, max, "field") {
                prop_assert!(f.len() <= max);
                total += 4 + f.len();
            }
            prop_assert!(total <= bytes.len());
        }
    }

    #[test]
    fn a_cut_field_is_an_error() {
        let mut buf = Vec::new();
        write_field(&mut buf, b"hello").unwrap();
        for cut in 1..buf.len() {
            assert!(read_field(&mut &buf[..cut], 64, "field").is_err(), "cut at {cut}");
        }
        assert!(read_field(&mut buf.as_slice(), 4, "field").is_err(), "over the bound");
    }
}

//! MQTT-style "remaining length": 7 bits per byte, least significant group first, at most 4 bytes.

use super::DecodeError;

/// Largest value four varint bytes can hold.
pub const MAX_VARINT: usize = (1 << 28) - 1;

/// Reads a remaining length from the start of `buf`.
/// `Ok(None)` means more bytes are needed; `Ok(Some((value, bytes_used)))` otherwise.
pub fn read(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, byte) in buf.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::VarintTooLong)
    } else {
        Ok(None)
    }
}

/// Appends `value` (at most [`MAX_VARINT`]) as a remaining length.
pub fn write(mut value: usize, out: &mut Vec<u8>) {
    debug_assert!(value <= MAX_VARINT);
    loop {
        let mut byte = (value & 0x7f) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        for (value, bytes) in [
            (0usize, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xff, 0x7f]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (MAX_VARINT, vec![0xff, 0xff, 0xff, 0x7f]),
        ] {
            let mut out = Vec::new();
            write(value, &mut out);
            assert_eq!(out, bytes);
            assert_eq!(read(&bytes).unwrap(), Some((value, bytes.len())));
            assert_eq!(read(&bytes[..bytes.len() - 1]).unwrap(), None);
        }
    }

    #[test]
    fn five_bytes_rejected() {
        assert!(matches!(read(&[0x80, 0x80, 0x80, 0x80, 0x01]), Err(DecodeError::VarintTooLong)));
    }
}

//! Length-prefixed link frames: a u32 big-endian body length, then the bincode body.

use super::LinkFrame;
use bincode::Options;

/// Bound on one link frame's body; a peer that sends more is cut off.
pub const MAX_LINK_FRAME: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LinkCodecError {
    #[error("link frame of {0} bytes exceeds the limit of {MAX_LINK_FRAME}")]
    TooLarge(usize),
    #[error("malformed link frame: {0}")]
    Malformed(#[from] bincode::Error),
}

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_LINK_FRAME as u64)
}

/// Appends one framed `frame` to `out`.
pub fn encode(frame: &LinkFrame, out: &mut Vec<u8>) -> Result<(), LinkCodecError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    options().serialize_into(&mut *out, frame)?;
    let len = out.len() - start - 4;
    if len > MAX_LINK_FRAME {
        out.truncate(start);
        return Err(LinkCodecError::TooLarge(len));
    }
    out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Decodes one frame from the front of `buf`; `Ok(None)` means more bytes are needed.
pub fn decode(buf: &[u8]) -> Result<Option<(LinkFrame, usize)>, LinkCodecError> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_LINK_FRAME {
        return Err(LinkCodecError::TooLarge(len));
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let frame = options().deserialize(body)?;
    Ok(Some((frame, 4 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_partial() {
        let frames = vec![
            LinkFrame::Hello {
                version: LINK_VERSION,
                edge_id: "e1".into(),
                addrs: EdgeAddrs::default(),
                lane: 1,
                instance: 7,
            },
            LinkFrame::Send {
                req: 9,
                msg: OutgoingMessage {
                    session: 3,
                    from_uid: "a".into(),
                    payload: b"hi".to_vec(),
                    ..Default::default()
                },
            },
            LinkFrame::Deliver(Delivery {
                message: DeliveredMessage { message_id: 1, message_seq: 2, ..Default::default() },
                targets: vec![DeliverTarget { channel_id: "a".into(), clear_red_dot: true, sessions: vec![1, 2] }],
            }),
        ];
        let mut buf = Vec::new();
        for f in &frames {
            encode(f, &mut buf).unwrap();
        }
        let mut pos = 0;
        for f in &frames {
            let (got, used) = decode(&buf[pos..]).unwrap().unwrap();
            assert_eq!(&got, f);
            assert!(decode(&buf[pos..pos + used - 1]).unwrap().is_none());
            pos += used;
        }
    }

    #[test]
    fn oversize_rejected_before_body() {
        let len = (MAX_LINK_FRAME as u32 + 1).to_be_bytes();
        assert!(matches!(decode(&len), Err(LinkCodecError::TooLarge(_))));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&data);
        }
    }
}

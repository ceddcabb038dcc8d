//! Link frames on a tokio byte stream: a reader that keeps partial frames between reads, and a writer
//! loop that packs every queued frame into one write.

use super::{codec, LinkCodecError, LinkFrame};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum LinkIoError {
    #[error("link i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Codec(#[from] LinkCodecError),
}

pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        FrameReader { inner, buf: BytesMut::with_capacity(64 * 1024) }
    }

    /// The next frame, or `None` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<LinkFrame>, LinkIoError> {
        loop {
            if let Some((frame, used)) = codec::decode(&self.buf)? {
                let _ = self.buf.split_to(used);
                return Ok(Some(frame));
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "link closed inside a frame").into())
                };
            }
        }
    }
}

/// Most bytes packed into one write before flushing.
const WRITE_CHUNK: usize = 256 * 1024;

/// Writes frames from `rx` until it closes or the socket fails.
pub async fn write_loop<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<LinkFrame>) -> Result<(), LinkIoError> {
    let mut buf = Vec::with_capacity(WRITE_CHUNK);
    while let Some(frame) = rx.recv().await {
        codec::encode(&frame, &mut buf)?;
        while buf.len() < WRITE_CHUNK {
            match rx.try_recv() {
                Ok(frame) => codec::encode(&frame, &mut buf)?,
                Err(_) => break,
            }
        }
        w.write_all(&buf).await?;
        buf.clear();
    }
    w.shutdown().await?;
    Ok(())
}

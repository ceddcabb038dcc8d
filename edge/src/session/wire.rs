//! A client connection as the session sees it: bytes in, whole frames out.
//!
//! Plain TCP reads into one scratch buffer per worker thread and writes straight to the socket, so an idle
//! TCP session owns no buffers at all; transports with their own framing (WebSocket) come as chunk
//! streams.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::cell::RefCell;
use std::io;
use tern_shared::transport::{ByteRx, ByteTx};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub trait Wire: Send + 'static {
    /// Waits for bytes and hands them to `sink`; `Ok(false)` means the peer closed.
    fn read_some(
        &mut self,
        sink: impl FnMut(&[u8]) + Send,
    ) -> impl std::future::Future<Output = io::Result<bool>> + Send;
    /// Writes the frames in order, in as few writes as the transport allows.
    fn write(&mut self, frames: Vec<Bytes>) -> impl std::future::Future<Output = io::Result<()>> + Send;
    fn close(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

const SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
}

pub struct TcpWire(pub TcpStream);

impl Wire for TcpWire {
    async fn read_some(&mut self, mut sink: impl FnMut(&[u8]) + Send) -> io::Result<bool> {
        loop {
            self.0.readable().await?;
            let read = SCRATCH_BUF.with(|b| {
                let mut b = b.borrow_mut();
                let n = self.0.try_read(&mut b)?;
                sink(&b[..n]);
                Ok::<usize, io::Error>(n)
            });
            match read {
                Ok(n) => return Ok(n > 0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn write(&mut self, frames: Vec<Bytes>) -> io::Result<()> {
        if let [one] = frames.as_slice() {
            return self.0.write_all(one).await;
        }
        self.0.write_all(&frames.concat()).await
    }

    async fn close(&mut self) {
        let _ = self.0.shutdown().await;
    }
}

pub struct StreamWire {
    pub rx: ByteRx,
    pub tx: ByteTx,
}

impl Wire for StreamWire {
    async fn read_some(&mut self, mut sink: impl FnMut(&[u8]) + Send) -> io::Result<bool> {
        match self.rx.next().await {
            Some(Ok(chunk)) => {
                sink(&chunk);
                Ok(true)
            }
            Some(Err(e)) => Err(e),
            None => Ok(false),
        }
    }

    async fn write(&mut self, frames: Vec<Bytes>) -> io::Result<()> {
        for f in frames {
            self.tx.feed(f).await?;
        }
        self.tx.flush().await
    }

    async fn close(&mut self) {
        let _ = self.tx.close().await;
    }
}

/// Any byte stream (TLS, a QUIC stream pair) without framing buffers: reads land in a small buffer that
/// exists only while a read is pending, writes go straight to the stream (whose own layer buffers).
pub struct IoWire<S>(pub S);

/// Read size for streams that bring their own buffering (TLS records are up to 16 KiB; the rest waits
/// in the TLS layer for the next read).
const IO_READ: usize = 2048;

impl<S> Wire for IoWire<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    async fn read_some(&mut self, mut sink: impl FnMut(&[u8]) + Send) -> io::Result<bool> {
        let mut buf = [0u8; IO_READ];
        let n = tokio::io::AsyncReadExt::read(&mut self.0, &mut buf).await?;
        sink(&buf[..n]);
        Ok(n > 0)
    }

    async fn write(&mut self, frames: Vec<Bytes>) -> io::Result<()> {
        if let [one] = frames.as_slice() {
            self.0.write_all(one).await?;
        } else {
            self.0.write_all(&frames.concat()).await?;
        }
        self.0.flush().await
    }

    async fn close(&mut self) {
        let _ = self.0.shutdown().await;
    }
}

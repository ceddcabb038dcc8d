//! A client connection of the access layer as pingora sees it: the socket (plain or TLS, accepted by
//! the edge) plus the bytes the edge already read to look at the first request head, which are
//! served again before anything else. Writes are gathered until pingora flushes, so a response head
//! and a small body leave in one send, as through pingora's own listeners.

use bytes::{Buf, BytesMut};
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, ALPN};
use pingora::protocols::{GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, TimingDigest};
use pingora::protocols::{SocketDigest, UniqueID, UniqueIDType};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Writes up to this size wait for a flush; larger ones go out at once.
const WRITE_BUFFER: usize = 4096;

pub struct Conn<S> {
    io: S,
    replay: BytesMut,
    /// Written, not yet sent; empty (and unallocated) after every flush.
    out: Vec<u8>,
    id: UniqueIDType,
    socket: Arc<SocketDigest>,
    ssl: Option<Arc<SslDigest>>,
    /// HTTP/2 when TLS negotiated it: pingora then speaks h2 on this connection.
    h2: bool,
}

impl<S> Conn<S> {
    /// `fd` is the TCP socket under `io`; `client` the address pingora reports (a PROXY header's
    /// source, or the peer's); `ssl` is set when `io` is TLS.
    pub fn new(
        io: S,
        fd: std::os::fd::RawFd,
        client: SocketAddr,
        ssl: Option<Arc<SslDigest>>,
        replay: BytesMut,
    ) -> Conn<S> {
        let socket = SocketDigest::from_raw_fd(fd);
        let _ = socket.peer_addr.set(Some(pingora::protocols::l4::socket::SocketAddr::Inet(client)));
        Conn { io, replay, out: Vec::new(), id: fd as UniqueIDType, socket: Arc::new(socket), ssl, h2: false }
    }

    /// Marks the connection as one whose TLS handshake chose HTTP/2.
    pub fn h2(mut self) -> Conn<S> {
        self.h2 = true;
        self
    }
}

impl<S> fmt::Debug for Conn<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("fd", &self.id).field("tls", &self.ssl.is_some()).finish()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Conn<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.remaining());
            buf.put_slice(&self.replay[..n]);
            self.replay.advance(n);
            if self.replay.is_empty() {
                self.replay = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> Conn<S> {
    fn poll_send_buffered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sent = 0;
        while sent < self.out.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out[sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.out.drain(..sent);
                    return Poll::Pending;
                }
            }
        }
        self.out = Vec::new();
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.out.len() + buf.len() > WRITE_BUFFER {
            std::task::ready!(self.poll_send_buffered(cx))?;
        }
        if buf.len() >= WRITE_BUFFER {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        }
        self.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_buffered(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_buffered(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl<S: AsyncWrite + Unpin + Send> Shutdown for Conn<S> {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

impl<S> UniqueID for Conn<S> {
    fn id(&self) -> UniqueIDType {
        self.id
    }
}

impl<S> Ssl for Conn<S> {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.ssl.clone()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.h2.then_some(ALPN::H2)
    }
}

impl<S> GetTimingDigest for Conn<S> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}

impl<S> GetProxyDigest for Conn<S> {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl<S> GetSocketDigest for Conn<S> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(self.socket.clone())
    }
}

impl<S> Peek for Conn<S> {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn replayed_bytes_come_first_then_the_stream() {
        let (mut far, near) = tokio::io::duplex(64);
        let mut conn = Conn::new(near, 0, ([127, 0, 0, 1], 9).into(), None, BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]));
        far.write_all(b"Host: a\r\n\r\n").await.unwrap();
        drop(far);
        let mut all = Vec::new();
        conn.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[tokio::test]
    async fn small_writes_wait_for_a_flush_and_large_ones_keep_their_order() {
        let (mut far, near) = tokio::io::duplex(1 << 16);
        let mut conn = Conn::new(near, 0, ([127, 0, 0, 1], 9).into(), None, BytesMut::new());
        conn.write_all(b"head ").await.unwrap();
        conn.write_all(b"body").await.unwrap();
        let mut got = [0u8; 9];
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), far.read(&mut got)).await;
        assert!(early.is_err(), "nothing is sent before the flush");
        conn.flush().await.unwrap();
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"head body");
        let big = vec![7u8; WRITE_BUFFER * 2];
        conn.write_all(b"small ").await.unwrap();
        conn.write_all(&big).await.unwrap();
        AsyncWriteExt::shutdown(&mut conn).await.unwrap();
        let mut rest = Vec::new();
        far.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, [&b"small "[..], &big].concat());
    }
}

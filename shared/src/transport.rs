//! Byte-stream views of client transports. The client protocol is a byte stream whatever carries it:
//! TCP delivers chunks, WebSocket delivers binary messages that may hold several frames or part of one.

use bytes::Bytes;
use futures_util::{Sink, Stream, StreamExt};
use std::task::{Context, Poll};
use std::{io, pin::Pin};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{tungstenite, tungstenite::Message, WebSocketStream};
use tokio_util::codec::{BytesCodec, FramedRead, FramedWrite};

pub type ByteRx = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;
pub type ByteTx = Pin<Box<dyn Sink<Bytes, Error = io::Error> + Send>>;

/// TCP keepalive on a long-lived link, so the kernel notices a peer that vanished without a FIN.
pub fn keepalive(stream: &tokio::net::TcpStream) {
    let probe = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(30))
        .with_interval(std::time::Duration::from_secs(10));
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&probe);
}

/// Splits any byte stream (TCP, TLS, a QUIC stream pair) into chunk streams.
pub fn stream_io<S>(stream: S) -> (ByteRx, ByteTx)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let rx = FramedRead::with_capacity(r, BytesCodec::new(), 4096).map(|r| r.map(|b| b.freeze()));
    let tx = FramedWrite::new(w, BytesCodec::new());
    (Box::pin(rx), Box::pin(tx))
}

/// Splits a WebSocket into chunk streams: inbound binary (and text) messages become chunks, outbound
/// chunks go out as binary messages. Control frames are handled by tungstenite.
pub fn ws_io<S>(ws: WebSocketStream<S>) -> (ByteRx, ByteTx)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let rx = stream.filter_map(|m| async move {
        match m {
            Ok(Message::Binary(b)) => Some(Ok(b)),
            Ok(Message::Text(t)) => Some(Ok(Bytes::copy_from_slice(t.as_bytes()))),
            Ok(Message::Close(_)) => Some(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "websocket closed"))),
            Ok(_) => None,
            Err(e) => Some(Err(io::Error::other(e))),
        }
    });
    (Box::pin(rx), Box::pin(BinarySink(sink)))
}

/// Chunks out as binary WebSocket messages, with io errors. Unlike `sink_map_err`, whose closure is
/// spent on the first error (a second one panics), it may fail any number of times: a failed write
/// is followed by a close that fails too.
struct BinarySink<S>(S);

impl<S: Sink<Message, Error = tungstenite::Error> + Unpin> Sink<Bytes> for BinarySink<S> {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_ready(cx).map_err(io::Error::other)
    }

    fn start_send(mut self: Pin<&mut Self>, chunk: Bytes) -> io::Result<()> {
        Pin::new(&mut self.0).start_send(Message::Binary(chunk)).map_err(io::Error::other)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(io::Error::other)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx).map_err(io::Error::other)
    }
}

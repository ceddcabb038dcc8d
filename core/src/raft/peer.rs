//! A connection to another core node, opened on first use and reopened after any failure.

use super::dial::PeerTls;
use std::io;
use std::time::Duration;
use tern_wire::rpc::{read_frame, write_frame, RaftRequest, RaftResponse};
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;

/// A plain or TLS stream to another node.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

pub struct Peer {
    addr: String,
    tls: Option<PeerTls>,
    /// The raft group every request on this connection is for.
    group: u16,
    conn: Option<BufStream<Box<dyn Io>>>,
}

impl Peer {
    pub fn new(addr: String, tls: Option<PeerTls>, group: u16) -> Self {
        Peer { addr, tls, group, conn: None }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// One request, one response, within `timeout`.
    pub async fn call(&mut self, req: &RaftRequest, timeout: Duration) -> io::Result<RaftResponse> {
        let result = tokio::time::timeout(timeout, self.exchange(req)).await;
        match result {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {} within {timeout:?}", self.addr)))
            }
        }
    }

    async fn exchange(&mut self, req: &RaftRequest) -> io::Result<RaftResponse> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let s = TcpStream::connect(&self.addr).await?;
                s.set_nodelay(true)?;
                let stream: Box<dyn Io> = match &self.tls {
                    None => Box::new(s),
                    Some((connector, name)) => Box::new(connector.connect(name.clone(), s).await?),
                };
                self.conn.insert(BufStream::new(stream))
            }
        };
        write_frame(conn, &(self.group, req)).await?;
        read_frame(conn).await?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed"))
    }
}

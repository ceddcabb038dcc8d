//! A connection to another core node, opened on first use and reopened after any failure.

use super::rpc::{read_frame, write_frame, RaftRequest, RaftResponse};
use std::io;
use std::time::Duration;
use tokio::io::BufStream;
use tokio::net::TcpStream;

pub struct Peer {
    addr: String,
    conn: Option<BufStream<TcpStream>>,
}

impl Peer {
    pub fn new(addr: impl Into<String>) -> Self {
        Peer { addr: addr.into(), conn: None }
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
                self.conn.insert(BufStream::new(s))
            }
        };
        write_frame(conn, req).await?;
        read_frame(conn).await?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed"))
    }
}

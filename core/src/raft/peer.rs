//! A connection to another core node, taken from the node's pool or opened on first use, dropped after
//! any failure and given back to the pool when the `Peer` is done with it.

use super::versions::{Known, Versions};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tern_wire::rpc::{read_frame, write_frame, RaftRequest, RaftResponse};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;

/// What a node presents to, and expects of, the node it dials.
pub type PeerTls = (tokio_rustls::TlsConnector, rustls_pki_types::ServerName<'static>);

/// A plain or TLS stream to another node.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

type Conn = BufStream<Box<dyn Io>>;

/// Idle connections to other nodes by address, shared by every group of this node (each request names
/// its group). openraft opens a new client for every leadership check, that is every linearizable read
/// a leader serves, and for every vote: without the pool each one cost a new connection, a TLS
/// handshake with `raft_tls`, and a socket left in TIME_WAIT (20,000 of them during 10,000 logins).
#[derive(Clone, Default)]
pub struct Pool(Arc<Mutex<HashMap<String, Vec<Idle>>>>);

/// A pooled connection and when it was last used.
type Idle = (Instant, Conn);

/// Idle connections kept per address; more are closed.
const IDLE_PER_PEER: usize = 32;
/// An idle connection older than this is not reused: its node may have restarted meanwhile.
const IDLE_FOR: Duration = Duration::from_secs(30);

impl Pool {
    fn take(&self, addr: &str) -> Option<Conn> {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(addr)?;
        while let Some((since, conn)) = list.pop() {
            if since.elapsed() < IDLE_FOR {
                return Some(conn);
            }
        }
        None
    }

    fn forget(&self, addr: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(addr);
    }

    fn put(&self, addr: &str, conn: Conn) {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(addr.to_string()).or_default();
        list.retain(|(since, _)| since.elapsed() < IDLE_FOR);
        if list.len() < IDLE_PER_PEER {
            list.push((Instant::now(), conn));
        }
    }
}

pub struct Peer {
    addr: String,
    tls: Option<PeerTls>,
    /// The raft group every request on this connection is for.
    group: u16,
    conn: Option<Conn>,
    state: State,
    pool: Pool,
    versions: Versions,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// A request is partly written: the connection is unusable.
    Writing,
    /// A request is written and no byte of its answer read yet.
    Awaiting,
    /// Part of the answer is read: the connection is unusable.
    Reading,
}

/// How long a connection may take to open (TCP and TLS handshakes), whatever the call's timeout.
const CONNECT_FOR: Duration = Duration::from_secs(5);

/// A connection to `addr`, greeted (see `versions.rs`).
async fn connect(addr: &str, tls: Option<PeerTls>, versions: &Versions) -> io::Result<Conn> {
    let mut conn = open_stream(addr, tls.clone()).await?;
    let Some(hello) = versions.hello_for(addr) else { return Ok(conn) };
    write_frame(&mut conn, &(0u16, RaftRequest::Hello(hello))).await?;
    let answer = read_frame::<_, RaftResponse>(&mut conn).await;
    // A node of the release before greetings cannot read one and closes the connection.
    let closed = match &answer {
        Ok(None) => true,
        Err(e) => matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset),
        Ok(Some(_)) => false,
    };
    if closed {
        versions.mark_legacy(addr);
        return open_stream(addr, tls).await;
    }
    match answer {
        Ok(Some(RaftResponse::Hello(Ok(agreed)))) => {
            versions.answered(addr, Known { port: agreed.version, log: agreed.log });
            Ok(conn)
        }
        Ok(Some(RaftResponse::Hello(Err(why)))) => {
            if versions.should_warn(addr) {
                tracing::warn!(%addr, reason = %why, "raft peer refused this node's raft port versions");
            }
            Err(io::Error::other(format!("{addr} refused this node's raft port versions: {why}")))
        }
        Ok(Some(other)) => {
            Err(io::Error::new(io::ErrorKind::InvalidData, format!("{addr} answered a greeting with {other:?}")))
        }
        Ok(None) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{addr} closed on the greeting"))),
        Err(e) => Err(e),
    }
}

async fn open_stream(addr: &str, tls: Option<PeerTls>) -> io::Result<Conn> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let stream: Box<dyn Io> = match tls {
        None => Box::new(s),
        Some((connector, name)) => Box::new(connector.connect(name, s).await?),
    };
    Ok(BufStream::new(stream))
}

/// How long a dropped call's answer is waited for before its connection is given up.
const DRAIN_FOR: Duration = Duration::from_secs(2);

impl Drop for Peer {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        match self.state {
            State::Idle => self.pool.put(&self.addr, conn),
            State::Writing | State::Reading => {}
            // A call abandoned at a caller's timeout (openraft times each RPC itself).
            State::Awaiting => drain(conn, self.pool.clone(), std::mem::take(&mut self.addr)),
        }
    }
}

/// Reads a late answer off `conn`, then gives it to the pool: across a long round trip a slow answer is
/// common, and dropping its connection would make the next call pay for a new handshake.
fn drain(mut conn: Conn, pool: Pool, addr: String) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let late = tokio::time::timeout(DRAIN_FOR, read_frame::<_, RaftResponse>(&mut conn)).await;
            if matches!(late, Ok(Ok(Some(_)))) {
                pool.put(&addr, conn);
            }
        });
    }
}

impl Peer {
    pub fn new(addr: String, tls: Option<PeerTls>, group: u16, pool: Pool, versions: Versions) -> Self {
        Peer { addr, tls, group, conn: None, state: State::Idle, pool, versions }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// One request, one response, within `timeout`; opening a connection first may take twice as long
    /// again (TLS's handshake is a round trip of its own, and `timeout` allows about two).
    pub async fn call(&mut self, req: &RaftRequest, timeout: Duration) -> io::Result<RaftResponse> {
        if self.state != State::Idle {
            // A call dropped by its caller mid-request leaves the connection out of step with the
            // answers: the next answer read would be the old request's.
            self.conn = None;
            self.state = State::Idle;
        }
        if self.conn.is_none() {
            self.conn = self.pool.take(&self.addr);
        }
        if self.conn.is_none() {
            match tokio::time::timeout(timeout * 2, self.open()).await {
                Ok(Ok(conn)) => self.conn = Some(conn),
                Ok(Err(e)) => {
                    self.give_up();
                    return Err(e);
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no connection to {} within {:?}", self.addr, timeout * 2),
                    ))
                }
            }
        }
        let result = tokio::time::timeout(timeout, self.exchange(req)).await;
        match result {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                self.give_up();
                Err(e)
            }
            Err(_) => {
                match (self.state, self.conn.take()) {
                    (State::Awaiting, Some(conn)) => drain(conn, self.pool.clone(), self.addr.clone()),
                    _ => self.give_up(),
                }
                self.state = State::Idle;
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {} within {timeout:?}", self.addr)))
            }
        }
    }

    /// A new connection. It is opened in a task of its own: when the caller's timeout ends the call first
    /// (a TLS handshake takes a round trip and the request another, which across a WAN can be all of
    /// openraft's time limit), the connection still completes and waits in the pool for the next call,
    /// rather than every attempt starting a handshake that never finishes in time.
    async fn open(&self) -> io::Result<Conn> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (addr, tls, pool, versions) =
            (self.addr.clone(), self.tls.clone(), self.pool.clone(), self.versions.clone());
        tokio::spawn(async move {
            let opened = match tokio::time::timeout(CONNECT_FOR, connect(&addr, tls, &versions)).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection to {addr} within {CONNECT_FOR:?}"),
                )),
            };
            if let Err(Ok(conn)) = tx.send(opened) {
                pool.put(&addr, conn);
            }
        });
        rx.await.map_err(|_| io::Error::other("connecting task stopped"))?
    }

    /// Drops the connection after a failure, and the idle ones to the same node: they are likely
    /// dead too (the node restarted, or the path was cut).
    fn give_up(&mut self) {
        self.conn = None;
        self.pool.forget(&self.addr);
    }

    async fn exchange(&mut self, req: &RaftRequest) -> io::Result<RaftResponse> {
        let conn = self.conn.as_mut().ok_or_else(|| io::Error::other("no connection"))?;
        self.state = State::Writing;
        write_frame(conn, &(self.group, req)).await?;
        self.state = State::Awaiting;
        // Wait for the answer's first bytes without taking any, so a call dropped until then leaves a
        // whole answer to drain.
        conn.fill_buf().await?;
        self.state = State::Reading;
        let resp =
            read_frame(conn).await?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed"))?;
        self.state = State::Idle;
        Ok(resp)
    }
}

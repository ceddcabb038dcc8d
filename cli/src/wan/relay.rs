//! A user-space WAN path (the kernel's netem is not available everywhere): a TCP relay that holds each
//! chunk for the path's delay (`pace.rs`), counts the bytes it carries, and can be cut (its connections
//! dropped, new ones refused, as when a host is gone), partitioned (nothing passes, connections stay
//! open, as when a link is down: only timeouts notice) and healed.

use super::pace::{Pace, Shape};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Chunks held per direction of a connection: with 64 KiB reads, at most 4 MiB in flight.
const CHUNKS_IN_FLIGHT: usize = 64;
const CHUNK: usize = 64 << 10;

pub struct Relay {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    target: String,
    shape: Shape,
    cut: watch::Sender<bool>,
    partitioned: watch::Sender<bool>,
    /// Bytes carried towards the target, and back.
    forward: AtomicU64,
    back: AtomicU64,
    seed: AtomicU64,
}

impl Relay {
    /// Listens on `listen` and carries each connection to `target` with `shape`.
    pub async fn start(listen: SocketAddr, target: String, shape: Shape) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (cut, _) = watch::channel(false);
        let (partitioned, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            target,
            shape,
            cut,
            partitioned,
            forward: AtomicU64::new(0),
            back: AtomicU64::new(0),
            seed: AtomicU64::new(u64::from(addr.port())),
        });
        let accepting = shared.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((inbound, _)) if !*accepting.cut.borrow() => {
                        tokio::spawn(carry(inbound, accepting.clone()));
                    }
                    Ok(_) => {} // cut: dropped at once
                    Err(e) => {
                        tracing::warn!(error = %e, "relay accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(Relay { addr, shared })
    }

    /// Cuts the path (dropping every connection on it) or heals it.
    pub fn set_cut(&self, cut: bool) {
        self.shared.cut.send_replace(cut);
    }

    pub fn is_cut(&self) -> bool {
        *self.shared.cut.borrow()
    }

    /// Holds every byte on the path (connections stay open) or lets them through again.
    pub fn set_partitioned(&self, partitioned: bool) {
        self.shared.partitioned.send_replace(partitioned);
    }

    pub fn is_partitioned(&self) -> bool {
        *self.shared.partitioned.borrow()
    }

    /// Bytes carried so far towards the target and back.
    pub fn bytes(&self) -> (u64, u64) {
        (self.shared.forward.load(Ordering::Relaxed), self.shared.back.load(Ordering::Relaxed))
    }

    /// Where the relay listens and leads, whether it is cut or partitioned, and the bytes it carried,
    /// for the admin APIs.
    pub fn status(&self) -> serde_json::Value {
        let (forward, back) = self.bytes();
        serde_json::json!({
            "via": self.addr.to_string(), "target": self.shared.target, "cut": self.is_cut(),
            "partitioned": self.is_partitioned(), "bytes_forward": forward, "bytes_back": back,
        })
    }
}

async fn carry(inbound: TcpStream, shared: Arc<Shared>) {
    let Ok(outbound) = TcpStream::connect(&shared.target).await else { return };
    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
    let mut cut = shared.cut.subscribe();
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let seed = shared.seed.fetch_add(2, Ordering::Relaxed);
    let held = || shared.partitioned.subscribe();
    let forward = direction(in_read, out_write, Pace::new(shared.shape, seed), &shared.forward, held());
    let back = direction(out_read, in_write, Pace::new(shared.shape, seed + 1), &shared.back, held());
    tokio::select! {
        _ = async { tokio::join!(forward, back) } => {}
        _ = cut.wait_for(|c| *c) => {}
    }
}

/// One direction: a reader stamps each chunk with its release time, a writer sends it then.
async fn direction(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut pace: Pace,
    counter: &AtomicU64,
    mut partitioned: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT);
    let read = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let at = pace.release_at(std::time::Instant::now());
                    if tx.send((tokio::time::Instant::from_std(at), buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    // The writer owns the queue: when it stops, a reader waiting on a full queue stops too.
    let write = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if partitioned.wait_for(|p| !*p).await.is_err() {
                break;
            }
            if to.write_all(&chunk).await.is_err() {
                break;
            }
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    fn rtt(ms: u64) -> Shape {
        Shape { rtt: Duration::from_millis(ms), jitter: Duration::ZERO, loss: 0.0 }
    }

    #[tokio::test]
    async fn a_round_trip_takes_the_paths_delay_and_bytes_are_counted() {
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo().await.to_string(), rtt(80)).await.unwrap();
        let mut s = TcpStream::connect(relay.addr).await.unwrap();
        let mut back = [0u8; 5];
        for _ in 0..3 {
            let t = Instant::now();
            s.write_all(b"hello").await.unwrap();
            s.read_exact(&mut back).await.unwrap();
            let took = t.elapsed();
            assert_eq!(&back, b"hello");
            assert!(took >= Duration::from_millis(80) && took < Duration::from_millis(400), "{took:?}");
        }
        assert_eq!(relay.bytes(), (15, 15));
    }

    #[tokio::test]
    async fn a_cut_path_drops_its_connections_and_refuses_new_ones_until_healed() {
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo().await.to_string(), rtt(2)).await.unwrap();
        let mut s = TcpStream::connect(relay.addr).await.unwrap();
        s.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();
        relay.set_cut(true);
        let read = tokio::time::timeout(Duration::from_secs(2), s.read(&mut one)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "the connection was dropped");
        let mut again = TcpStream::connect(relay.addr).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(2), again.read(&mut one)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "a new connection is refused while cut");
        relay.set_cut(false);
        let mut healed = TcpStream::connect(relay.addr).await.unwrap();
        healed.write_all(b"y").await.unwrap();
        healed.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"y");
    }

    #[tokio::test]
    async fn a_partitioned_path_holds_its_bytes_until_healed() {
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo().await.to_string(), rtt(2)).await.unwrap();
        let mut s = TcpStream::connect(relay.addr).await.unwrap();
        relay.set_partitioned(true);
        s.write_all(b"held").await.unwrap();
        let mut four = [0u8; 4];
        let early = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut four)).await;
        assert!(early.is_err(), "nothing passes a partition");
        relay.set_partitioned(false);
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut four)).await.unwrap().unwrap();
        assert_eq!(&four, b"held", "the connection survived and the bytes arrive after healing");
    }
}

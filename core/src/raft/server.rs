//! The raft port: answers other core nodes' raft RPCs, forwarded writes and read-index requests.
//! It must only be reachable from the other core nodes (no authentication yet).

use super::rpc::{read_frame, write_frame, RaftRequest, RaftResponse};
use super::types::Raft;
use std::time::Duration;
use tokio::io::BufStream;
use tokio::net::{TcpListener, TcpStream};

pub async fn serve(listener: TcpListener, raft: Raft) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let raft = raft.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, raft).await {
                        tracing::debug!(%peer, error = %e, "raft connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept on raft listener failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, raft: Raft) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut conn = BufStream::new(stream);
    while let Some(req) = read_frame::<_, RaftRequest>(&mut conn).await? {
        let resp = match req {
            RaftRequest::Append(r) => RaftResponse::Append(raft.append_entries(r).await),
            RaftRequest::Vote(r) => RaftResponse::Vote(raft.vote(r).await),
            RaftRequest::Snapshot(r) => RaftResponse::Snapshot(raft.install_snapshot(r).await),
            RaftRequest::Propose(batch) => {
                RaftResponse::Propose(raft.client_write(batch).await.map(|r| r.data).map_err(|e| e.to_string()))
            }
            RaftRequest::Membership(change) => RaftResponse::Membership(super::membership::apply(&raft, change).await),
            RaftRequest::ReadIndex => {
                RaftResponse::ReadIndex(raft.ensure_linearizable().await.map_err(|e| e.to_string()))
            }
        };
        write_frame(&mut conn, &resp).await?;
    }
    Ok(())
}

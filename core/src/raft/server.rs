//! The raft port: answers other core nodes' raft RPCs, forwarded writes and read-index requests.
//! With `raft_tls` only nodes presenting a node certificate from the cluster CA get past the handshake
//! (an edge certificate from the same CA is refused); without it the port must only be reachable from
//! the other core nodes, which the configuration enforces by allowing it only on loopback.

use super::group::Groups;
use super::types::NodeId;
use std::sync::Arc;
use std::time::Duration;
use tern_wire::rpc::{read_frame, write_frame, RaftRequest, RaftResponse};
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the raft port answers with.
pub struct RaftPort {
    pub groups: Arc<Groups>,
    pub node_id: NodeId,
    /// The leader lease (`election_max_ms`), which a leadership transfer waits out.
    pub lease: Duration,
    /// Raised when the node stops: the port closes and so does every connection to it.
    pub closing: tokio::sync::watch::Receiver<bool>,
    pub versions: super::versions::Versions,
}

pub async fn serve(listener: TcpListener, port: RaftPort, tls: Option<TlsAcceptor>) {
    let port = Arc::new(port);
    let mut closing = port.closing.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = crate::context::raised(&mut closing) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (raft, tls) = (port.clone(), tls.clone());
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let versions = raft.versions.clone();
                    let result = match tls {
                        None => connection(stream, raft).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => match node_of(tls.get_ref().1.peer_certificates()) {
                                    Ok(_) => connection(tls, raft).await,
                                    Err(e) => return tracing::warn!(%peer, error = %e, "raft peer refused"),
                                },
                                Ok(Err(e)) => {
                                    tracing::warn!(%peer, error = %e, "raft tls handshake refused");
                                    return;
                                }
                                Err(_) => return tracing::warn!(%peer, "raft tls handshake timed out"),
                            }
                        }
                    };
                    match result {
                        Ok(()) => {}
                        // A frame of a newer release (or a greeting, when set to speak only version 1).
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                            if versions.should_warn(&peer.ip().to_string()) {
                                let (_, max) = versions.range();
                                let log = tern_wire::rpc::LOG_VERSION;
                                tracing::warn!(%peer, error = %e, "raft frame not understood, connection closed: this node \
                                    speaks raft port versions up to {max} and raft log version {log}; is the peer a newer release?");
                            }
                        }
                        Err(e) => tracing::debug!(%peer, error = %e, "raft connection closed"),
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

/// The node a peer's certificate names; anything else may not speak raft.
fn node_of(certs: Option<&[rustls_pki_types::CertificateDer<'_>]>) -> Result<NodeId, String> {
    match tern_shared::pki::peer_identity(certs) {
        Ok((tern_shared::pki::Identity::Node(id), _)) => Ok(id),
        Ok((other, _)) => Err(format!("certificate of {other:?}, not of a core node")),
        Err(e) => Err(e.to_string()),
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, port: Arc<RaftPort>) -> std::io::Result<()> {
    let mut conn = BufStream::new(stream);
    let mut closing = port.closing.clone();
    let mut first = true;
    loop {
        let frame = tokio::select! {
            frame = read_frame::<_, (u16, RaftRequest)>(&mut conn) => frame?,
            _ = crate::context::raised(&mut closing) => return Ok(()),
        };
        let Some((slot, req)) = frame else { break };
        // Only a connection's first frame may greet.
        let greeting = std::mem::replace(&mut first, false);
        let Some(group) = port.groups.get(slot) else {
            // Slot counts are checked at start-up; a node of another cluster could still get here.
            write_frame(&mut conn, &RaftResponse::Done(Err(format!("no raft group {slot} here")))).await?;
            continue;
        };
        let raft = &group.raft;
        let resp = match req {
            RaftRequest::Append(r) => RaftResponse::Append(raft.append_entries(r).await),
            RaftRequest::Vote(r) => RaftResponse::Vote(raft.vote(r).await),
            RaftRequest::Snapshot(r) => RaftResponse::Snapshot(raft.install_snapshot(r).await),
            RaftRequest::Propose(batch) => {
                // A forwarded group waits out a handover like this node's own (`transfer.rs`); the leader
                // it then reaches refuses it, and the forwarder sends it to the new one.
                while group.handover.active() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                RaftResponse::Propose(raft.client_write(batch).await.map(|r| r.data).map_err(|e| e.to_string()))
            }
            RaftRequest::Membership(change) => RaftResponse::Membership(super::membership::apply(raft, change).await),
            RaftRequest::Transfer(target) => {
                RaftResponse::Done(super::transfer::transfer(group, port.node_id, target, port.lease).await)
            }
            // A stopping node takes no leadership (a transfer probing it fails at once and picks another
            // voter) and keeps its elections off (a `Hold` would turn them back on when it ends).
            RaftRequest::Step(_) if port.groups.leaving() => RaftResponse::Done(Err("this node is stopping".into())),
            RaftRequest::Step(step) => {
                super::transfer::on_step(raft, port.node_id, step);
                RaftResponse::Done(Ok(()))
            }
            RaftRequest::ReadIndex => {
                RaftResponse::ReadIndex(group.reads.read_index().await.map_err(|e| e.to_string()))
            }
            RaftRequest::Hello(hello) if greeting && port.versions.greets() => {
                let answer = super::versions::greet(port.node_id, port.versions.range(), &hello);
                match &answer {
                    Ok(agreed) => {
                        let known = super::versions::Known { port: agreed.version, log: hello.log };
                        port.versions.greeted_by(hello.node, known);
                    }
                    Err(why) => tracing::warn!(node = hello.node, reason = %why, "raft peer refused"),
                }
                RaftResponse::Hello(answer)
            }
            // What a node of version 1 does with a frame it cannot read.
            RaftRequest::Hello(_) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a greeting this node does not take"))
            }
        };
        write_frame(&mut conn, &resp).await?;
        if matches!(resp, RaftResponse::Hello(Err(_))) {
            return Ok(());
        }
    }
    Ok(())
}

//! Edge links: each edge holds a few long-lived connections to every core node; one carries many
//! client sessions.

mod handler;

use crate::context::Core;
use handler::LinkHandler;
use std::sync::Arc;
use std::time::Duration;
use tern_shared::link::io::{write_loop, FrameReader};
use tern_shared::link::{LinkFrame, MIN_LINK_VERSION};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// How long a new link may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Edges ping every second; a link silent this long is dead (its peer gone without a FIN, e.g. behind a
/// cut network) and is closed, which also frees its edge id for the edge's next link.
const SILENCE_LIMIT: Duration = Duration::from_secs(10);

/// How long a stopping node waits for a link's SENDs in flight to be answered before it closes the link
/// (the edge sends any still unanswered again over another node's link).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Presence frames queued per link: a million-session snapshot is about 50.
const PRESENCE_QUEUE: usize = 128;

fn is_presence(frame: &LinkFrame) -> bool {
    matches!(
        frame,
        LinkFrame::SessionOpen(_)
            | LinkFrame::SessionClose { .. }
            | LinkFrame::PresenceSnapshot(_)
            | LinkFrame::PresenceMore(_)
    )
}

/// Who is at the other end of a link, as its certificate says.
#[derive(Debug, Clone)]
struct PeerEdge {
    id: String,
    fingerprint: [u8; 32],
}

/// The edge a link certificate names; node certificates and certificates naming no edge are refused.
fn peer_edge(certs: Option<&[rustls_pki_types::CertificateDer<'_>]>) -> Result<PeerEdge, LinkError> {
    match tern_shared::pki::peer_identity(certs) {
        Ok((tern_shared::pki::Identity::Edge { id, .. }, fingerprint)) => Ok(PeerEdge { id, fingerprint }),
        Ok((other, _)) => Err(LinkError::Identity(format!("{other:?} is not an edge"))),
        Err(e) => Err(LinkError::Identity(e.to_string())),
    }
}

/// Serves edge links; with `tls`, only edges presenting a certificate the link CA issued to an edge
/// get past the handshake, and the edge id is the certificate's.
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, core: Arc<Core>) {
    let mut closing = core.closing.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // The listener closes with this loop: an edge's next link is refused at once and goes to
            // another node.
            _ = crate::context::raised(&mut closing) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tern_shared::transport::keepalive(&stream);
                let (core, tls) = (core.clone(), tls.clone());
                tokio::spawn(async move {
                    let result = match tls {
                        None => handle(stream, core, None).await,
                        Some(acceptor) => match tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => match peer_edge(tls.get_ref().1.peer_certificates()) {
                                Ok(edge) => handle(tls, core, Some(edge)).await,
                                Err(e) => Err(e),
                            },
                            Ok(Err(e)) => Err(LinkError::Tls(e.to_string())),
                            Err(_) => Err(LinkError::NoHello),
                        },
                    };
                    match result {
                        Err(e) if e.is_refusal() => tracing::warn!(%peer, error = %e, "edge link refused"),
                        Err(e) => tracing::info!(%peer, error = %e, "edge link closed"),
                        Ok(()) => {}
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept on link listener failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves edge links over QUIC: each bidirectional stream an edge opens is one link. The endpoint's TLS
/// config requires the edge's certificate.
pub async fn serve_quic(endpoint: quinn::Endpoint, core: Arc<Core>) {
    let mut closing = core.closing.subscribe();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = crate::context::raised(&mut closing) => None,
        };
        // Links already up end on their own (`handle`); the endpoint lives while they do.
        let Some(incoming) = incoming else { return };
        let core = core.clone();
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            let conn = match tokio::time::timeout(HELLO_TIMEOUT, incoming).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return tracing::info!(%peer, error = %e, "quic edge link refused"),
                Err(_) => return tracing::info!(%peer, "quic edge link handshake timed out"),
            };
            let certs = conn.peer_identity().and_then(|c| c.downcast::<Vec<rustls_pki_types::CertificateDer>>().ok());
            let edge = match peer_edge(certs.as_deref().map(|c| c.as_slice())) {
                Ok(edge) => edge,
                Err(e) => {
                    conn.close(1u32.into(), b"not an edge certificate");
                    return tracing::warn!(%peer, error = %e, "quic edge link refused");
                }
            };
            while let Ok((send, recv)) = conn.accept_bi().await {
                let (core, edge) = (core.clone(), edge.clone());
                tokio::spawn(async move {
                    match handle(tokio::io::join(recv, send), core, Some(edge)).await {
                        Err(e) if e.is_refusal() => tracing::warn!(%peer, error = %e, "quic edge link refused"),
                        Err(e) => tracing::info!(%peer, error = %e, "quic edge link closed"),
                        Ok(()) => {}
                    }
                });
            }
        });
    }
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Io(#[from] tern_shared::link::io::LinkIoError),
    #[error("no hello within {HELLO_TIMEOUT:?}")]
    NoHello,
    #[error("expected hello, got {0}")]
    BadHello(String),
    #[error("tls handshake: {0}")]
    Tls(String),
    #[error("link certificate: {0}")]
    Identity(String),
    #[error("the link certificate is edge `{cert}`'s, the link claims to be edge `{claimed}`")]
    Impostor { cert: String, claimed: String },
    #[error("edge `{0}` is linked from another process or certificate; refused while its links live")]
    Taken(String),
    #[error(
        "the edge offers link version {0}, this core node speaks {MIN_LINK_VERSION} to {1}: run edges and core \
         nodes of releases the CHANGELOG lets run side by side"
    )]
    Version(u16, u16),
    #[error("silent for {SILENCE_LIMIT:?}")]
    Silent,
}

impl LinkError {
    /// A peer turned away, rather than a link that ended.
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            LinkError::Tls(_)
                | LinkError::Identity(_)
                | LinkError::Impostor { .. }
                | LinkError::Taken(_)
                | LinkError::Version(..)
        )
    }
}

/// Tells the edge why its link is refused, then gives the error back.
async fn refuse<W: AsyncWrite + Unpin>(mut w: W, e: LinkError) -> LinkError {
    let mut frame = Vec::new();
    if tern_shared::link::encode(&LinkFrame::Refused(e.to_string()), &mut frame).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), w.write_all(&frame)).await;
    }
    e
}

async fn handle<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    core: Arc<Core>,
    cert: Option<PeerEdge>,
) -> Result<(), LinkError> {
    let (r, w) = tokio::io::split(stream);
    let mut reader = FrameReader::new(r);
    let hello = tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await.map_err(|_| LinkError::NoHello)??;
    let (edge_id, addrs, lane, instance, version) = match hello {
        Some(LinkFrame::Hello { version, edge_id, addrs, lane, instance })
            if tern_shared::link::speaks(version) && version <= core.config.max_link_version =>
        {
            (edge_id, addrs, lane, instance, version)
        }
        Some(LinkFrame::Hello { version, .. }) => {
            return Err(refuse(w, LinkError::Version(version, core.config.max_link_version)).await)
        }
        other => return Err(LinkError::BadHello(format!("{other:?}"))),
    };
    if let Some(c) = cert.as_ref().filter(|c| c.id != edge_id) {
        return Err(refuse(w, LinkError::Impostor { cert: c.id.clone(), claimed: edge_id }).await);
    }
    let holder = crate::claims::Holder { instance, cert: cert.map(|c| c.fingerprint) };
    let _claim = match core.claims.claim(&edge_id, holder) {
        Ok(claim) => claim,
        Err(_) => return Err(refuse(w, LinkError::Taken(edge_id)).await),
    };
    let (tx, rx) = mpsc::channel(core.config.link_queue);
    let mut writer = tokio::spawn(write_loop(w, rx));
    let _ = tx.send(LinkFrame::HelloAck { node_id: core.config.node_id }).await;
    // A request lane answers over itself; only the presence lane stands for the edge.
    let link_no = (lane == 0).then(|| core.presence.register_edge(&edge_id, addrs, tx.clone()));
    core.metrics.edge_links.inc();
    tracing::info!(%edge_id, lane, version, "edge link up");
    let sends = core.metrics.edge_sends.with_label_values(&[&lane.to_string()]);
    let budget = Arc::new(tokio::sync::Semaphore::new(core.config.link_send_budget));
    let handler = LinkHandler { core: core.clone(), edge_id: edge_id.clone(), tx, sends, budget };
    // Presence frames are handled in their order by a task of their own: checking a big snapshot's
    // proofs takes seconds, and pings and SENDs must not wait behind it (an edge counts a link without
    // pongs for 3 s as dead).
    let (presence_tx, mut presence_rx) = mpsc::channel(PRESENCE_QUEUE);
    let worker = handler.clone();
    let presence = tokio::spawn(async move {
        while let Some(frame) = presence_rx.recv().await {
            worker.handle(frame).await;
        }
    });
    let mut closing = core.closing.subscribe();
    let result = loop {
        let next = tokio::select! {
            next = tokio::time::timeout(SILENCE_LIMIT, reader.next()) => next,
            _ = crate::context::raised(&mut closing) => {
                handler.settle_in_flight(CLOSE_WAIT).await;
                break Ok(());
            }
        };
        match next {
            Ok(Ok(Some(frame))) if is_presence(&frame) => {
                if presence_tx.send(frame).await.is_err() {
                    break Ok(());
                }
                // Let the tasks this woke (the presence task, the writer with pongs) run before the
                // next big chunk is decoded: tokio runs a task a waker scheduled on this thread only
                // once this one yields.
                tokio::task::yield_now().await;
            }
            Ok(Ok(Some(frame))) => handler.handle(frame).await,
            Ok(Ok(None)) => break Ok(()),
            Ok(Err(e)) => break Err(e.into()),
            Err(_) => break Err(LinkError::Silent),
        }
    };
    // Frames of this link still queued must not reach a newer link's presence.
    presence.abort();
    if let Some(link_no) = link_no {
        let lost = core.presence.unregister_edge(&edge_id, link_no);
        let (core, edge_id) = (core.clone(), edge_id.clone());
        tokio::spawn(async move { core.sessions_lost(&edge_id, lost, SILENCE_LIMIT).await });
    }
    // Answers already queued go out before the link closes (the writer ends with its last sender).
    drop(handler);
    let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
    writer.abort();
    core.metrics.edge_links.dec();
    result
}

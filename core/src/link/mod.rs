//! Edge links: each edge holds a few long-lived connections to every core node; one carries many
//! client sessions.

mod handler;

pub(crate) use handler::outcome;

use crate::node::Core;
use handler::LinkHandler;
use std::sync::Arc;
use std::time::Duration;
use tern_shared::link::io::{write_loop, FrameReader};
use tern_shared::link::{LinkFrame, LINK_VERSION};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// How long a new link may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves edge links; with `tls`, only edges presenting a certificate the link CA signed get past the
/// handshake.
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, core: Arc<Core>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let (core, tls) = (core.clone(), tls.clone());
                tokio::spawn(async move {
                    let result = match tls {
                        None => handle(stream, core).await,
                        Some(acceptor) => match tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => handle(tls, core).await,
                            Ok(Err(e)) => Err(LinkError::Tls(e.to_string())),
                            Err(_) => Err(LinkError::NoHello),
                        },
                    };
                    if let Err(e) = result {
                        tracing::info!(%peer, error = %e, "edge link closed");
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
    while let Some(incoming) = endpoint.accept().await {
        let core = core.clone();
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            let conn = match tokio::time::timeout(HELLO_TIMEOUT, incoming).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return tracing::info!(%peer, error = %e, "quic edge link refused"),
                Err(_) => return tracing::info!(%peer, "quic edge link handshake timed out"),
            };
            while let Ok((send, recv)) = conn.accept_bi().await {
                let core = core.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(tokio::io::join(recv, send), core).await {
                        tracing::info!(%peer, error = %e, "quic edge link closed");
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
}

async fn handle<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S, core: Arc<Core>) -> Result<(), LinkError> {
    let (r, w) = tokio::io::split(stream);
    let mut reader = FrameReader::new(r);
    let hello = tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await.map_err(|_| LinkError::NoHello)??;
    let (edge_id, addrs, lane) = match hello {
        Some(LinkFrame::Hello { version: LINK_VERSION, edge_id, addrs, lane }) => (edge_id, addrs, lane),
        Some(LinkFrame::Hello { version, .. }) => return Err(LinkError::BadHello(format!("link version {version}"))),
        other => return Err(LinkError::BadHello(format!("{other:?}"))),
    };
    let (tx, rx) = mpsc::channel(core.config.link_queue);
    let writer = tokio::spawn(write_loop(w, rx));
    let _ = tx.send(LinkFrame::HelloAck { node_id: core.config.node_id }).await;
    // A request lane answers over itself; only the presence lane stands for the edge.
    let link_no = (lane == 0).then(|| core.presence.register_edge(&edge_id, addrs, tx.clone()));
    core.metrics.edge_links.inc();
    tracing::info!(%edge_id, lane, "edge link up");
    let sends = core.metrics.edge_sends.with_label_values(&[&lane.to_string()]);
    let handler = LinkHandler { core: core.clone(), edge_id: edge_id.clone(), tx, sends };
    let result = loop {
        match reader.next().await {
            Ok(Some(frame)) => handler.handle(frame).await,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.into()),
        }
    };
    if let Some(link_no) = link_no {
        core.presence.unregister_edge(&edge_id, link_no);
    }
    core.metrics.edge_links.dec();
    writer.abort();
    result
}

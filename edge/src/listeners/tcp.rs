//! Raw TCP: the client protocol as a byte stream.

use super::admit;
use crate::{session, Edge};
use std::sync::Arc;
use tokio::net::TcpListener;

pub async fn serve(listener: TcpListener, edge: Arc<Edge>) {
    loop {
        match listener.accept().await {
            Ok((mut stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let edge = edge.clone();
                tokio::spawn(async move {
                    let Some((client, _slot)) = admit::tcp_client(&edge, &mut stream, peer).await else { return };
                    session::run(edge, session::wire::TcpWire(stream), client.to_string(), client.ip()).await;
                });
            }
            Err(e) => super::accept_backoff("tcp", e).await,
        }
    }
}

//! Raw TCP: the client protocol as a byte stream.

use crate::{session, Edge};
use std::sync::Arc;
use tokio::net::TcpListener;

pub async fn serve(listener: TcpListener, edge: Arc<Edge>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(session::run(edge.clone(), session::wire::TcpWire(stream), peer.to_string()));
            }
            Err(e) => super::accept_backoff("tcp", e).await,
        }
    }
}

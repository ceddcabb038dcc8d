//! Client listeners. Each turns its transport into byte chunks and hands them to a session.

pub mod admit;
pub mod quic;
pub mod tcp;
pub mod tls;
pub mod ws;

use std::time::Duration;

/// Accept errors (e.g. out of file descriptors) are logged and retried after a pause instead of
/// spinning or ending the listener.
pub(crate) async fn accept_backoff(what: &str, e: std::io::Error) {
    tracing::warn!(listener = what, error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

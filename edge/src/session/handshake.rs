//! CONNECT → token check at the core → key agreement → CONNACK.

use super::{write_disconnect, Close, Session};
use crate::Edge;
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tern_shared::channel::valid_uid;
use tern_shared::client::now_ms;
use tern_shared::proto::{self, crypto, Packet, Reason};
use tern_shared::transport::{ByteRx, ByteTx};

/// Runs the handshake. On refusal the client has already been told why (CONNACK or DISCONNECT).
pub(super) async fn accept(
    edge: &Arc<Edge>,
    rx: &mut ByteRx,
    tx: &mut ByteTx,
    buf: &mut BytesMut,
) -> Result<Session, Close> {
    let limit = Duration::from_millis(edge.config.connect_timeout_ms);
    let first = match tokio::time::timeout(limit, first_packet(rx, buf, edge.config.max_frame)).await {
        Ok(Ok(p)) => p,
        Ok(Err(close)) => return Err(tell(tx, close).await),
        Err(_) => return Err(tell(tx, Close::new(Reason::Unknown, format!("no CONNECT within {limit:?}"))).await),
    };
    let c = match first {
        Packet::Connect(c) => c,
        other => {
            let close =
                Close::new(Reason::AuthFail, format!("first frame must be CONNECT, got {:?}", other.packet_type()));
            return Err(tell(tx, close).await);
        }
    };
    let Some(version) = proto::negotiate_version(c.version) else {
        return Err(
            refuse(tx, Reason::NotSupportHeader, format!("protocol version {} is not served", c.version), 2).await
        );
    };
    if !valid_uid(&c.uid) {
        return Err(refuse(tx, Reason::AuthFail, "invalid uid".into(), version).await);
    }
    if edge.registry.len() >= edge.config.max_sessions {
        let reason = format!("edge is full ({} sessions)", edge.config.max_sessions);
        return Err(refuse(tx, Reason::SystemError, reason, version).await);
    }
    if !edge.link.is_up() {
        return Err(refuse(tx, Reason::SystemError, "edge has no link to the core".into(), version).await);
    }
    let hs = match crypto::server_handshake(&c.client_key) {
        Ok(hs) => hs,
        Err(crypto::CryptoError::EmptyClientKey) => {
            return Err(refuse(tx, Reason::ClientKeyIsEmpty, "client key is empty".into(), version).await)
        }
        Err(e) => return Err(refuse(tx, Reason::AuthFail, e.to_string(), version).await),
    };
    let (reason, device_level) = match edge.link.auth(&c.uid, c.device_flag, &c.token).await {
        Ok(r) => r,
        Err(e) => return Err(refuse(tx, Reason::SystemError, e.to_string(), version).await),
    };
    if reason != Reason::Success.code() {
        let code = if reason == Reason::QueryTokenError.code() { Reason::QueryTokenError } else { Reason::AuthFail };
        return Err(refuse(tx, code, "token rejected".into(), version).await);
    }
    let ack = Packet::Connack(proto::Connack {
        server_version: (version > 3).then_some(version),
        time_diff: now_ms() - c.client_timestamp,
        reason_code: Reason::Success.code(),
        server_key: hs.server_key,
        salt: hs.salt,
        node_id: 1,
    });
    send(tx, &ack, version).await.map_err(|e| Close::new(Reason::Success, format!("write failed: {e}")))?;
    Ok(Session {
        edge: edge.clone(),
        id: edge.next_session_id(),
        uid: c.uid,
        device_flag: c.device_flag,
        device_level,
        version,
        cipher: hs.cipher,
    })
}

async fn first_packet(rx: &mut ByteRx, buf: &mut BytesMut, max: usize) -> Result<Packet, Close> {
    loop {
        if let Some((p, used)) = proto::decode(buf, proto::MIN_VERSION, max)
            .map_err(|e| Close::new(Reason::NotSupportHeader, format!("malformed frame: {e}")))?
        {
            let _ = buf.split_to(used);
            return Ok(p);
        }
        match rx.next().await {
            Some(Ok(b)) => buf.extend_from_slice(&b),
            _ => return Err(Close::new(Reason::Success, "")),
        }
    }
}

async fn send(tx: &mut ByteTx, p: &Packet, version: u8) -> std::io::Result<()> {
    let bytes = proto::encode_to_vec(p, version).map_err(std::io::Error::other)?;
    tokio::time::timeout(Duration::from_secs(2), tx.send(bytes.into())).await.map_err(std::io::Error::other)?
}

/// Tells a client that never authenticated why it is being closed.
async fn tell(tx: &mut ByteTx, close: Close) -> Close {
    if !close.reason.is_empty() {
        let _ = write_disconnect(tx, &close, proto::MIN_VERSION).await;
    }
    close
}

/// Answers CONNECT with a failing CONNACK (the SDKs stop retrying on reason 2).
async fn refuse(tx: &mut ByteTx, code: Reason, reason: String, version: u8) -> Close {
    let ack = Packet::Connack(proto::Connack {
        server_version: (version > 3).then_some(version),
        reason_code: code.code(),
        ..Default::default()
    });
    let _ = send(tx, &ack, version).await;
    Close::new(code, reason)
}

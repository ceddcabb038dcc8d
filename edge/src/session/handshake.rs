//! CONNECT → token check at the core → key agreement → CONNACK.

use super::{wire::Wire, write_disconnect, Close, Session};
use crate::Edge;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_shared::channel::valid_uid;
use tern_shared::client::now_ms;
use tern_shared::proto::{self, crypto, Packet, Reason};

/// Largest frame before login: CONNECT is small (ids, a token, a key), and an unauthenticated client
/// should cost the edge little.
const PRE_LOGIN_FRAME: usize = 16 << 10;

/// An accepted session and the CONNACK that tells the client so. The caller registers the session before
/// writing it, so the core knows the session before the client can see itself connected.
pub(super) struct Accepted {
    pub session: Session,
    pub connack: Bytes,
    /// Shown to the core with the session (`SessionInfo::proof`).
    pub proof: [u8; 32],
}

/// Runs the handshake. On refusal the client has already been told why (CONNACK or DISCONNECT).
/// `ip` is the client's address, for the failed-login limits.
pub(super) async fn accept<W: Wire>(
    edge: &Arc<Edge>,
    tx: &mut W,
    buf: &mut BytesMut,
    ip: std::net::IpAddr,
) -> Result<Accepted, Close> {
    let limit = Duration::from_millis(edge.config.connect_timeout_ms);
    let max = edge.config.max_frame.min(PRE_LOGIN_FRAME);
    let first = match tokio::time::timeout(limit, first_packet(tx, buf, max)).await {
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
    let admitted = edge.logins().admit(&c.uid, ip, Instant::now());
    if let Err(limit) = admitted {
        let close = refuse(tx, Reason::AuthFail, "too many failed logins".into(), version).await;
        return Err(Close { label: Some(limit.label()), ..close });
    }
    match edge.login_turn() {
        Some(at) if at > Instant::now() => {
            edge.metrics.logins_paced.inc();
            tokio::time::sleep_until(at.into()).await;
        }
        Some(_) => {}
        None => {
            let close = refuse(tx, Reason::SystemError, "edge busy with logins: try again later".into(), version).await;
            return Err(Close { label: Some("login_rate"), ..close });
        }
    }
    let (reason, device_level) = match edge.link.auth(&c.uid, c.device_flag, &c.token).await {
        Ok(r) => r,
        Err(e) => return Err(refuse(tx, Reason::SystemError, e.to_string(), version).await),
    };
    if reason == Reason::QueryTokenError.code() {
        return Err(refuse(tx, Reason::QueryTokenError, "token check failed".into(), version).await);
    }
    // The token was right: a banned user is told so, and it is not counted as a guess.
    if reason == Reason::Ban.code() {
        return Err(refuse(tx, Reason::Ban, "banned".into(), version).await);
    }
    if reason != Reason::Success.code() {
        edge.logins().failed(&c.uid, ip, Instant::now());
        return Err(refuse(tx, Reason::AuthFail, "token rejected".into(), version).await);
    }
    let ack = Packet::Connack(proto::Connack {
        server_version: (version > 3).then_some(version),
        time_diff: now_ms() - c.client_timestamp,
        reason_code: Reason::Success.code(),
        server_key: hs.server_key,
        salt: hs.salt,
        node_id: 1,
    });
    let connack = proto::encode_to_vec(&ack, version).map_err(|e| Close::new(Reason::SystemError, e.to_string()))?;
    let id = edge.next_session_id();
    let token_hash = tern_shared::secret::user_token_hash(&c.uid, &c.token);
    let proof = tern_shared::secret::session_proof(&token_hash, &edge.config.edge_id, id, c.device_flag);
    let session = Session {
        edge: edge.clone(),
        budget: Arc::new(tokio::sync::Semaphore::new(edge.config.send_budget)),
        id,
        uid: c.uid,
        device_flag: c.device_flag,
        device_id: c.device_id,
        device_level,
        version,
        cipher: hs.cipher,
    };
    Ok(Accepted { session, connack: connack.into(), proof })
}

async fn first_packet<W: Wire>(wire: &mut W, buf: &mut BytesMut, max: usize) -> Result<Packet, Close> {
    loop {
        if let Some((p, used)) = proto::decode(buf, proto::MIN_VERSION, max)
            .map_err(|e| Close::new(Reason::NotSupportHeader, format!("malformed frame: {e}")))?
        {
            let _ = buf.split_to(used);
            return Ok(p);
        }
        match wire.read_some(|chunk| buf.extend_from_slice(chunk)).await {
            Ok(true) => {}
            _ => return Err(Close::quiet()),
        }
    }
}

async fn send<W: Wire>(wire: &mut W, p: &Packet, version: u8) -> std::io::Result<()> {
    let bytes = proto::encode_to_vec(p, version).map_err(std::io::Error::other)?;
    tokio::time::timeout(Duration::from_secs(2), wire.write(vec![bytes.into()])).await.map_err(std::io::Error::other)?
}

/// Tells a client that never authenticated why it is being closed.
async fn tell<W: Wire>(tx: &mut W, close: Close) -> Close {
    if !close.reason.is_empty() {
        let _ = write_disconnect(tx, &close, proto::MIN_VERSION).await;
    }
    close
}

/// Answers CONNECT with a failing CONNACK (the SDKs stop retrying on reason 2).
async fn refuse<W: Wire>(tx: &mut W, code: Reason, reason: String, version: u8) -> Close {
    let ack = Packet::Connack(proto::Connack {
        server_version: (version > 3).then_some(version),
        reason_code: code.code(),
        ..Default::default()
    });
    let _ = send(tx, &ack, version).await;
    Close::new(code, reason)
}

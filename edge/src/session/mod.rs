//! One client connection: CONNECT and key agreement, then frames both ways until either side closes.
//! The transport (TCP, WebSocket) is already reduced to byte chunks.

mod handshake;
pub mod registry;

use crate::Edge;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use registry::{Outbound, SessionEntry};
use std::sync::Arc;
use std::time::Duration;
use tern_shared::link::OutgoingMessage;
use tern_shared::proto::{self, crypto::SessionCipher, setting, Packet, Reason};
use tern_shared::transport::{ByteRx, ByteTx};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

/// Why a session ended; the text is what the client is told in DISCONNECT and what the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: Reason,
    pub reason: String,
}

impl Close {
    fn new(code: Reason, reason: impl Into<String>) -> Self {
        Close { code, reason: reason.into() }
    }
    /// A counter label for metrics.
    fn label(&self) -> &'static str {
        match self.code {
            Reason::AuthFail => "auth",
            Reason::NotSupportHeader => "malformed",
            _ => "other",
        }
    }
}

/// Frames to write now, from the session task itself.
type Immediate = Vec<Bytes>;

struct Session {
    edge: Arc<Edge>,
    id: u64,
    uid: String,
    device_flag: u8,
    device_level: u8,
    version: u8,
    cipher: SessionCipher,
}

/// Serves one client connection to its end.
pub async fn run(edge: Arc<Edge>, mut rx: ByteRx, mut tx: ByteTx, peer: String) {
    edge.metrics.connects.inc();
    let mut buf = BytesMut::new();
    let session = match handshake::accept(&edge, &mut rx, &mut tx, &mut buf).await {
        Ok(s) => s,
        Err(close) => {
            tracing::debug!(%peer, reason = %close.reason, "connection refused");
            edge.metrics.connect_rejected.with_label_values(&[close.label()]).inc();
            let _ = tx.close().await;
            return;
        }
    };
    let (out_tx, out_rx) = mpsc::channel(edge.config.session_queue);
    let entry = SessionEntry {
        info: tern_shared::link::SessionInfo {
            session: session.id,
            uid: session.uid.clone(),
            device_flag: session.device_flag,
            device_level: session.device_level,
        },
        version: session.version,
        cipher: session.cipher.clone(),
        out: out_tx,
    };
    edge.link.open_session(entry).await;
    edge.metrics.sessions.inc();
    let span = tracing::debug_span!("session", id = session.id, uid = %session.uid, %peer);
    let close = session.serve(rx, &mut tx, buf, out_rx).instrument(span).await;
    if close.code != Reason::Success {
        tracing::debug!(id = session.id, reason = %close.reason, "session closed");
        if matches!(close.code, Reason::NotSupportHeader) {
            edge.metrics.closed_bad_input.with_label_values(&[close.label()]).inc();
        }
        if !close.reason.is_empty() {
            let _ = write_disconnect(&mut tx, &close, session.version).await;
        }
    }
    let _ = tx.close().await;
    edge.link.close_session(session.id).await;
    edge.metrics.sessions.dec();
}

async fn write_disconnect(tx: &mut ByteTx, close: &Close, version: u8) -> std::io::Result<()> {
    let frame = Packet::Disconnect(proto::Disconnect { reason_code: close.code.code(), reason: close.reason.clone() });
    if let Ok(b) = proto::encode_to_vec(&frame, version) {
        tokio::time::timeout(Duration::from_secs(1), tx.send(b.into())).await.map_err(std::io::Error::other)??;
    }
    Ok(())
}

/// Decodes every complete frame in `buf`.
fn drain_frames(buf: &mut BytesMut, version: u8, max: usize) -> Result<Vec<Packet>, Close> {
    let mut packets = Vec::new();
    loop {
        match proto::decode(buf, version, max) {
            Ok(Some((p, used))) => {
                let _ = buf.split_to(used);
                packets.push(p);
            }
            Ok(None) => return Ok(packets),
            Err(e) => return Err(Close::new(Reason::NotSupportHeader, format!("malformed frame: {e}"))),
        }
    }
}

impl Session {
    async fn serve(
        &self,
        mut rx: ByteRx,
        tx: &mut ByteTx,
        mut buf: BytesMut,
        mut out_rx: mpsc::Receiver<Outbound>,
    ) -> Close {
        let idle = Duration::from_millis(self.edge.config.idle_timeout_ms);
        let mut deadline = Instant::now() + idle;
        // Frames already in the buffer (sent right behind CONNECT) come first.
        let mut pending = Some(Bytes::new());
        loop {
            let chunk = match pending.take() {
                Some(b) => Some(Ok(b)),
                None => tokio::select! {
                    chunk = rx.next() => chunk,
                    out = out_rx.recv() => {
                        match self.write_out(tx, out, &mut out_rx).await {
                            Ok(()) => continue,
                            Err(close) => return close,
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        return Close::new(Reason::Unknown, format!("idle for {idle:?}"));
                    }
                },
            };
            let bytes = match chunk {
                Some(Ok(b)) => b,
                Some(Err(e)) => return Close::new(Reason::Success, format!("read failed: {e}")),
                None => return Close::new(Reason::Success, ""),
            };
            buf.extend_from_slice(&bytes);
            deadline = Instant::now() + idle;
            let packets = match drain_frames(&mut buf, self.version, self.edge.config.max_frame) {
                Ok(p) => p,
                Err(close) => return close,
            };
            let mut now = Immediate::new();
            for p in packets {
                if let Err(close) = self.handle(p, &mut now).await {
                    let _ = self.flush(tx, now).await;
                    return close;
                }
            }
            if let Err(close) = self.flush(tx, now).await {
                return close;
            }
        }
    }

    async fn flush(&self, tx: &mut ByteTx, frames: Immediate) -> Result<(), Close> {
        if frames.is_empty() {
            return Ok(());
        }
        for f in frames {
            tx.feed(f).await.map_err(|e| Close::new(Reason::Success, format!("write failed: {e}")))?;
        }
        tx.flush().await.map_err(|e| Close::new(Reason::Success, format!("write failed: {e}")))
    }

    /// Writes what the link queued for this client, packing everything already waiting into one flush.
    async fn write_out(
        &self,
        tx: &mut ByteTx,
        first: Option<Outbound>,
        out_rx: &mut mpsc::Receiver<Outbound>,
    ) -> Result<(), Close> {
        let mut next = first;
        let mut n = 0;
        loop {
            match next {
                None if n == 0 => return Err(Close::new(Reason::Unknown, "too slow: outbound queue overflowed")),
                None => break,
                Some(Outbound::Frame(b)) => {
                    tx.feed(b).await.map_err(|e| Close::new(Reason::Success, format!("write failed: {e}")))?;
                }
                Some(Outbound::Close(b)) => {
                    let _ = tx.feed(b).await;
                    let _ = tx.flush().await;
                    // The DISCONNECT is written; nothing more to tell.
                    return Err(Close::new(Reason::ConnectKick, ""));
                }
            }
            n += 1;
            next = if n < 256 { out_rx.try_recv().ok() } else { None };
        }
        tx.flush().await.map_err(|e| Close::new(Reason::Success, format!("write failed: {e}")))
    }

    async fn handle(&self, p: Packet, now: &mut Immediate) -> Result<(), Close> {
        match p {
            Packet::Send(s) => self.send(s, now).await,
            Packet::Recvack(_) => Ok(()),
            Packet::Ping => {
                now.push(Bytes::from_static(&[(proto::PacketType::Pong as u8) << 4]));
                Ok(())
            }
            Packet::Disconnect(_) => Err(Close::new(Reason::Success, "")),
            Packet::Sub(sub) => {
                let ack = Packet::Suback(proto::Suback {
                    sub_no: sub.sub_no,
                    channel_id: sub.channel_id,
                    channel_type: sub.channel_type,
                    action: sub.action,
                    reason_code: Reason::NotSupportChannelType.code(),
                });
                self.push_now(&ack, now);
                Ok(())
            }
            Packet::Connect(_) => Err(Close::new(Reason::NotSupportHeader, "CONNECT sent twice")),
            other => Err(Close::new(
                Reason::NotSupportHeader,
                format!("{:?} is a server-to-client packet", other.packet_type()),
            )),
        }
    }

    fn push_now(&self, p: &Packet, now: &mut Immediate) {
        match proto::encode_to_vec(p, self.version) {
            Ok(b) => now.push(b.into()),
            Err(e) => tracing::warn!(error = %e, "cannot encode reply"),
        }
    }

    fn sendack(&self, s: &proto::Send, reason: Reason, now: &mut Immediate) {
        let ack = Packet::Sendack(proto::Sendack {
            flags: s.flags,
            message_id: 0,
            client_seq: s.client_seq,
            message_seq: 0,
            reason_code: reason.code(),
        });
        self.push_now(&ack, now);
    }

    async fn send(&self, s: proto::Send, now: &mut Immediate) -> Result<(), Close> {
        self.edge.metrics.sends.inc();
        let payload = if s.setting & setting::NO_ENCRYPT != 0 {
            s.payload.clone()
        } else {
            let expected =
                self.cipher.send_msg_key(s.client_seq, &s.client_msg_no, &s.channel_id, s.channel_type, &s.payload);
            if expected != s.msg_key {
                self.sendack(&s, Reason::MsgKeyError, now);
                return Ok(());
            }
            match self.cipher.decrypt(&s.payload) {
                Ok(p) => p,
                Err(_) => {
                    self.sendack(&s, Reason::PayloadDecodeError, now);
                    return Ok(());
                }
            }
        };
        let msg = OutgoingMessage {
            session: self.id,
            from_uid: self.uid.clone(),
            device_flag: self.device_flag,
            header_flags: s.flags,
            setting: s.setting,
            client_msg_no: s.client_msg_no.clone(),
            channel_id: s.channel_id.clone(),
            channel_type: s.channel_type,
            expire: s.expire,
            topic: s.topic.clone(),
            payload,
        };
        if self.edge.link.send(msg, s.client_seq, s.flags).await.is_err() {
            self.sendack(&s, Reason::SystemError, now);
        }
        Ok(())
    }
}

//! One client connection: CONNECT and key agreement, then frames both ways until either side closes.
//! One task per connection; it owns no buffer while the connection is idle.

mod handshake;
pub mod login_limit;
pub mod login_pace;
pub mod outbox;
pub mod registry;
pub mod wire;

use crate::link::PendingSend;
use crate::Edge;
use bytes::{Bytes, BytesMut};
use outbox::{Drained, NotAcked, Outbox};
use registry::SessionEntry;
use std::sync::Arc;
use std::time::Duration;
use tern_shared::link::OutgoingMessage;
use tern_shared::proto::{self, crypto::SessionCipher, setting, Packet, Reason};
use tokio::time::Instant;
use tracing::Instrument;
use wire::Wire;

/// Why a session ended; the text is what the client is told in DISCONNECT and what the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: Reason,
    pub reason: String,
    /// The metrics label, when the code alone does not tell why.
    label: Option<&'static str>,
}

impl Close {
    fn new(code: Reason, reason: impl Into<String>) -> Self {
        Close { code, reason: reason.into(), label: None }
    }
    /// The client went away or asked to close: nothing to tell it.
    fn quiet() -> Self {
        Close::new(Reason::Success, "")
    }
    /// A counter label for metrics.
    fn label(&self) -> &'static str {
        if let Some(label) = self.label {
            return label;
        }
        match self.code {
            Reason::AuthFail => "auth",
            Reason::Ban => "banned",
            Reason::NotSupportHeader => "malformed",
            _ => "other",
        }
    }
}

/// What a SEND costs the budget besides its payload: its ids, channel and bookkeeping.
const SEND_OVERHEAD: usize = 256;

struct Session {
    edge: Arc<Edge>,
    /// Bytes of this client's SENDs not yet answered by the core (`send_budget`); reading waits when
    /// it is spent, so a client cannot pile its messages up in the edge.
    budget: Arc<tokio::sync::Semaphore>,
    id: u64,
    uid: String,
    device_flag: u8,
    device_id: String,
    device_level: u8,
    version: u8,
    cipher: SessionCipher,
}

/// Serves one client connection to its end.
/// `peer` is what logs show of the client; `ip` its address for the per-address limits.
pub async fn run<W: Wire>(edge: Arc<Edge>, mut wire: W, peer: String, ip: std::net::IpAddr) {
    if edge.draining() {
        return wire.close().await;
    }
    edge.metrics.connects.inc();
    let mut buf = BytesMut::new();
    // Boxed, as is each SEND's handling below: a task's future is allocated at the size of its largest
    // state for as long as it lives, and an idle session is in neither of these.
    let handshake::Accepted { session, connack, proof } =
        match Box::pin(handshake::accept(&edge, &mut wire, &mut buf, ip)).await {
            Ok(a) => a,
            Err(close) => {
                tracing::debug!(%peer, reason = %close.reason, "connection refused");
                edge.metrics.connect_rejected.with_label_values(&[close.label()]).inc();
                wire.close().await;
                return;
            }
        };
    let outbox = Arc::new(Outbox::default());
    let entry = SessionEntry {
        info: tern_shared::link::SessionInfo {
            session: session.id,
            uid: session.uid.clone(),
            device_flag: session.device_flag,
            device_level: session.device_level,
            proof,
            device_id: session.device_id.clone(),
        },
        version: session.version,
        cipher: session.cipher.clone(),
        outbox: outbox.clone(),
    };
    edge.link.open_session(entry).await;
    edge.metrics.sessions.inc();
    let write_limit = Duration::from_millis(edge.config.write_timeout_ms);
    let close = match write_bounded(&mut wire, vec![connack], write_limit).await {
        Ok(()) => {
            let span = tracing::debug_span!("session", id = session.id, uid = %session.uid, %peer);
            session.serve(&mut wire, buf, &outbox).instrument(span).await
        }
        Err(close) => close,
    };
    if !close.reason.is_empty() {
        tracing::debug!(id = session.id, reason = %close.reason, "session closed");
        if close.code == Reason::NotSupportHeader {
            edge.metrics.closed_bad_input.with_label_values(&[close.label()]).inc();
        }
        let _ = write_disconnect(&mut wire, &close, session.version).await;
    }
    wire.close().await;
    edge.link.close_session(session.id).await;
    edge.metrics.sessions.dec();
}

async fn write_disconnect<W: Wire>(wire: &mut W, close: &Close, version: u8) -> std::io::Result<()> {
    let frame = Packet::Disconnect(proto::Disconnect { reason_code: close.code.code(), reason: close.reason.clone() });
    let bytes = proto::encode_to_vec(&frame, version).map_err(std::io::Error::other)?;
    tokio::time::timeout(Duration::from_secs(1), wire.write(vec![bytes.into()])).await.map_err(std::io::Error::other)?
}

/// Appends `chunk` to what is buffered and decodes every complete frame. Whole frames are decoded straight
/// from the chunk; only a trailing partial frame is kept, and the buffer is freed once drained.
fn ingest(buf: &mut BytesMut, chunk: &[u8], version: u8, max: usize, out: &mut Vec<Packet>) -> Result<(), Close> {
    let malformed = |e: proto::DecodeError| Close::new(Reason::NotSupportHeader, format!("malformed frame: {e}"));
    if buf.is_empty() {
        let mut rest = chunk;
        while let Some((p, used)) = proto::decode(rest, version, max).map_err(malformed)? {
            out.push(p);
            rest = &rest[used..];
        }
        buf.extend_from_slice(rest);
    } else {
        buf.extend_from_slice(chunk);
        while let Some((p, used)) = proto::decode(buf, version, max).map_err(malformed)? {
            out.push(p);
            let _ = buf.split_to(used);
        }
        if buf.is_empty() {
            *buf = BytesMut::new();
        }
    }
    Ok(())
}

fn write_failed(e: std::io::Error) -> Close {
    Close::new(Reason::Success, format!("write failed: {e}"))
}

/// Writes to the client, giving up on one that does not read.
async fn write_bounded<W: Wire>(wire: &mut W, frames: Vec<Bytes>, limit: Duration) -> Result<(), Close> {
    match tokio::time::timeout(limit, wire.write(frames)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(write_failed(e)),
        Err(_) => Err(Close::new(Reason::Unknown, format!("too slow: a write took over {limit:?}"))),
    }
}

impl Session {
    async fn serve<W: Wire>(&self, wire: &mut W, mut buf: BytesMut, outbox: &Outbox) -> Close {
        let idle = Duration::from_millis(self.edge.config.idle_timeout_ms);
        let max = self.edge.config.max_frame;
        let write_limit = Duration::from_millis(self.edge.config.write_timeout_ms);
        let mut deadline = Instant::now() + idle;
        let resend = self.edge.config.recv_resend();
        let mut resends = tokio::time::interval((resend.after / 4).max(Duration::from_millis(25)));
        resends.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Frames that came right behind CONNECT are already buffered.
        let mut packets = Vec::new();
        let early = std::mem::take(&mut buf);
        if let Err(close) = ingest(&mut buf, &early, self.version, max, &mut packets) {
            return close;
        }
        loop {
            if !packets.is_empty() {
                deadline = Instant::now() + idle;
                let mut replies = Vec::new();
                for p in std::mem::take(&mut packets) {
                    if let Err(close) = self.handle(p, &mut replies, outbox).await {
                        let _ = write_bounded(wire, replies, write_limit).await;
                        return close;
                    }
                }
                if !replies.is_empty() {
                    if let Err(close) = write_bounded(wire, replies, write_limit).await {
                        return close;
                    }
                }
            }
            let mut bad = None;
            tokio::select! {
                read = wire.read_some(|chunk| {
                    if bad.is_none() {
                        bad = ingest(&mut buf, chunk, self.version, max, &mut packets).err();
                    }
                }) => match read {
                    Ok(true) => {}
                    Ok(false) => return Close::quiet(),
                    Err(e) => return Close::new(Reason::Success, format!("read failed: {e}")),
                },
                _ = outbox.ready() => match outbox.drain() {
                    Drained::Frames(frames) => {
                        if let Err(close) = write_bounded(wire, frames.into(), write_limit).await {
                            if close.reason.starts_with("too slow") {
                                self.edge.metrics.slow_clients_closed.inc();
                            }
                            return close;
                        }
                    }
                    Drained::Close(mut frames, last) => {
                        frames.push_back(last);
                        let _ = write_bounded(wire, frames.into(), write_limit).await;
                        // The closing frame is written: nothing more to tell.
                        return Close::new(Reason::ConnectKick, "");
                    }
                    Drained::Overflowed => {
                        self.edge.metrics.slow_clients_closed.inc();
                        return Close::new(Reason::Unknown, "too slow: outbound queue overflowed");
                    }
                },
                _ = tokio::time::sleep_until(deadline) => return Close::new(Reason::Unknown, format!("idle for {idle:?}")),
                _ = resends.tick() => if let Err(NotAcked(id)) = outbox.resend_due(std::time::Instant::now(), resend) {
                    self.edge.metrics.slow_clients_closed.inc();
                    return Close::new(Reason::Unknown, format!("too slow: message {id} not acked after {} resends", resend.times));
                },
            }
            if let Some(close) = bad {
                return close;
            }
        }
    }

    async fn handle(&self, p: Packet, replies: &mut Vec<Bytes>, outbox: &Outbox) -> Result<(), Close> {
        match p {
            Packet::Send(s) => {
                Box::pin(self.send(s, replies)).await;
                Ok(())
            }
            Packet::Recvack(r) => {
                outbox.acked(r.message_id);
                Ok(())
            }
            Packet::Ping => {
                replies.push(Bytes::from_static(&[(proto::PacketType::Pong as u8) << 4]));
                Ok(())
            }
            Packet::Disconnect(_) => Err(Close::quiet()),
            Packet::Sub(sub) => {
                let ack = Packet::Suback(proto::Suback {
                    sub_no: sub.sub_no,
                    channel_id: sub.channel_id,
                    channel_type: sub.channel_type,
                    action: sub.action,
                    reason_code: Reason::NotSupportChannelType.code(),
                });
                self.reply(&ack, replies);
                Ok(())
            }
            Packet::Connect(_) => Err(Close::new(Reason::NotSupportHeader, "CONNECT sent twice")),
            other => Err(Close::new(
                Reason::NotSupportHeader,
                format!("{:?} is a server-to-client packet", other.packet_type()),
            )),
        }
    }

    fn reply(&self, p: &Packet, replies: &mut Vec<Bytes>) {
        match proto::encode_to_vec(p, self.version) {
            Ok(b) => replies.push(b.into()),
            Err(e) => tracing::warn!(error = %e, "cannot encode reply"),
        }
    }

    fn sendack(&self, s: &proto::Send, reason: Reason, replies: &mut Vec<Bytes>) {
        let ack = Packet::Sendack(proto::Sendack {
            flags: s.flags,
            message_id: 0,
            client_seq: s.client_seq,
            message_seq: 0,
            reason_code: reason.code(),
        });
        self.reply(&ack, replies);
    }

    /// Checks and decrypts a SEND and forwards it; the SENDACK comes back through the outbox.
    async fn send(&self, s: proto::Send, replies: &mut Vec<Bytes>) {
        self.edge.metrics.sends.inc();
        let payload = if s.setting & setting::NO_ENCRYPT != 0 {
            if self.edge.config.refuse_no_encrypt {
                return self.sendack(&s, Reason::NotAllowSend, replies);
            }
            s.payload.clone()
        } else {
            let expected =
                self.cipher.send_msg_key(s.client_seq, &s.client_msg_no, &s.channel_id, s.channel_type, &s.payload);
            if !tern_shared::secret::same(expected.as_bytes(), s.msg_key.as_bytes()) {
                return self.sendack(&s, Reason::MsgKeyError, replies);
            }
            match self.cipher.decrypt(&s.payload) {
                Ok(p) => p,
                Err(_) => return self.sendack(&s, Reason::PayloadDecodeError, replies),
            }
        };
        // Without a client msg no, a SEND the edge sends again after losing a link would be stored twice.
        let client_msg_no =
            if s.client_msg_no.is_empty() { tern_shared::client::random_msg_no() } else { s.client_msg_no.clone() };
        let cost = (payload.len() + SEND_OVERHEAD).min(self.edge.config.send_budget) as u32;
        let Ok(budget) = self.budget.clone().acquire_many_owned(cost).await else { return };
        let msg = OutgoingMessage {
            session: self.id,
            from_uid: self.uid.clone(),
            device_flag: self.device_flag,
            header_flags: s.flags,
            setting: s.setting,
            client_msg_no,
            channel_id: s.channel_id.clone(),
            channel_type: s.channel_type,
            expire: s.expire,
            topic: s.topic.clone(),
            payload,
        };
        if self.edge.link.send(PendingSend::new(msg, s.client_seq, s.flags, budget)).await.is_err() {
            self.sendack(&s, Reason::SystemError, replies);
        }
    }
}

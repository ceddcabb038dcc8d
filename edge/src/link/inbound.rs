//! Frames from the core: answers to pending requests, deliveries and kicks.

use super::{locked, Link};
use tern_shared::link::{Delivery, LinkFrame};
use tern_shared::proto::{self, flag, setting, Packet};

impl Link {
    pub(super) fn on_frame(&self, frame: LinkFrame) {
        match frame {
            LinkFrame::Pong { nonce, leaders } => {
                *locked(&self.leaders) = leaders.into();
                let sent = locked(&self.pings).iter().find(|(n, _)| *n == nonce).map(|(_, at)| *at);
                if let Some(at) = sent {
                    let (node, lane) = (self.node_id().to_string(), self.lane.to_string());
                    self.metrics.link_rtt.with_label_values(&[&node, &lane]).set(at.elapsed().as_secs_f64());
                    let micros = at.elapsed().as_micros().max(1) as u64;
                    self.rtt_us.store(micros, std::sync::atomic::Ordering::Relaxed);
                    if self.lane == 0 {
                        locked(&self.rtts).insert(self.node_id(), micros);
                    }
                }
            }
            LinkFrame::AuthResult { req, reason, device_level } => {
                if let Some(tx) = locked(&self.auths).remove(&req) {
                    let _ = tx.send((reason, device_level));
                }
            }
            LinkFrame::SendResult { req, reason, message_id, message_seq } => {
                if let Some(p) = locked(&self.sends).remove(&req) {
                    super::sendack(&self.registry, p, reason, message_id, message_seq);
                }
            }
            LinkFrame::Deliver(d) => self.deliver(d),
            LinkFrame::Kick { session, reason_code, reason } => {
                if let Some(s) = self.registry.get(session) {
                    let frame = Packet::Disconnect(proto::Disconnect { reason_code, reason });
                    if let Ok(b) = proto::encode_to_vec(&frame, s.version) {
                        s.outbox.close_with(b.into());
                    }
                }
            }
            other => tracing::debug!(frame = ?other, "unexpected frame from core"),
        }
    }

    /// Encrypts the message once per receiving session (each has its own key) and queues it.
    fn deliver(&self, d: Delivery) {
        let m = &d.message;
        // Payloads always go out encrypted, and streams are never sent to SDKs.
        let out_setting = m.setting & !(setting::NO_ENCRYPT | setting::STREAM);
        for target in &d.targets {
            let flags = if target.clear_red_dot { m.header_flags & !flag::RED_DOT } else { m.header_flags };
            for &sid in &target.sessions {
                let Some(s) = self.registry.get(sid) else { continue };
                let payload = s.cipher.encrypt(&m.payload).into_bytes();
                let seq = m.message_seq as u32;
                let msg_key = s.cipher.recv_msg_key(
                    m.message_id,
                    seq,
                    &m.client_msg_no,
                    m.timestamp,
                    &m.from_uid,
                    &target.channel_id,
                    m.channel_type,
                    &payload,
                );
                let recv = Packet::Recv(proto::Recv {
                    flags,
                    setting: out_setting,
                    msg_key,
                    from_uid: m.from_uid.clone(),
                    channel_id: target.channel_id.clone(),
                    channel_type: m.channel_type,
                    expire: m.expire,
                    client_msg_no: m.client_msg_no.clone(),
                    message_id: m.message_id,
                    message_seq: seq,
                    timestamp: m.timestamp,
                    topic: m.topic.clone(),
                    payload,
                });
                match proto::encode_to_vec(&recv, s.version) {
                    Ok(b) => {
                        if self.push_recv(&s, m.message_id, b.into()) {
                            self.metrics.recv_delivered.inc();
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot encode RECV"),
                }
            }
        }
    }
}

//! Sans-IO encoding and decoding of client frames.
//!
//! `decode` looks at the front of a byte buffer and returns one packet and the bytes it used, or `None`
//! when more bytes are needed. It never panics and never allocates more than the frame it was given.

use super::packet::*;
use super::{varint, DecodeError, EncodeError};

/// Default bound on a frame's body, as WuKongIM's server has it.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// Decodes one frame from the front of `buf` for a connection speaking `version`.
pub fn decode(buf: &[u8], version: u8, max_frame: usize) -> Result<Option<(Packet, usize)>, DecodeError> {
    let Some(&header) = buf.first() else {
        return Ok(None);
    };
    let kind = PacketType::from_u8(header >> 4).ok_or(DecodeError::UnknownPacketType(header >> 4))?;
    match kind {
        PacketType::Ping => return Ok(Some((Packet::Ping, 1))),
        PacketType::Pong => return Ok(Some((Packet::Pong, 1))),
        _ => {}
    }
    let Some((len, len_bytes)) = varint::read(&buf[1..])? else {
        return Ok(None);
    };
    if len > max_frame {
        return Err(DecodeError::FrameTooLarge { len, max: max_frame });
    }
    let start = 1 + len_bytes;
    let Some(body) = buf.get(start..start + len) else {
        return Ok(None);
    };
    let flags = header & 0x0f;
    let mut r = Reader { buf: body, pos: 0, packet: kind };
    let packet = match kind {
        PacketType::Connect => Packet::Connect(Connect {
            flags,
            version: r.u8("version")?,
            device_flag: r.u8("deviceFlag")?,
            device_id: r.string("deviceID")?,
            uid: r.string("uid")?,
            token: r.string("token")?,
            client_timestamp: r.i64("clientTimestamp")?,
            client_key: r.string("clientKey")?,
        }),
        PacketType::Connack => {
            let server_version =
                if flags & flag::HAS_SERVER_VERSION != 0 { Some(r.u8("serverVersion")?) } else { None };
            Packet::Connack(Connack {
                server_version,
                time_diff: r.i64("timeDiff")?,
                reason_code: r.u8("reasonCode")?,
                server_key: r.string("serverKey")?,
                salt: r.string("salt")?,
                node_id: if version >= 4 { r.u64("nodeId")? } else { 0 },
            })
        }
        PacketType::Send => {
            let setting = r.u8("setting")?;
            let client_seq = r.u32("clientSeq")?;
            let client_msg_no = r.string("clientMsgNo")?;
            let stream_no = if has_stream_fields(version, setting) { r.string("streamNo")? } else { String::new() };
            let channel_id = r.string("channelID")?;
            let channel_type = r.u8("channelType")?;
            let expire = if version >= 3 { r.u32("expire")? } else { 0 };
            let msg_key = r.string("msgKey")?;
            let topic = if setting & setting::TOPIC != 0 { r.string("topic")? } else { String::new() };
            Packet::Send(Send {
                flags,
                setting,
                client_seq,
                client_msg_no,
                stream_no,
                channel_id,
                channel_type,
                expire,
                msg_key,
                topic,
                payload: r.rest().to_vec(),
            })
        }
        PacketType::Sendack => Packet::Sendack(Sendack {
            flags,
            message_id: r.i64("messageID")?,
            client_seq: r.u32("clientSeq")?,
            message_seq: r.u32("messageSeq")?,
            reason_code: r.u8("reasonCode")?,
        }),
        PacketType::Recv => {
            let setting = r.u8("setting")?;
            let msg_key = r.string("msgKey")?;
            let from_uid = r.string("fromUID")?;
            let channel_id = r.string("channelID")?;
            let channel_type = r.u8("channelType")?;
            let expire = if version >= 3 { r.u32("expire")? } else { 0 };
            let client_msg_no = r.string("clientMsgNo")?;
            if has_stream_fields(version, setting) {
                return Err(DecodeError::UnsupportedStream);
            }
            let message_id = r.i64("messageID")?;
            let message_seq = r.u32("messageSeq")?;
            let timestamp = r.i32("timestamp")?;
            let topic = if setting & setting::TOPIC != 0 { r.string("topic")? } else { String::new() };
            Packet::Recv(Recv {
                flags,
                setting,
                msg_key,
                from_uid,
                channel_id,
                channel_type,
                expire,
                client_msg_no,
                message_id,
                message_seq,
                timestamp,
                topic,
                payload: r.rest().to_vec(),
            })
        }
        PacketType::Recvack => {
            Packet::Recvack(Recvack { flags, message_id: r.i64("messageID")?, message_seq: r.u32("messageSeq")? })
        }
        PacketType::Disconnect => {
            Packet::Disconnect(Disconnect { reason_code: r.u8("reasonCode")?, reason: r.string("reason")? })
        }
        PacketType::Sub => Packet::Sub(Sub {
            setting: r.u8("setting")?,
            sub_no: r.string("subNo")?,
            channel_id: r.string("channelID")?,
            channel_type: r.u8("channelType")?,
            action: r.u8("action")?,
            param: r.string("param")?,
        }),
        PacketType::Suback => Packet::Suback(Suback {
            sub_no: r.string("subNo")?,
            channel_id: r.string("channelID")?,
            channel_type: r.u8("channelType")?,
            action: r.u8("action")?,
            reason_code: r.u8("reasonCode")?,
        }),
        PacketType::Event => Packet::Event(Event {
            id: r.string("id")?,
            event_type: r.string("type")?,
            timestamp: r.i64("timestamp")?,
            data: r.rest().to_vec(),
        }),
        PacketType::Ping | PacketType::Pong => unreachable!("handled above"),
    };
    Ok(Some((packet, start + len)))
}

/// Appends the frame for `packet`, laid out for a connection speaking `version`.
pub fn encode(packet: &Packet, version: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let kind = (packet.packet_type() as u8) << 4;
    let mut w = Writer { buf: Vec::new() };
    let flags = match packet {
        Packet::Ping | Packet::Pong => {
            out.push(kind);
            return Ok(());
        }
        Packet::Connect(p) => {
            w.u8(p.version);
            w.u8(p.device_flag);
            w.string(&p.device_id, "deviceID")?;
            w.string(&p.uid, "uid")?;
            w.string(&p.token, "token")?;
            w.i64(p.client_timestamp);
            w.string(&p.client_key, "clientKey")?;
            p.flags
        }
        Packet::Connack(p) => {
            if let Some(v) = p.server_version {
                w.u8(v);
            }
            w.i64(p.time_diff);
            w.u8(p.reason_code);
            w.string(&p.server_key, "serverKey")?;
            w.string(&p.salt, "salt")?;
            if version >= 4 {
                w.u64(p.node_id);
            }
            if p.server_version.is_some() {
                flag::HAS_SERVER_VERSION
            } else {
                0
            }
        }
        Packet::Send(p) => {
            w.u8(p.setting);
            w.u32(p.client_seq);
            w.string(&p.client_msg_no, "clientMsgNo")?;
            if has_stream_fields(version, p.setting) {
                w.string(&p.stream_no, "streamNo")?;
            }
            w.string(&p.channel_id, "channelID")?;
            w.u8(p.channel_type);
            if version >= 3 {
                w.u32(p.expire);
            }
            w.string(&p.msg_key, "msgKey")?;
            if p.setting & setting::TOPIC != 0 {
                w.string(&p.topic, "topic")?;
            }
            w.buf.extend_from_slice(&p.payload);
            p.flags
        }
        Packet::Sendack(p) => {
            w.i64(p.message_id);
            w.u32(p.client_seq);
            w.u32(p.message_seq);
            w.u8(p.reason_code);
            p.flags
        }
        Packet::Recv(p) => {
            if has_stream_fields(version, p.setting) {
                return Err(EncodeError::UnsupportedStream);
            }
            w.u8(p.setting);
            w.string(&p.msg_key, "msgKey")?;
            w.string(&p.from_uid, "fromUID")?;
            w.string(&p.channel_id, "channelID")?;
            w.u8(p.channel_type);
            if version >= 3 {
                w.u32(p.expire);
            }
            w.string(&p.client_msg_no, "clientMsgNo")?;
            w.i64(p.message_id);
            w.u32(p.message_seq);
            w.i32(p.timestamp);
            if p.setting & setting::TOPIC != 0 {
                w.string(&p.topic, "topic")?;
            }
            w.buf.extend_from_slice(&p.payload);
            p.flags
        }
        Packet::Recvack(p) => {
            w.i64(p.message_id);
            w.u32(p.message_seq);
            p.flags
        }
        Packet::Disconnect(p) => {
            w.u8(p.reason_code);
            w.string(&p.reason, "reason")?;
            0
        }
        Packet::Sub(p) => {
            w.u8(p.setting);
            w.string(&p.sub_no, "subNo")?;
            w.string(&p.channel_id, "channelID")?;
            w.u8(p.channel_type);
            w.u8(p.action);
            w.string(&p.param, "param")?;
            0
        }
        Packet::Suback(p) => {
            w.string(&p.sub_no, "subNo")?;
            w.string(&p.channel_id, "channelID")?;
            w.u8(p.channel_type);
            w.u8(p.action);
            w.u8(p.reason_code);
            0
        }
        Packet::Event(p) => {
            w.string(&p.id, "id")?;
            w.string(&p.event_type, "type")?;
            w.i64(p.timestamp);
            w.buf.extend_from_slice(&p.data);
            0
        }
    };
    if w.buf.len() > varint::MAX_VARINT {
        return Err(EncodeError::FrameTooLarge(w.buf.len()));
    }
    out.push(kind | (flags & 0x0f));
    varint::write(w.buf.len(), out);
    out.extend_from_slice(&w.buf);
    Ok(())
}

/// Convenience: the frame for `packet` as a new vector.
pub fn encode_to_vec(packet: &Packet, version: u8) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode(packet, version, &mut out)?;
    Ok(out)
}

fn has_stream_fields(version: u8, setting: u8) -> bool {
    (2..5).contains(&version) && setting & setting::STREAM != 0
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    packet: PacketType,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated { packet: self.packet, field });
        };
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }
    fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = u16::from_be_bytes(self.array(field)?) as usize;
        let bytes = self.take(len, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { packet: self.packet, field })
    }
    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }
}

struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn string(&mut self, s: &str, field: &'static str) -> Result<(), EncodeError> {
        let len = u16::try_from(s.len()).map_err(|_| EncodeError::StringTooLong { field, len: s.len() })?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

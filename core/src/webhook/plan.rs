//! What one delivery round POSTs: outbox rows as WuKongIM's webhook bodies, each POST with the ids of
//! the rows it carries (its event ids), and how long to wait after failures. Plain functions.

use crate::message_json::MessageJson;
use crate::store::model::StoredMessage;
use std::time::Duration;

/// An outbox row ready to send.
pub enum Row {
    /// A stored message and, for `msg.offline`, its recipients without a session.
    Message { id: u64, message: StoredMessage, offline: Vec<String> },
    /// A `user.onlinestatus` line.
    Online { id: u64, line: String },
}

/// Which events the business server wants.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    pub notify: bool,
    pub offline: bool,
    pub online: bool,
}

/// A `user.onlinestatus` line as WuKongIM writes it: `uid-device_flag-online(0|1)-connection id-sessions
/// of the uid on that device flag-sessions of the uid`, the counts after the change.
pub fn online_line(uid: &str, device_flag: u8, online: bool, session: u64, on_device: usize, total: usize) -> String {
    format!("{uid}-{device_flag}-{}-{session}-{on_device}-{total}", u8::from(online))
}

#[derive(Debug, PartialEq, Eq)]
pub struct Post {
    pub event: &'static str,
    pub body: Vec<u8>,
    /// The outbox ids it carries: receivers drop an event they have seen by its id.
    pub ids: Vec<u64>,
}

fn json(m: &StoredMessage) -> MessageJson {
    MessageJson::as_sent(m.clone())
}

/// `msg.notify`: one POST with every message of the round (an array, as WuKongIM batches them).
/// `msg.offline`: one POST per message that has recipients without a session, the message object with
/// their uids in `to_uids`. `user.onlinestatus`: one POST with every line of the round.
pub fn posts(rows: &[Row], wanted: Wanted) -> Vec<Post> {
    let mut out = Vec::new();
    let messages: Vec<(u64, &StoredMessage, &[String])> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Message { id, message, offline } => Some((*id, message, offline.as_slice())),
            Row::Online { .. } => None,
        })
        .collect();
    if wanted.notify && !messages.is_empty() {
        let bodies: Vec<MessageJson> = messages.iter().map(|(_, m, _)| json(m)).collect();
        let body = serde_json::to_vec(&bodies).unwrap_or_default();
        out.push(Post { event: "msg.notify", body, ids: messages.iter().map(|(id, ..)| *id).collect() });
    }
    if wanted.offline {
        for (id, message, offline) in messages.iter().filter(|(.., offline)| !offline.is_empty()) {
            let mut value = serde_json::to_value(json(message)).unwrap_or_default();
            value["to_uids"] = serde_json::json!(offline);
            let body = serde_json::to_vec(&value).unwrap_or_default();
            out.push(Post { event: "msg.offline", body, ids: vec![*id] });
        }
    }
    let online: Vec<(u64, &str)> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Online { id, line } => Some((*id, line.as_str())),
            Row::Message { .. } => None,
        })
        .collect();
    if wanted.online && !online.is_empty() {
        let lines: Vec<&str> = online.iter().map(|(_, l)| *l).collect();
        let body = serde_json::to_vec(&lines).unwrap_or_default();
        out.push(Post { event: "user.onlinestatus", body, ids: online.iter().map(|(id, _)| *id).collect() });
    }
    out
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The wait before the next try after `failures` failures in a row: `min`, doubling, at most `max`.
pub fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    min.saturating_mul(1u32 << failures.saturating_sub(1).min(20)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_shared::channel::kind;

    fn row(id: u64, channel_id: &str, channel_type: u8, offline: &[&str]) -> Row {
        let message = StoredMessage {
            message_id: id as i64,
            message_seq: 1,
            from_uid: "alice".into(),
            channel_id: channel_id.into(),
            channel_type,
            payload: b"{\"type\":1}".to_vec(),
            ..Default::default()
        };
        Row::Message { id, message, offline: offline.iter().map(|s| s.to_string()).collect() }
    }

    const ALL: Wanted = Wanted { notify: true, offline: true, online: true };

    #[test]
    fn one_notify_for_the_round_and_one_offline_per_message_with_offline_recipients() {
        let online = Row::Online { id: 11, line: online_line("bob", 1, true, 42, 1, 2) };
        let rows = [row(7, "g", kind::GROUP, &["bob", "carol"]), row(9, "bob@alice", kind::PERSON, &[]), online];
        let p = posts(&rows, ALL);
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].event, p[0].ids.clone()), ("msg.notify", vec![7, 9]));
        let notify: serde_json::Value = serde_json::from_slice(&p[0].body).unwrap();
        assert_eq!(notify[1]["channel_id"], "bob", "a person message names its recipient");
        assert_eq!(notify[0]["payload"], "eyJ0eXBlIjoxfQ==");
        assert_eq!((p[1].event, p[1].ids.clone()), ("msg.offline", vec![7]));
        let offline: serde_json::Value = serde_json::from_slice(&p[1].body).unwrap();
        assert_eq!(offline["to_uids"], serde_json::json!(["bob", "carol"]));
        assert_eq!(offline["message_idstr"], "7");
        assert_eq!((p[2].event, p[2].ids.clone()), ("user.onlinestatus", vec![11]));
        assert_eq!(p[2].body, br#"["bob-1-1-42-1-2"]"#);
        assert!(posts(&rows, Wanted::default()).is_empty());
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn retries_back_off_doubling_up_to_the_bound() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(30));
        let waits: Vec<u64> = (1..=8).map(|f| backoff(f, min, max).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(backoff(u32::MAX, min, max), max);
    }
}

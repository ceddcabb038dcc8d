//! What one delivery round POSTs: outbox rows as WuKongIM's webhook bodies, each POST with the ids of
//! the rows it carries (its event ids), and how long to wait after failures. Plain functions.

use crate::message_json::MessageJson;
use crate::store::model::StoredMessage;
use std::time::Duration;
use tern_shared::channel::{kind, person_channel_for};

/// An outbox row ready to send: its message and, for `msg.offline`, its recipients without a session.
pub struct Row {
    pub id: u64,
    pub message: StoredMessage,
    pub offline: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Post {
    pub event: &'static str,
    pub body: Vec<u8>,
    /// The outbox ids it carries: receivers drop an event they have seen by its id.
    pub ids: Vec<u64>,
}

/// A stored message as webhooks show it: a person message names the party that did not send it.
fn json(m: &StoredMessage) -> MessageJson {
    let shown = match m.channel_type {
        kind::PERSON => person_channel_for(&m.channel_id, &m.from_uid).to_string(),
        _ => m.channel_id.clone(),
    };
    MessageJson::new(shown, m.clone())
}

/// `msg.notify`: one POST with every message of the round (an array, as WuKongIM batches them).
/// `msg.offline`: one POST per message that has recipients without a session, the message object with
/// their uids in `to_uids`.
pub fn posts(rows: &[Row], notify: bool, offline: bool) -> Vec<Post> {
    let mut out = Vec::new();
    if notify && !rows.is_empty() {
        let messages: Vec<MessageJson> = rows.iter().map(|r| json(&r.message)).collect();
        let body = serde_json::to_vec(&messages).unwrap_or_default();
        out.push(Post { event: "msg.notify", body, ids: rows.iter().map(|r| r.id).collect() });
    }
    if offline {
        for r in rows.iter().filter(|r| !r.offline.is_empty()) {
            let mut value = serde_json::to_value(json(&r.message)).unwrap_or_default();
            value["to_uids"] = serde_json::json!(r.offline);
            out.push(Post {
                event: "msg.offline",
                body: serde_json::to_vec(&value).unwrap_or_default(),
                ids: vec![r.id],
            });
        }
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
        Row { id, message, offline: offline.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn one_notify_for_the_round_and_one_offline_per_message_with_offline_recipients() {
        let rows = [row(7, "g", kind::GROUP, &["bob", "carol"]), row(9, "bob@alice", kind::PERSON, &[])];
        let p = posts(&rows, true, true);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].event, p[0].ids.clone()), ("msg.notify", vec![7, 9]));
        let notify: serde_json::Value = serde_json::from_slice(&p[0].body).unwrap();
        assert_eq!(notify[1]["channel_id"], "bob", "a person message names its recipient");
        assert_eq!(notify[0]["payload"], "eyJ0eXBlIjoxfQ==");
        assert_eq!((p[1].event, p[1].ids.clone()), ("msg.offline", vec![7]));
        let offline: serde_json::Value = serde_json::from_slice(&p[1].body).unwrap();
        assert_eq!(offline["to_uids"], serde_json::json!(["bob", "carol"]));
        assert_eq!(offline["message_idstr"], "7");
        assert!(posts(&rows, false, false).is_empty());
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

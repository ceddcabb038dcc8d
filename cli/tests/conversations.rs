//! Conversations in read mode against a simple model: after a random mix of person and group messages,
//! joins, leaves, unread changes and deletions, `/conversation/sync` gives every user exactly the
//! conversations, unread counts and read positions the model computes.

mod common;

use common::{Api, Topology};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use tern_shared::channel::person_channel_id;

const USERS: usize = 5;
const GROUPS: usize = 3;
const STEPS: usize = 60;
const SEEDS: u64 = 6;

/// A conversation as the model keeps it.
#[derive(Debug, Clone, Copy, Default)]
struct Conv {
    read: u64,
    deleted_at: Option<u64>,
}

/// (uid, channel id as the user names it, type) → conversation; channel (stored id, type) → last seq.
#[derive(Default)]
struct Model {
    convs: BTreeMap<(String, String, u8), Conv>,
    last: BTreeMap<(String, u8), u64>,
    members: BTreeMap<String, BTreeSet<String>>,
}

impl Model {
    fn last(&self, stored: &str, t: u8) -> u64 {
        self.last.get(&(stored.to_string(), t)).copied().unwrap_or(0)
    }

    /// What `/conversation/sync` should give `uid`: (channel, type) → (unread, last seq, read to).
    fn expected(&self, uid: &str, only_unread: bool) -> BTreeMap<(String, u8), (u64, u64, u64)> {
        let mut out = BTreeMap::new();
        for ((u, channel, t), c) in &self.convs {
            if u != uid {
                continue;
            }
            let stored = if *t == 1 { person_channel_id(uid, channel) } else { channel.clone() };
            let last = self.last(&stored, *t);
            let read = c.read.min(last);
            let mut from = if only_unread { read + 1 } else { 1 };
            if let Some(d) = c.deleted_at {
                from = from.max(d + 1);
            }
            if last >= from {
                out.insert((channel.clone(), *t), (last - read, last, read));
            }
        }
        out
    }
}

async fn send(api: &Api, m: &mut Model, from: &str, channel: &str, t: u8) {
    let body = serde_json::json!({
        "from_uid": from, "channel_id": channel, "channel_type": t, "payload": "eyJ0eXBlIjoxfQ==",
    });
    let sent = api.ok("/message/send", body).await;
    let stored = if t == 1 { person_channel_id(from, channel) } else { channel.to_string() };
    let seq = m.last(&stored, t) + 1;
    assert_eq!(sent["message_seq"].as_u64(), Some(seq));
    m.last.insert((stored, t), seq);
    if t == 1 {
        m.convs.entry((channel.to_string(), from.to_string(), 1)).or_default();
    }
    // The sender has read what it sent; a group's non-member (a business server sending as it) has no
    // conversation there.
    let party = t == 1 || m.members.get(channel).is_some_and(|s| s.contains(from));
    let key = (from.to_string(), channel.to_string(), t);
    if party || m.convs.contains_key(&key) {
        let c = m.convs.entry(key).or_default();
        c.read = c.read.max(seq);
    }
}

async fn sync(api: &Api, uid: &str, only_unread: bool) -> BTreeMap<(String, u8), (u64, u64, u64)> {
    let body = serde_json::json!({"uid": uid, "msg_count": 2, "only_unread": u8::from(only_unread)});
    let list = api.ok("/conversation/sync", body).await;
    let mut out = BTreeMap::new();
    for c in list.as_array().expect("an array") {
        let key = (c["channel_id"].as_str().unwrap().to_string(), c["channel_type"].as_u64().unwrap() as u8);
        let recents = c["recents"].as_array().unwrap();
        assert!(!recents.is_empty() && recents.len() <= 2, "{c}");
        // Newest first, the newest being the conversation's last message.
        assert_eq!(recents[0]["message_seq"], c["last_msg_seq"], "{c}");
        let got = (c["unread"].as_u64().unwrap(), c["last_msg_seq"].as_u64().unwrap());
        let read = c["readed_to_msg_seq"].as_u64().unwrap();
        assert!(out.insert(key, (got.0, got.1, read)).is_none(), "listed twice: {c}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_sync_matches_a_model_after_a_random_workload() {
    let cl = Topology::nodes(1).start().await;
    let api = &cl.api;
    for seed in 0..SEEDS {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let users: Vec<String> = (0..USERS).map(|i| format!("s{seed}u{i}")).collect();
        let groups: Vec<String> = (0..GROUPS).map(|i| format!("s{seed}g{i}")).collect();
        let mut m = Model::default();
        for g in &groups {
            api.group(g, &[]).await;
            m.members.insert(g.clone(), BTreeSet::new());
        }
        let mut log = Vec::new();
        for _ in 0..STEPS {
            let uid = users[rng.gen_range(0..USERS)].clone();
            let other = users[rng.gen_range(0..USERS)].clone();
            let g = groups[rng.gen_range(0..GROUPS)].clone();
            // A conversation the user has, or might have.
            let (channel, t) = if rng.gen_bool(0.5) { (g.clone(), 2u8) } else { (other.clone(), 1u8) };
            let step = rng.gen_range(0..9);
            log.push(format!("{step} {uid} {other} {g} {channel}:{t}"));
            match step {
                0 | 1 => {
                    let body = serde_json::json!({"channel_id": g, "channel_type": 2, "subscribers": [uid]});
                    api.ok("/channel/subscriber_add", body).await;
                    if m.members.get_mut(&g).unwrap().insert(uid.clone()) {
                        let last = m.last(&g, 2);
                        m.convs.entry((uid.clone(), g.clone(), 2)).or_insert(Conv { read: last, deleted_at: None });
                    }
                }
                2 => {
                    let body = serde_json::json!({"channel_id": g, "channel_type": 2, "subscribers": [uid]});
                    api.ok("/channel/subscriber_remove", body).await;
                    m.members.get_mut(&g).unwrap().remove(&uid);
                    m.convs.remove(&(uid.clone(), g.clone(), 2));
                }
                3 | 4 => send(api, &mut m, &uid, &g, 2).await,
                5 if uid != other => send(api, &mut m, &uid, &other, 1).await,
                6 => {
                    let unread = rng.gen_range(0..4);
                    let body =
                        serde_json::json!({"uid": uid, "channel_id": channel, "channel_type": t, "unread": unread});
                    api.ok("/conversations/setUnread", body).await;
                    let stored = if t == 1 { person_channel_id(&uid, &channel) } else { channel.clone() };
                    let last = m.last(&stored, t);
                    m.convs.entry((uid.clone(), channel.clone(), t)).or_default().read = last.saturating_sub(unread);
                }
                7 => {
                    let body = serde_json::json!({"uid": uid, "channel_id": channel, "channel_type": t});
                    api.ok("/conversations/clearUnread", body).await;
                    let stored = if t == 1 { person_channel_id(&uid, &channel) } else { channel.clone() };
                    let last = m.last(&stored, t);
                    m.convs.entry((uid.clone(), channel.clone(), t)).or_default().read = last;
                }
                8 => {
                    let body = serde_json::json!({"uid": uid, "channel_id": channel, "channel_type": t});
                    api.ok("/conversations/delete", body).await;
                    let stored = if t == 1 { person_channel_id(&uid, &channel) } else { channel.clone() };
                    let last = m.last(&stored, t);
                    if let Some(c) = m.convs.get_mut(&(uid.clone(), channel.clone(), t)) {
                        *c = Conv { read: last, deleted_at: Some(last) };
                    }
                }
                _ => {}
            }
        }
        for uid in &users {
            for only_unread in [false, true] {
                let (got, want) = (sync(api, uid, only_unread).await, m.expected(uid, only_unread));
                assert_eq!(got, want, "seed {seed}, {uid}, only_unread {only_unread}; steps:\n{}", log.join("\n"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_requests_name_their_mistakes() {
    let cl = Topology::nodes(1).start().await;
    let (status, body) = cl.api.post("/conversation/sync", serde_json::json!({"msg_count": 1})).await;
    assert_eq!((status, body["msg"].as_str()), (400, Some("uid cannot be empty")));
    let (status, body) = cl.api.post("/conversations/setUnread", serde_json::json!({"uid": "a", "unread": 1})).await;
    assert_eq!((status, body["status"].as_u64()), (400, Some(400)), "{body}");
    let ok = cl.api.ok("/conversations/delete", serde_json::json!({"uid": "a", "channel_id": "b", "channel_type": 1}));
    assert_eq!(ok.await, serde_json::json!({"status": 200}));
    // A deleted conversation the user never had is not created.
    let list = cl.api.ok("/conversation/sync", serde_json::json!({"uid": "a", "msg_count": 1})).await;
    assert_eq!(list, serde_json::json!([]));
}

//! Channel controls with WuKongIM's API and reason codes: deny lists (a group's, and a user's own for
//! the people who write to them), allow lists, users banned from connecting or sending, and removing
//! every subscriber.

mod common;

use common::{connect, Topology};
use std::time::Duration;
use tern_shared::client::{Client, ClientError, ClientOptions, Incoming};
use tern_shared::proto::Reason;

async fn sent(c: &Client, to: &str, channel_type: u8) -> u8 {
    c.send_text(to, channel_type, "hi").await.expect("a SENDACK").reason_code
}

fn list(channel_id: &str, channel_type: u8, uids: &[&str]) -> serde_json::Value {
    serde_json::json!({"channel_id": channel_id, "channel_type": channel_type, "uids": uids})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_and_allow_lists_bans_and_removals_are_enforced() {
    let cl = Topology::nodes(1).start().await;
    let api = &cl.api;
    for u in ["alice", "bob", "carol", "dave", "eve"] {
        api.user(u, 0).await;
    }
    api.group("g", &["alice", "bob", "carol"]).await;
    let tcp = cl.tcp();
    let alice = connect(&tcp, "alice", 0).await;
    let mut bob = connect(&tcp, "bob", 0).await;
    let carol = connect(&tcp, "carol", 0).await;
    let dave = connect(&tcp, "dave", 0).await;
    let ok = Reason::Success.code();
    assert_eq!(sent(&alice, "g", 2).await, ok);
    assert!(matches!(bob.recv_timeout(Duration::from_secs(5)).await, Some(Incoming::Message(_))));

    // A denied member can neither send to the group nor read it; a non-member neither.
    api.ok("/channel/blacklist_add", list("g", 2, &["bob"])).await;
    assert_eq!(sent(&bob, "g", 2).await, Reason::InDenyList.code());
    assert_eq!(sent(&dave, "g", 2).await, Reason::SubscriberNotExist.code());
    assert_eq!(sent(&alice, "g", 2).await, ok);
    assert_eq!(bob.recv_timeout(Duration::from_millis(500)).await, None, "a denied member got the group's message");
    for reader in ["bob", "dave"] {
        let body = serde_json::json!({"login_uid": reader, "channel_id": "g", "channel_type": 2, "pull_mode": 1});
        let (status, _) = api.post("/channel/messagesync", body).await;
        assert_eq!(status, 403, "{reader} read the group");
    }
    api.ok("/channel/blacklist_remove", list("g", 2, &["bob"])).await;
    assert_eq!(sent(&bob, "g", 2).await, ok);

    // An allow list admits only its members.
    api.ok("/channel/whitelist_add", list("g", 2, &["alice"])).await;
    assert_eq!(sent(&carol, "g", 2).await, Reason::NotInAllowList.code());
    assert_eq!(sent(&alice, "g", 2).await, ok);
    let allowed = api.ok_get("/channel/whitelist?channel_id=g&channel_type=2").await;
    assert_eq!(allowed, serde_json::json!([{"uid": "alice"}]));
    api.ok("/channel/whitelist_remove_all", serde_json::json!({"channel_id": "g", "channel_type": 2})).await;
    assert_eq!(sent(&carol, "g", 2).await, ok);

    // A user's own deny list keeps who is on it from writing to them.
    api.ok("/channel/blacklist_add", list("bob", 1, &["alice"])).await;
    assert_eq!(sent(&alice, "bob", 1).await, Reason::InDenyList.code());
    assert_eq!(sent(&carol, "bob", 1).await, ok);
    api.ok("/channel/blacklist_set", list("bob", 1, &[])).await;
    assert_eq!(sent(&alice, "bob", 1).await, ok);

    // A user banned from sending still connects; a banned user does not.
    api.ok("/channel/info", serde_json::json!({"channel_id": "carol", "channel_type": 1, "send_ban": 1})).await;
    assert_eq!(sent(&carol, "g", 2).await, Reason::SendBan.code());
    api.ok("/channel/info", serde_json::json!({"channel_id": "eve", "channel_type": 1, "ban": 1})).await;
    let refused = Client::connect(ClientOptions::new(tcp.clone(), "eve", "eve-tok")).await.err();
    assert!(matches!(refused, Some(ClientError::Rejected(code)) if code == Reason::Ban.code()), "{refused:?}");

    // A system uid sends where it is no member and past deny lists; removed, it is a user again.
    api.ok("/user/systemuids_add", serde_json::json!({"uids": ["dave"]})).await;
    assert_eq!(api.ok_get("/user/systemuids").await, serde_json::json!(["dave"]));
    assert_eq!(sent(&dave, "g", 2).await, ok);
    api.ok("/channel/blacklist_add", list("bob", 1, &["dave"])).await;
    assert_eq!(sent(&dave, "bob", 1).await, ok);
    api.ok("/user/systemuids_remove", serde_json::json!({"uids": ["dave"]})).await;
    assert_eq!(sent(&dave, "g", 2).await, Reason::SubscriberNotExist.code());
    // A business server's message without a sender comes from the system.
    let body = serde_json::json!({"channel_id": "bob", "channel_type": 1, "payload": "eyJ0eXBlIjoxfQ=="});
    let id = api.ok("/message/send", body).await["message_id"].as_i64().unwrap();
    let last = api.ok_get("/channel/last_message?login_uid=bob&channel_id=____system&channel_type=1").await;
    assert_eq!((last["message_id"].as_i64(), last["from_uid"].as_str()), (Some(id), Some("____system")));

    // Every subscriber removed: nobody is a member any more.
    api.ok("/channel/subscriber_remove_all", serde_json::json!({"channel_id": "g", "channel_type": 2})).await;
    assert_eq!(sent(&alice, "g", 2).await, Reason::SubscriberNotExist.code());

    // Mistakes are named.
    let (status, body) = api.post("/channel/blacklist_add", list("g", 2, &[])).await;
    assert_eq!((status, body["msg"].as_str()), (400, Some("uids cannot be empty")));
    let (status, _) =
        api.post("/channel/subscriber_remove_all", serde_json::json!({"channel_id": "x", "channel_type": 1})).await;
    assert_eq!(status, 400);
}

/// `/message/send` with `subscribers`: only the listed uids get it, in WuKongIM's temporary channel
/// (type 8, named after the list), which they alone can read back and which makes no conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_list_of_uids_reaches_them_alone() {
    let cl = Topology::nodes(1).start().await;
    for uid in ["alice", "bob", "carol"] {
        cl.api.user(uid, 0).await;
    }
    let mut alice = connect(&cl.tcp(), "alice", 0).await;
    let mut bob = connect(&cl.tcp(), "bob", 0).await;
    let mut carol = connect(&cl.tcp(), "carol", 0).await;
    let payload = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"{\"type\":99}");
    let to = |subscribers: &[&str], sync_once: u8, channel_id: &str| {
        serde_json::json!({"header": {"sync_once": sync_once}, "from_uid": "", "channel_id": channel_id,
            "subscribers": subscribers, "payload": payload})
    };
    for (bad, why) in
        [(to(&["bob"], 0, ""), "sync_once"), (to(&["bob"], 1, "g1"), "channel_id"), (to(&["b@d"], 1, ""), "uid")]
    {
        let (status, body) = cl.api.post("/message/send", bad).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["msg"].as_str().unwrap_or_default().contains(why), "{body}");
    }
    let sent = cl.api.ok("/message/send", to(&["bob", "carol"], 1, "")).await;
    assert_eq!(sent["status"], 200, "{sent}");
    let temp = tern_shared::channel::temp_channel_id(&["bob".to_string(), "carol".to_string()]);
    for (uid, client) in [("bob", &mut bob), ("carol", &mut carol)] {
        match client.recv_timeout(Duration::from_secs(5)).await {
            Some(Incoming::Message(m)) => {
                assert_eq!((m.channel_id.as_str(), m.channel_type), (temp.as_str(), 8), "{uid}");
                assert_eq!(m.payload, b"{\"type\":99}", "{uid}");
            }
            other => panic!("{uid} got {other:?}"),
        }
    }
    assert_eq!(alice.recv_timeout(Duration::from_millis(500)).await, None, "alice is not on the list");
    let sync = |uid: &str| {
        serde_json::json!({"login_uid": uid, "channel_id": temp, "channel_type": 8, "start_message_seq": 1,
            "end_message_seq": 0, "limit": 10, "pull_mode": 1})
    };
    let read = cl.api.ok("/channel/messagesync", sync("bob")).await;
    assert_eq!(read["messages"].as_array().map(Vec::len), Some(1), "{read}");
    assert_eq!(cl.api.post("/channel/messagesync", sync("alice")).await.0, 403);
    let conversations =
        cl.api.ok("/conversation/sync", serde_json::json!({"uid": "bob", "version": 0, "msg_count": 1})).await;
    assert_eq!(conversations, serde_json::json!([]), "a temporary channel makes no conversation");
    // The same list again: the same channel, the next seq.
    let again = cl.api.ok("/message/send", to(&["bob", "carol"], 1, "")).await;
    assert_eq!(again["message_seq"], 2, "{again}");
}

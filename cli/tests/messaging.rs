//! Clients on one edge exchange person and group messages end to end; non-members get nothing.

mod common;

use common::{connect, Topology};
use std::time::Duration;
use tern_shared::client::{Client, Incoming, Received};

async fn next_message(c: &mut Client) -> Received {
    match c.recv_timeout(Duration::from_secs(5)).await {
        Some(Incoming::Message(m)) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn text(m: &Received) -> String {
    let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("json payload");
    v["content"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_and_group_messages_reach_members_only() {
    let cl = Topology::nodes(1).start().await;
    for uid in ["alice", "bob", "carol"] {
        cl.api.user(uid, 0).await;
    }
    cl.api.user("bob", 1).await;
    cl.api.group("g1", &["alice", "bob"]).await;

    let mut alice = connect(&cl.tcp(), "alice", 0).await;
    let mut bob = connect(&cl.tcp(), "bob", 0).await;
    // Bob's second device speaks WebSocket and the oldest served protocol version.
    let mut bob_web = {
        let mut o = tern_shared::client::ClientOptions::new(cl.ws(), "bob", "bob-tok");
        o.device_flag = 1;
        o.version = 2;
        Client::connect(o).await.expect("bob web connect")
    };
    let mut carol = connect(&cl.tcp(), "carol", 0).await;

    // Person: alice -> bob reaches both of bob's devices, named after the sender.
    let ack = alice.send_text("bob", 1, "hi bob").await.unwrap();
    assert_eq!((ack.reason_code, ack.message_seq), (1, 1));
    for dev in [&mut bob, &mut bob_web] {
        let m = next_message(dev).await;
        assert_eq!((m.from_uid.as_str(), m.channel_id.as_str(), m.channel_type), ("alice", "alice", 1));
        assert_eq!((m.message_id, m.message_seq), (ack.message_id, 1));
        assert_eq!(text(&m), "hi bob");
    }

    // The reply lands in the same channel (seq 2); bob's other device sees it as its own, under "alice".
    let ack = bob.send_text("alice", 1, "hi alice").await.unwrap();
    assert_eq!((ack.reason_code, ack.message_seq), (1, 2));
    let m = next_message(&mut alice).await;
    assert_eq!((m.from_uid.as_str(), m.channel_id.as_str(), text(&m).as_str()), ("bob", "bob", "hi alice"));
    let m = next_message(&mut bob_web).await;
    assert_eq!((m.from_uid.as_str(), m.channel_id.as_str()), ("bob", "alice"));
    assert_eq!(m.flags & tern_shared::proto::flag::RED_DOT, 0, "own messages carry no red dot");

    // Group: alice -> g1 reaches bob on both devices.
    let ack = alice.send_text("g1", 2, "hello group").await.unwrap();
    assert_eq!((ack.reason_code, ack.message_seq), (1, 1));
    for dev in [&mut bob, &mut bob_web] {
        let m = next_message(dev).await;
        assert_eq!((m.channel_id.as_str(), m.channel_type, text(&m).as_str()), ("g1", 2, "hello group"));
    }

    // Carol is no member: she cannot send to g1, and has received nothing at all.
    let ack = carol.send_text("g1", 2, "let me in").await.unwrap();
    assert_eq!(ack.reason_code, tern_shared::proto::Reason::SubscriberNotExist.code());
    let ack = carol.send_text("nope", 2, "?").await.unwrap();
    assert_eq!(ack.reason_code, tern_shared::proto::Reason::ChannelNotExist.code());
    assert_eq!(carol.recv_timeout(Duration::from_millis(500)).await, None);
    // Nor did the refused sends reach anyone.
    assert_eq!(bob.recv_timeout(Duration::from_millis(300)).await, None);

    // The business API's send reaches online members too, and sync returns everything in order.
    let sent = cl
        .api
        .ok(
            "/message/send",
            serde_json::json!({
                "from_uid": "alice", "channel_id": "g1", "channel_type": 2,
                "payload": "eyJ0eXBlIjoxLCJjb250ZW50Ijoic3lzdGVtIn0=",
            }),
        )
        .await;
    assert_eq!(sent["message_seq"], 2);
    assert_eq!(text(&next_message(&mut bob).await), "system");
    let all = cl.api.sync_all("bob", "alice", 1).await;
    let seqs: Vec<u64> = all.iter().map(|m| m["message_seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(all[0]["channel_id"], "alice", "person channels are named from the viewer's side");
    // Pulling down from the newest message.
    let body = serde_json::json!({
        "login_uid": "bob", "channel_id": "alice", "channel_type": 1, "start_message_seq": 0, "limit": 1, "pull_mode": 0,
    });
    let newest = cl.api.ok("/channel/messagesync", body).await;
    assert_eq!((newest["messages"][0]["message_seq"].as_u64(), newest["more"].as_u64()), (Some(2), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_master_login_kicks_the_old_connection() {
    let cl = Topology::nodes(1).start().await;
    cl.api.user("dave", 0).await;
    let mut first = connect(&cl.tcp(), "dave", 0).await;
    let _second = connect(&cl.tcp(), "dave", 0).await;
    match first.recv_timeout(Duration::from_secs(5)).await {
        Some(Incoming::Disconnect { reason_code, .. }) => assert_eq!(reason_code, 12),
        other => panic!("expected a kick, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_checks_manager_token_and_reports_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let core = common::Proc::core_with_toml(dir.path(), "manager_token = \"s3cret\"");
    let mut api = common::Api::new(&core.addr("http"));
    let (status, body) = api.post("/user/token", serde_json::json!({"uid": "a", "token": "t"})).await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], 401);
    api.token = Some("s3cret".into());
    let (status, body) = api.post("/user/token", serde_json::json!({"uid": "a@b", "token": "t"})).await;
    assert_eq!(status, 400);
    assert!(body["msg"].as_str().unwrap().contains("uid"), "{body}");
    let (status, body) = api.post("/channel", serde_json::json!({"channel_type": 2})).await;
    assert_eq!(status, 400);
    assert!(body["msg"].as_str().unwrap().contains("channel_id"), "{body}");
    api.ok("/user/token", serde_json::json!({"uid": "a", "token": "t"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed_at_the_idle_limit_and_pings_keep_it_open() {
    let cl = Topology::nodes(1).edge("idle_timeout_ms = 1000").start().await;
    cl.api.user("erin", 0).await;
    cl.api.user("fred", 0).await;
    let pinger = connect(&cl.tcp(), "fred", 0).await;
    let mut idle = connect(&cl.tcp(), "erin", 0).await;
    let mut closed = None;
    for _ in 0..6 {
        pinger.ping().await.unwrap();
        if let Some(msg) = idle.recv_timeout(Duration::from_millis(500)).await {
            closed = Some(msg);
            break;
        }
    }
    match closed {
        Some(Incoming::Disconnect { reason, .. }) => assert!(reason.contains("idle"), "{reason}"),
        other => panic!("expected an idle DISCONNECT, got {other:?}"),
    }
    // Three seconds in, the pinging client is still served.
    assert_eq!(pinger.send_text("erin", 1, "still here").await.unwrap().reason_code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_edge_and_loses_no_acked_message() {
    let mut cl = Topology::nodes(1).edge("drain_timeout_ms = 5000").start().await;
    cl.api.user("gus", 0).await;
    cl.api.user("hal", 0).await;
    let gus = connect(&cl.tcp(), "gus", 0).await;
    let mut hal = {
        let o = tern_shared::client::ClientOptions::new(cl.ws(), "hal", "hal-tok");
        Client::connect(o).await.unwrap()
    };
    let ack = gus.send_text("hal", 1, "before the restart").await.unwrap();
    assert_eq!(ack.reason_code, 1);
    assert!(matches!(hal.recv_timeout(Duration::from_secs(5)).await, Some(Incoming::Message(_))));

    let started = std::time::Instant::now();
    let exited = tokio::task::block_in_place(|| cl.edge.terminate(Duration::from_secs(8)));
    assert!(exited, "the edge must exit cleanly within its drain deadline");
    assert!(started.elapsed() < Duration::from_secs(5), "draining idle sessions should be quick");
    // Clients saw their connections close (and would reconnect elsewhere).
    let closed = tokio::time::timeout(Duration::from_secs(2), hal.recv()).await;
    assert_eq!(closed, Ok(None), "the session must have been closed, not left idle");
    // Nothing acked was lost: it is all in the core.
    assert_eq!(cl.api.sync_all("hal", "gus", 1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_answer_is_capped_in_bytes_and_pages_on() {
    use base64::Engine;
    let cl = Topology::nodes(1).start().await;
    let big = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 1 << 20]);
    for n in 0..6 {
        let body = serde_json::json!({
            "from_uid": "alice", "channel_id": "bob", "channel_type": 1, "payload": big, "client_msg_no": format!("big-{n}"),
        });
        cl.api.ok("/message/send", body).await;
    }
    let page = cl
        .api
        .ok(
            "/channel/messagesync",
            serde_json::json!({"login_uid": "bob", "channel_id": "alice", "channel_type": 1, "start_message_seq": 1, "limit": 100, "pull_mode": 1}),
        )
        .await;
    let got = page["messages"].as_array().map(Vec::len).unwrap_or(0);
    assert!(
        (1..6).contains(&got) && page["more"] == 1,
        "one answer of at most 4 MiB: {got} messages, more {}",
        page["more"]
    );
    let all = cl.api.sync_all("bob", "alice", 1).await;
    let nos: Vec<String> = common::numbered(&all).into_iter().map(|(no, _)| no).collect();
    assert_eq!(nos, (0..6).map(|n| format!("big-{n}")).collect::<Vec<_>>());
}

/// A RECV stays in flight until its RECVACK: written again after `recv_resend_ms`, and a client that
/// never acks is closed after `recv_resends` resends (it then resyncs by seq); one that acks gets each
/// message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_recvs_are_sent_again_and_a_client_that_never_acks_is_closed() {
    let cl = Topology::nodes(1).edge("recv_resend_ms = 300\nrecv_resends = 2\n").start().await;
    for uid in ["alice", "bob", "carol"] {
        cl.api.user(uid, 0).await;
    }
    let alice = connect(&cl.tcp(), "alice", 0).await;
    let mut o = tern_shared::client::ClientOptions::new(cl.tcp(), "bob", "bob-tok");
    o.ack_recvs = false;
    let mut bob = Client::connect(o).await.unwrap();
    let mut carol = connect(&cl.tcp(), "carol", 0).await;
    let sent = alice.send_text("bob", 1, "ack me").await.unwrap();
    assert_eq!(alice.send_text("carol", 1, "acked").await.unwrap().reason_code, 1);
    let mut copies = 0;
    let closed = loop {
        match bob.recv_timeout(Duration::from_secs(3)).await {
            Some(Incoming::Message(m)) => {
                assert_eq!(m.message_id, sent.message_id);
                copies += 1;
            }
            other => break other,
        }
    };
    assert_eq!(copies, 3, "the first write and two resends");
    assert!(!matches!(closed, Some(Incoming::Message(_))), "{closed:?}");
    assert_eq!(text(&next_message(&mut carol).await), "acked");
    assert_eq!(carol.recv_timeout(Duration::from_secs(1)).await, None, "an acked RECV came again");
    common::wait_metric(&cl.edge.addr("http"), "tern_edge_slow_clients_closed_total", Duration::from_secs(5), |n| {
        n >= 1.0
    })
    .await;
}

/// WuKongIM's lookups: by seqs, ids and client msg nos, one message, by client msg no, the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_found_by_seq_id_and_client_msg_no() {
    let cl = Topology::nodes(1).start().await;
    let api = &cl.api;
    let send = |no: &str| {
        serde_json::json!({"from_uid": "alice", "channel_id": "bob", "channel_type": 1, "client_msg_no": no,
            "payload": "eyJ0eXBlIjoxfQ=="})
    };
    let mut ids = Vec::new();
    for no in ["n1", "n2", "n3"] {
        ids.push(api.ok("/message/send", send(no)).await["message_id"].as_i64().unwrap());
    }
    let body = serde_json::json!({"login_uid": "bob", "channel_id": "alice", "channel_type": 1,
        "message_seqs": [3, 1, 9], "message_ids": [ids[1]], "client_msg_nos": ["n1", "zz"]});
    let found = api.ok("/messages", body).await;
    let nos: Vec<&str> =
        found["messages"].as_array().unwrap().iter().map(|m| m["client_msg_no"].as_str().unwrap()).collect();
    assert_eq!(nos, ["n3", "n1", "n2", "n1"]);
    // A message bob received names the channel by him, the party that did not send it.
    assert_eq!(found["messages"][0]["channel_id"], "bob");
    let one = api
        .ok(
            "/message",
            serde_json::json!({"login_uid": "alice", "channel_id": "bob", "channel_type": 1, "message_id": ids[2]}),
        )
        .await;
    assert_eq!((one["client_msg_no"].as_str(), one["message_seq"].as_u64()), (Some("n3"), Some(3)));
    let missing = api
        .ok(
            "/message",
            serde_json::json!({"login_uid": "alice", "channel_id": "bob", "channel_type": 1, "message_id": 1}),
        )
        .await;
    assert_eq!(missing, serde_json::json!({"status": 404}));
    let stored = tern_shared::channel::person_channel_id("alice", "bob");
    let by_no =
        api.ok_get(&format!("/message/byclientmsgno?channel_id={stored}&channel_type=1&client_msg_no=n2")).await;
    assert_eq!(by_no["message_id"].as_i64(), Some(ids[1]));
    let last = api.ok_get("/channel/last_message?login_uid=alice&channel_id=bob&channel_type=1").await;
    assert_eq!(last["message_seq"], 3);
    let (status, body) = api.post("/message", serde_json::json!({"channel_id": "bob", "channel_type": 1})).await;
    assert_eq!((status, body["msg"].as_str()), (400, Some("login_uid cannot be empty")));
}

/// `/message/sendbatch`: one message to each uid's person channel; the uids that failed, with why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_reaches_every_uid_and_names_those_it_could_not() {
    let cl = Topology::nodes(1).start().await;
    let body = serde_json::json!({"from_uid": "notice", "subscribers": ["bob", "carol", "bad@uid"],
        "payload": "eyJ0eXBlIjoxfQ=="});
    let answer = cl.api.ok("/message/sendbatch", body).await;
    assert_eq!(answer["fail_uids"], serde_json::json!(["bad@uid"]), "{answer}");
    assert_eq!(answer["reason"].as_array().map(Vec::len), Some(1));
    for uid in ["bob", "carol"] {
        let last =
            cl.api.ok_get(&format!("/channel/last_message?login_uid={uid}&channel_id=notice&channel_type=1")).await;
        assert_eq!((last["from_uid"].as_str(), last["message_seq"].as_u64()), (Some("notice"), Some(1)), "{uid}");
    }
    let (status, body) =
        cl.api.post("/message/sendbatch", serde_json::json!({"from_uid": "notice", "payload": "eA=="})).await;
    assert_eq!((status, body["msg"].as_str()), (400, Some("subscribers cannot be empty")));
}

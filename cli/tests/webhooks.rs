//! Webhooks from the durable outbox: `msg.notify` for every stored message and `msg.offline` for its
//! recipients without a session, signed, each POST naming its event ids; nothing lost while the
//! business server is down, across a leader's death.

mod common;

use common::hooks::{hook_toml, receiver, Hooks};
use common::{connect, free_ports, Topology};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One test at a time: a port `free_ports` hands out is free only until another test's process binds
/// an ephemeral one.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn send_body(from: &str, channel_id: &str, channel_type: u8, no: &str) -> serde_json::Value {
    serde_json::json!({
        "from_uid": from, "channel_id": channel_id, "channel_type": channel_type, "client_msg_no": no,
        "payload": "eyJ0eXBlIjoxLCJjb250ZW50IjoiaGkifQ==",
    })
}

/// Waits until `msg.notify` has carried every id in `want`.
async fn notified(hooks: &Hooks, want: &[u64], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let seen: std::collections::BTreeSet<u64> =
            hooks.lock().unwrap().iter().filter(|h| h.event == "msg.notify").flat_map(|h| h.ids.clone()).collect();
        let missing: Vec<_> = want.iter().filter(|id| !seen.contains(id)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{} of {} messages never notified: {missing:?}", missing.len(), want.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_recipients_are_those_without_a_session() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let port = free_ports(1)[0];
    let hooks = Hooks::default();
    let _server = receiver(port, hooks.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let core = common::Proc::core_with_toml(dir.path(), &hook_toml(port));
    let edge = common::start_edge(dir.path(), &core.addr("link"), "", 0);
    common::wait_edge_up(&edge).await;
    let api = common::Api::new(&core.addr("http"));
    for u in ["alice", "bob", "carol"] {
        api.user(u, 0).await;
    }
    api.group("g", &["alice", "bob", "carol"]).await;
    let _bob = connect(&edge.addr("tcp"), "bob", 0).await;
    common::wait_metric(&core.addr("http"), "tern_core_online_sessions", Duration::from_secs(10), |n| n == 1.0).await;
    let sent = api.ok("/message/send", send_body("alice", "g", 2, "m1")).await;
    let id = sent["message_id"].as_u64().unwrap();
    notified(&hooks, &[id], Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let offline = loop {
        if let Some(h) = hooks.lock().unwrap().iter().find(|h| h.event == "msg.offline").cloned() {
            break h;
        }
        assert!(Instant::now() < deadline, "no msg.offline");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // bob is online, alice sent it: only carol is offline.
    assert_eq!(offline.body["to_uids"], serde_json::json!(["carol"]), "{:?}", offline.body);
    assert_eq!((offline.ids.clone(), offline.body["message_id"].as_u64()), (vec![id], Some(id)));
    let notify = hooks.lock().unwrap().iter().find(|h| h.event == "msg.notify").cloned().unwrap();
    assert_eq!(notify.body[0]["client_msg_no"], "m1");
    assert_eq!(notify.body[0]["channel_id"], "g");

    // bob's session came, and goes: `uid-device_flag-online-session-on that device-in all`.
    drop(_bob);
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines: Vec<String> = hooks
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.event == "user.onlinestatus")
            .flat_map(|h| h.body.as_array().cloned().unwrap_or_default())
            .filter_map(|l| l.as_str().map(str::to_string))
            .collect();
        if lines.len() >= 2 {
            break lines;
        }
        assert!(Instant::now() < deadline, "user.onlinestatus: {lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split('-').collect()).collect();
    assert_eq!((fields[0][..3].to_vec(), fields[0][4], fields[0][5]), (vec!["bob", "0", "1"], "1", "1"), "{lines:?}");
    assert_eq!((fields[1][..3].to_vec(), fields[1][4], fields[1][5]), (vec!["bob", "0", "0"], "0", "0"), "{lines:?}");
    assert_eq!(fields[0][3], fields[1][3], "the same session: {lines:?}");

    // carol's edge dies (-9) with her session on it: once it has not come back for the grace, she is
    // recorded offline.
    let _carol = connect(&edge.addr("tcp"), "carol", 0).await;
    let carol_lines = |hooks: &Hooks| -> Vec<String> {
        let hooks = hooks.lock().unwrap();
        let lines = hooks
            .iter()
            .filter(|h| h.event == "user.onlinestatus")
            .flat_map(|h| h.body.as_array().cloned().unwrap_or_default());
        lines.filter_map(|l| l.as_str().map(str::to_string)).filter(|l| l.starts_with("carol-")).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while carol_lines(&hooks).is_empty() {
        assert!(Instant::now() < deadline, "carol's session never announced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut edge = edge;
    edge.kill9();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(25);
    let lines = loop {
        let lines = carol_lines(&hooks);
        if lines.len() >= 2 {
            break lines;
        }
        assert!(Instant::now() < deadline, "carol never recorded offline: {lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("offline recorded {:?} after the edge died", killed.elapsed());
    let fields: Vec<&str> = lines[1].split('-').collect();
    assert_eq!((fields[..3].to_vec(), fields[4], fields[5]), (vec!["carol", "0", "0"], "0", "0"), "{lines:?}");
}

/// The receiver is down for 30 s while messages are sent and the leader of their slot is killed:
/// once it is back, every message's events arrive, and no event id twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_out_a_receiver_down_for_30_s_and_a_leader_killed_meanwhile() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let port = free_ports(1)[0];
    let mut cl = Topology::nodes(3).core(&hook_toml(port)).start().await;
    let api = cl.api(0);
    for u in ["alice", "bob", "carol"] {
        api.user(u, 0).await;
    }
    api.group("g", &["alice", "bob", "carol"]).await;
    let down_at = Instant::now();
    let mut ids = Vec::new();
    for i in 0..20 {
        let (channel, t) = if i % 2 == 0 { ("g", 2) } else { ("bob", 1) };
        ids.push(
            api.ok("/message/send", send_body("alice", channel, t, &format!("a{i}"))).await["message_id"]
                .as_u64()
                .unwrap(),
        );
    }
    let slot = tern_shared::channel::slot_of("g", tern_shared::channel::DEFAULT_SLOTS);
    let leader = cl.leader_of(slot).await;
    cl.kill(leader);
    let survivor = cl.api((leader + 1) % 3);
    for i in 0..20 {
        let (channel, t) = if i % 2 == 0 { ("g", 2) } else { ("bob", 1) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let id = loop {
            let (status, body) = survivor.post("/message/send", send_body("alice", channel, t, &format!("b{i}"))).await;
            if status == 200 {
                break body["message_id"].as_u64().unwrap();
            }
            // No leader yet: the same client_msg_no again is safe.
            assert!(Instant::now() < deadline, "no send after the kill: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ids.push(id);
    }
    // The group's events wait in its slot's outbox, as its new leader counts them.
    let series = format!("tern_core_webhook_backlog{{slot=\"{slot}\"}}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let backlog = loop {
        let mut counts = Vec::new();
        for n in (0..3).filter(|n| *n != leader) {
            counts.push(common::metric(&format!("127.0.0.1:{}", cl.http_port(n)), &series).await.unwrap_or(0.0));
        }
        let most = counts.into_iter().fold(0.0, f64::max);
        if most >= 20.0 || Instant::now() > deadline {
            break most;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("40 messages sent with the receiver down; {backlog} events of the group's slot wait");
    assert!(backlog >= 20.0, "the group's 20 messages should wait in the outbox: {backlog}");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;

    let hooks = Hooks::default();
    let _server = receiver(port, hooks.clone()).await;
    let back = Instant::now();
    notified(&hooks, &ids, Duration::from_secs(30)).await;
    eprintln!("every message notified {:?} after the receiver came back", back.elapsed());
    // A moment for repeats, had there been any.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hooks = hooks.lock().unwrap().clone();
    for event in ["msg.notify", "msg.offline"] {
        let mut seen = BTreeMap::new();
        for id in hooks.iter().filter(|h| h.event == event).flat_map(|h| h.ids.clone()) {
            *seen.entry(id).or_insert(0) += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{event} ids delivered more than once: {twice:?}");
        // Nobody was online: every message is also offline for all its recipients.
        assert_eq!(
            seen.keys().copied().collect::<Vec<_>>(),
            {
                let mut s = ids.clone();
                s.sort();
                s
            },
            "{event}"
        );
    }
    let offline = hooks.iter().filter(|h| h.event == "msg.offline");
    for h in offline {
        let want =
            if h.body["channel_type"] == 2 { serde_json::json!(["bob", "carol"]) } else { serde_json::json!(["bob"]) };
        assert_eq!(h.body["to_uids"], want, "{:?}", h.body);
    }
}

/// Run by hand (`cargo test --release -p tern --test webhooks -- --ignored --nocapture backlog`): how fast
/// a node with the default `[webhook]` settings delivers a backlog of `TERN_HOOK_BACKLOG` (default
/// 8,000) messages over 64 person channels once the business server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn a_webhook_backlog_drains() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let n: usize = std::env::var("TERN_HOOK_BACKLOG").ok().and_then(|v| v.parse().ok()).unwrap_or(8_000);
    let port = free_ports(1)[0];
    let url = format!("[webhook]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{}\"\n", common::hooks::SECRET);
    let cl = Topology::nodes(1).core(&url).start().await;
    let bodies: Vec<serde_json::Value> =
        (0..n).map(|k| send_body("hooker", &format!("r{}", k % 64), 1, &format!("backlog-{k}"))).collect();
    let sent = Instant::now();
    for chunk in bodies.chunks(100) {
        futures_util::future::join_all(chunk.iter().map(|b| cl.api.ok("/message/send", b.clone()))).await;
    }
    eprintln!("{n} messages stored in {:?} with the business server down", sent.elapsed());
    let hooks = Hooks::default();
    let back = Instant::now();
    let _server = receiver(port, hooks.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let seen: std::collections::BTreeSet<u64> = hooks
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.event == "msg.notify")
            .flat_map(|h| h.body.as_array().cloned().unwrap_or_default())
            .filter_map(|m| m["message_id"].as_u64())
            .collect();
        if seen.len() >= n {
            break;
        }
        assert!(Instant::now() < deadline, "{} of {n} notified", seen.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = back.elapsed();
    let posts = hooks.lock().unwrap().len();
    eprintln!(
        "backlog of {n} delivered in {took:?} after the server came back: {:.0} messages/s, {posts} POSTs",
        n as f64 / took.as_secs_f64()
    );
}

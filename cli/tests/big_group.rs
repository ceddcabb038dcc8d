//! A 10,000-member group with 1,000 members online over two edges, some of them slow to ack: every
//! online member gets every message once and in order, the members without a session are the
//! `msg.offline` recipients, and members who come online afterwards see the right unread count and
//! read every message by sync.

mod common;

use common::hooks::{hook_toml, receiver, Hooks};
use common::{free_ports, start_edge, wait_edge_up, Api, Proc};
use futures_util::{stream, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tern_shared::client::{Client, ClientOptions, Incoming, Outgoing};

const MEMBERS: usize = 10_000;
const ONLINE: usize = 1_000;
/// Online members who wait this long before each RECVACK (every tenth).
const SLOW_ACK: Duration = Duration::from_secs(2);
/// Offline members who connect once the messages are sent.
const LATE: usize = 20;
const MESSAGES: u32 = 40;
const GROUP: &str = "big";

fn member(i: usize) -> String {
    format!("m{i}")
}

async fn online(addr: String, i: usize) -> Client {
    let uid = member(i);
    let mut o = ClientOptions::new(addr, uid.clone(), format!("{uid}-tok"));
    if i.is_multiple_of(10) {
        o.ack_delay = SLOW_ACK;
    }
    Client::connect(o).await.unwrap_or_else(|e| panic!("{uid}: {e}"))
}

/// Seqs of the group's messages as they arrived, until `count` distinct ones or `within`; and the
/// client, still connected (`msg.offline` is computed from who is online when it is sent).
async fn received(mut c: Client, count: usize, within: Duration) -> (Vec<u32>, Client) {
    let deadline = tokio::time::Instant::now() + within;
    let mut seqs = Vec::new();
    let mut distinct = BTreeSet::new();
    while distinct.len() < count {
        match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(Some(Incoming::Message(m))) if m.channel_id == GROUP => {
                distinct.insert(m.message_seq);
                seqs.push(m.message_seq);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    (seqs, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_10_000_with_1_000_online_over_two_edges() {
    let port = free_ports(1)[0];
    let hooks = Hooks::default();
    let _server = receiver(port, hooks.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let core = Proc::core_with_toml(dir.path(), &hook_toml(port));
    let edges: Vec<Proc> = ["edge-a", "edge-b"]
        .iter()
        .enumerate()
        .map(|(n, id)| start_edge(dir.path(), &core.addr("link"), &format!("edge_id = \"{id}\""), n as u32))
        .collect();
    for e in &edges {
        wait_edge_up(e).await;
    }
    let api = Api::new(&core.addr("http"));
    let with_tokens: Vec<usize> = (0..ONLINE + LATE).collect();
    stream::iter(with_tokens)
        .for_each_concurrent(16, |i| {
            let api = &api;
            async move { api.user(&member(i), 0).await }
        })
        .await;
    api.user("sender", 0).await;
    api.group(GROUP, &["sender"]).await;
    let uids: Vec<String> = (0..MEMBERS).map(member).collect();
    for chunk in uids.chunks(1_000) {
        api.ok(
            "/channel/subscriber_add",
            serde_json::json!({"channel_id": GROUP, "channel_type": 2, "subscribers": chunk}),
        )
        .await;
    }
    let addrs: Vec<String> = edges.iter().map(|e| e.addr("tcp")).collect();
    let clients: Vec<Client> =
        stream::iter(0..ONLINE).map(|i| online(addrs[i % 2].clone(), i)).buffered(32).collect().await;
    common::wait_metric(&core.addr("http"), "tern_core_online_sessions", Duration::from_secs(30), |n| {
        n == ONLINE as f64
    })
    .await;
    let receivers: Vec<_> =
        clients.into_iter().map(|c| tokio::spawn(received(c, MESSAGES as usize, Duration::from_secs(120)))).collect();

    let sender = common::connect(&addrs[0], "sender", 0).await;
    let started = Instant::now();
    let mut ids = Vec::new();
    for n in 0..MESSAGES {
        let msg = Outgoing {
            channel_id: GROUP.into(),
            channel_type: 2,
            client_msg_no: format!("big-{n}"),
            payload: format!("{{\"n\":{n}}}").into_bytes(),
            ..Default::default()
        };
        let ack = sender.send(msg).await.expect("sendack");
        assert_eq!((ack.reason_code, ack.message_seq), (1, n + 1));
        ids.push(ack.message_id as u64);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let want: Vec<u32> = (1..=MESSAGES).collect();
    let mut still_online = Vec::new();
    for (i, r) in receivers.into_iter().enumerate() {
        let (got, client) = r.await.expect("receiver");
        still_online.push(client);
        assert_eq!(got, want, "{} (slow to ack: {})", member(i), i.is_multiple_of(10));
    }
    eprintln!(
        "{} deliveries to {ONLINE} members over two edges in {:?}",
        ONLINE * MESSAGES as usize,
        started.elapsed()
    );

    // msg.offline: per message, every member without a session (the sender aside).
    let offline: BTreeSet<String> = (ONLINE..MEMBERS).map(member).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let by_message = loop {
        let mut by_message: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for h in hooks.lock().unwrap().iter().filter(|h| h.event == "msg.offline") {
            let to = h.body["to_uids"].as_array().cloned().unwrap_or_default();
            let id = h.body["message_id"].as_u64().unwrap_or(0);
            by_message.entry(id).or_default().extend(to.iter().filter_map(|u| u.as_str().map(str::to_string)));
        }
        if ids.iter().all(|id| by_message.get(id).is_some_and(|to| to.len() >= offline.len())) {
            break by_message;
        }
        assert!(Instant::now() < deadline, "msg.offline for {} of {MESSAGES} messages", by_message.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for id in &ids {
        let extra: Vec<&String> = by_message[id].difference(&offline).take(5).collect();
        let missing: Vec<&String> = offline.difference(&by_message[id]).take(5).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "msg.offline of message {id}: extra {extra:?}, missing {missing:?}"
        );
    }

    drop(still_online);

    // Members who come online now: everything unread, everything readable.
    for i in ONLINE..ONLINE + LATE {
        let uid = member(i);
        let _session = online(addrs[i % 2].clone(), i).await;
        let conversations =
            api.ok("/conversation/sync", serde_json::json!({"uid": uid, "version": 0, "msg_count": 1})).await;
        let group = conversations.as_array().and_then(|l| l.iter().find(|c| c["channel_id"] == GROUP)).cloned();
        let group = group.unwrap_or_else(|| panic!("{uid} has no conversation with the group: {conversations}"));
        assert_eq!(group["unread"], MESSAGES, "{uid}: {group}");
        let seqs: Vec<u64> =
            api.sync_all(&uid, GROUP, 2).await.iter().filter_map(|m| m["message_seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=u64::from(MESSAGES)).collect::<Vec<_>>(), "{uid}");
    }
}

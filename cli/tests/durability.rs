//! Acked messages survive `kill -9` of the core: after a restart on the same data dir every acked
//! message is returned by sync exactly once, in seq order, and a resent client msg no is not stored twice.

mod common;

use common::{connect, Topology};
use std::collections::HashMap;
use tern_shared::client::{Client, Outgoing};

/// (client_msg_no, channel) -> (message_id, seq) of every send answered with success.
type Acked = HashMap<String, (i64, u64)>;

fn outgoing(channel: &str, channel_type: u8, no: &str) -> Outgoing {
    Outgoing {
        channel_id: channel.into(),
        channel_type,
        client_msg_no: no.into(),
        payload: format!("{{\"type\":1,\"content\":\"{no}\"}}").into_bytes(),
        ..Default::default()
    }
}

async fn send_burst(
    alice: &Client,
    prefix: &str,
    count: usize,
) -> Vec<(String, tokio::sync::oneshot::Receiver<tern_shared::proto::Sendack>)> {
    let mut waits = Vec::new();
    for i in 0..count {
        let (channel, kind) = if i % 3 == 2 { ("g", 2) } else { ("bob", 1) };
        let no = format!("{prefix}-{kind}-{i}");
        waits.push((no.clone(), alice.send_nowait(outgoing(channel, kind, &no)).await.expect("send")));
    }
    waits
}

async fn collect(waits: Vec<(String, tokio::sync::oneshot::Receiver<tern_shared::proto::Sendack>)>, acked: &mut Acked) {
    for (no, w) in waits {
        if let Ok(Ok(ack)) = tokio::time::timeout(std::time::Duration::from_secs(10), w).await {
            if ack.reason_code == 1 {
                acked.insert(no, (ack.message_id, u64::from(ack.message_seq)));
            }
        }
    }
}

/// Checks one channel: seqs 1..=n with no gap or repeat, each client msg no once, every acked one there.
fn check_channel(msgs: &[serde_json::Value], acked: &Acked, kind_tag: &str) -> usize {
    let mut seen = HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m["message_seq"].as_u64(), Some(i as u64 + 1), "seqs must be contiguous and ordered");
        let no = m["client_msg_no"].as_str().unwrap().to_string();
        assert!(
            seen.insert(no.clone(), (m["message_id"].as_i64().unwrap(), i as u64 + 1)).is_none(),
            "{no} stored twice"
        );
    }
    let mut n = 0;
    for (no, ids) in acked.iter().filter(|(no, _)| no.contains(kind_tag)) {
        assert_eq!(seen.get(no), Some(ids), "acked message {no} lost or changed");
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_kill_9_and_resends_are_deduplicated() {
    let mut cl = Topology::nodes(1).start().await;
    cl.api.user("alice", 0).await;
    cl.api.user("bob", 0).await;
    cl.api.group("g", &["alice", "bob"]).await;
    let alice = connect(&cl.tcp(), "alice", 0).await;

    let mut acked = Acked::new();
    let first = send_burst(&alice, "a", 600).await;
    collect(first, &mut acked).await;
    assert_eq!(acked.len(), 600, "every send before the crash is acked");

    // A second burst is still in flight when the core dies: some of it is acked, some not.
    let second = send_burst(&alice, "b", 600).await;
    cl.kill(0);
    // With no core left, SENDs lost in flight are answered (as failed) within seconds, not one by one.
    let answered = std::time::Instant::now();
    collect(second, &mut acked).await;
    assert!(answered.elapsed() < std::time::Duration::from_secs(15), "{:?}", answered.elapsed());
    let acked_total = acked.len();
    eprintln!("acked before the crash: 600, acked in the burst cut by the crash: {}", acked_total - 600);

    cl.start_again(0, 1).await;
    let person = cl.api.sync_all("alice", "bob", 1).await;
    let group = cl.api.sync_all("alice", "g", 2).await;
    let found = check_channel(&person, &acked, "-1-") + check_channel(&group, &acked, "-2-");
    assert_eq!(found, acked_total);

    // Resending an acked message (same client msg no) answers with the original id and seq, stores nothing.
    let (id, seq) = acked["a-1-0"];
    let alice = connect(&cl.tcp(), "alice", 0).await;
    let ack = alice.send(outgoing("bob", 1, "a-1-0")).await.unwrap();
    assert_eq!((ack.reason_code, ack.message_id, u64::from(ack.message_seq)), (1, id, seq));
    assert_eq!(cl.api.sync_all("alice", "bob", 1).await.len(), person.len());

    // New messages continue the sequence after the restart.
    let ack = alice.send(outgoing("bob", 1, "after-restart")).await.unwrap();
    assert_eq!(u64::from(ack.message_seq), person.len() as u64 + 1);
}

//! Nodes of adjacent releases work together. Edges and core nodes: a core node that speaks only the
//! previous link version (6) and an edge of this release (7), and the other way round; the link speaks
//! the older version, and only at version 7 does the edge report its round trip. Core nodes: one that
//! speaks only raft port version 1 (the release before greetings) among two of this release.

mod common;

use common::{connect, start_edge, wait_edge_up, Api, Cluster, Proc, Topology};
use std::io::Write;
use std::time::{Duration, Instant};
use tern_shared::client::Incoming;

/// The core's view of `edge-v`: its reported link round trip, once there is one.
async fn rtt(api: &Api) -> Option<f64> {
    let overview = api.ok_get("/console/api/overview").await;
    overview["edges"].as_array()?.iter().find(|e| e["id"] == "edge-v")?["rtt_ms"].as_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adjacent_link_versions_work_together() {
    for (core_max, edge_offer) in [(6, 7), (7, 6), (7, 7)] {
        let dir = tempfile::tempdir().unwrap();
        let core = Proc::core_with_toml(dir.path(), &format!("max_link_version = {core_max}\n"));
        let edge = start_edge(
            dir.path(),
            &core.addr("link"),
            &format!("edge_id = \"edge-v\"\nlink_version = {edge_offer}\n"),
            0,
        );
        wait_edge_up(&edge).await;
        let api = Api::new(&core.addr("http"));
        api.user("alice", 0).await;
        api.user("bob", 0).await;
        let alice = connect(&edge.addr("tcp"), "alice", 0).await;
        let mut bob = connect(&edge.addr("tcp"), "bob", 0).await;
        let ack = alice.send_text("bob", 1, "across versions").await.expect("sendack");
        assert_eq!(ack.reason_code, 1, "core {core_max}, edge {edge_offer}");
        match bob.recv_timeout(Duration::from_secs(5)).await {
            Some(Incoming::Message(m)) => assert_eq!(m.message_seq, ack.message_seq),
            other => panic!("core {core_max}, edge {edge_offer}: bob got {other:?}"),
        }
        // Pings go every second: three seconds show whether round trips are reported.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut reported = None;
        while reported.is_none() && Instant::now() < deadline {
            reported = rtt(&api).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let version = core_max.min(edge_offer);
        assert_eq!(reported.is_some(), version >= 7, "core {core_max}, edge {edge_offer}: round trip {reported:?}");
    }
}

/// Each node's raft port version as node `i` sees it, by node id.
async fn raft_versions(cl: &Cluster, i: usize) -> Vec<(u64, Option<u64>)> {
    let view = cl.api(i).ok_get("/cluster").await;
    let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
    nodes.iter().map(|n| (n["id"].as_u64().unwrap_or(0), n["raft_version"].as_u64())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adjacent_raft_port_versions_work_together() {
    let cl = Topology::nodes(3).node(2, "max_raft_version = 1").start().await;
    // Writes forwarded both ways between the versions, and leadership moved to the old node and back
    // (votes, appends, a transfer's steps).
    for (leader, via) in [(3, 0), (1, 2)] {
        cl.api(0).ok("/cluster/leader/transfer", serde_json::json!({"node_id": leader})).await;
        for slot in 0..8 {
            assert_eq!(cl.leader_of(slot).await, leader as usize - 1, "slot {slot}");
        }
        for k in 0..20 {
            cl.api(via).user(&format!("u{leader}-{k}"), 0).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = raft_versions(&cl, 0).await;
        if seen == [(1, Some(2)), (2, Some(2)), (3, Some(1))] {
            break;
        }
        assert!(Instant::now() < deadline, "node 1 sees raft port versions {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A frame of a newer release: group 0, request variant 99. The node says so and goes on.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", cl.raft_port(0))).expect("raft port");
    let body = [0u8, 0, 99, 0, 0, 0];
    raw.write_all(&(body.len() as u32).to_be_bytes()).and_then(|_| raw.write_all(&body)).expect("frame");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(cl.dir.path().join("node1-0.log")).unwrap_or_default();
        if log.contains("raft frame not understood") && log.contains("is the peer a newer release") {
            break;
        }
        assert!(Instant::now() < deadline, "no clear line for an unknown raft frame");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cl.api(0).user("after-the-frame", 0).await;
    cl.every_group_led().await;
}

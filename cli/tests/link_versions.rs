//! Edges and core nodes of adjacent releases link and work together: a core node that speaks only the
//! previous link version (6) and an edge of this release (7), and the other way round. The link speaks
//! the older version; only at version 7 does the edge report its round trip.

mod common;

use common::{connect, start_edge, wait_edge_up, Api, Proc};
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

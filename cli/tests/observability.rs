//! Metrics and health endpoints: every metric the Grafana dashboard charts is exported by a live edge or
//! core, and health reflects the core link.

mod common;

use common::{connect, Topology};
use std::collections::BTreeSet;

fn dashboard_metrics() -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/tern.json");
    let text = std::fs::read_to_string(path).expect("dashboard json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid json");
    let mut names = BTreeSet::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().unwrap_or_default();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("tern_") {
                    let base = ["_bucket", "_sum", "_count"].iter().fold(word, |w, s| w.strip_suffix(s).unwrap_or(w));
                    names.insert(base.to_string());
                }
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_metrics_exist_and_health_follows_the_core() {
    // The access layer on, so its series are exported too.
    let mut cl = Topology::nodes(1).edge("[http_proxy]\naddr = \"127.0.0.1:0\"").start().await;
    cl.api.user("alice", 0).await;
    let alice = connect(&cl.tcp(), "alice", 0).await;
    assert_eq!(alice.send_text("alice", 1, "note to self").await.unwrap().reason_code, 1);

    let edge = reqwest::get(format!("http://{}/metrics", cl.edge.addr("http"))).await.unwrap().text().await.unwrap();
    let core = reqwest::get(format!("http://{}/metrics", cl.node(0).addr("http"))).await.unwrap().text().await.unwrap();
    let wanted = dashboard_metrics();
    assert!(wanted.len() >= 15, "{wanted:?}");
    for name in &wanted {
        assert!(edge.contains(name.as_str()) || core.contains(name.as_str()), "{name} is charted but not exported");
    }
    assert!(edge.contains("tern_edge_sessions 1"), "{edge}");
    assert!(core.contains("tern_core_messages_stored_total 1"), "{core}");

    let health = format!("http://{}/healthz", cl.edge.addr("http"));
    let h: serde_json::Value = reqwest::get(&health).await.unwrap().json().await.unwrap();
    assert_eq!((h["status"].as_str(), h["sessions"].as_u64()), (Some("ok"), Some(1)));
    assert!(h["rss_bytes"].as_u64().unwrap_or(0) > 0);
    // A client dropped closes its connection, and the edge counts the session gone.
    drop(alice);
    common::wait_metric(&cl.edge.addr("http"), "tern_edge_sessions", std::time::Duration::from_secs(5), |n| n == 0.0)
        .await;

    // Without a core the edge reports itself unhealthy and refuses new sessions with a reason.
    cl.kill(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reqwest::get(&health).await.unwrap().status() != 503 {
        assert!(std::time::Instant::now() < deadline, "edge still healthy without a core");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused =
        tern_shared::client::Client::connect(tern_shared::client::ClientOptions::new(cl.tcp(), "alice", "alice-tok"))
            .await;
    assert!(matches!(refused, Err(tern_shared::client::ClientError::Rejected(15))), "{:?}", refused.err());
}

//! The load tool against a real edge and core, at small sizes: each mode finishes within its bounds and
//! its JSON summary adds up.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Topology, BIN};
use std::process::Command;

fn bench(cl: &Cluster, args: &[&str]) -> serde_json::Value {
    let out_file = cl.dir.path().join(format!("{}.json", args[0]));
    let api = format!("http://{}", cl.node(0).addr("http"));
    let mut cmd = Command::new(BIN);
    cmd.arg("bench").args(args).args(["--api", &api, "--json", out_file.to_str().unwrap()]);
    let out = cmd.output().expect("run tern bench");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| metric | value |"), "no Markdown summary: {stdout}");
    serde_json::from_str(&std::fs::read_to_string(out_file).expect("json summary")).expect("valid json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_send_and_deliver_modes_report_consistent_summaries() {
    let cl = Topology::nodes(1).start().await;
    let tcp = cl.tcp();
    let health = format!("http://{}/healthz", cl.edge.addr("http"));

    let s = bench(
        &cl,
        &[
            "connect",
            "--addr",
            &tcp,
            "--sessions",
            "5000",
            "--rate",
            "5000",
            "--hold",
            "1",
            "--sources",
            "4",
            "--per-uid",
            "100",
            "--edge-health",
            &health,
        ],
    );
    assert_eq!(
        (s["opened"].as_u64(), s["failed"].as_u64(), s["still_open_at_end"].as_u64()),
        (Some(5000), Some(0), Some(5000)),
        "{s}"
    );
    assert_eq!(s["edge_sessions_after"].as_u64(), Some(5000), "{s}");
    assert!(s["edge_bytes_per_session"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
    // 5,000 sessions share links_per_node (2) × nodes (1) multiplexed links between the edge and the core.
    let core_metrics = format!("http://{}/metrics", cl.node(0).addr("http"));
    let metrics = reqwest::get(&core_metrics).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tern_core_edge_links 2\n"), "{metrics}");

    let s = bench(&cl, &["send", "--addr", &tcp, "--senders", "4", "--messages", "400", "--max-seconds", "60"]);
    assert_eq!((s["acked"].as_u64(), s["failed"].as_u64()), (Some(400), Some(0)), "{s}");
    // Sessions are pinned to lanes, so four senders use both links.
    for lane in ["0", "1"] {
        let n =
            common::metric(&cl.node(0).addr("http"), &format!("tern_core_edge_sends_total{{lane=\"{lane}\"}}")).await;
        assert!(n.unwrap_or(0.0) >= 50.0, "lane {lane} carried {n:?} of 400 sends");
    }
    assert!(s["p50_ms"].as_f64().unwrap_or(0.0) > 0.0, "{s}");

    let s = bench(&cl, &["deliver", "--addr", &tcp, "--receivers", "20", "--messages", "20", "--rate", "100"]);
    assert_eq!(s["delivered"].as_u64(), Some(400), "{s}");
    assert_eq!(
        (s["missing"].as_u64(), s["duplicates"].as_u64(), s["out_of_order"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_mode_holds_tls_ws_wss_and_quic_sessions() {
    let certs = tempfile::tempdir().unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (pem, key) = (certs.path().join("c.pem"), certs.path().join("c.key"));
    std::fs::write(&pem, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let toml = format!(
        "tls_addr = \"127.0.0.1:0\"\nwss_addr = \"127.0.0.1:0\"\nquic_addr = \"127.0.0.1:0\"\n[[certs]]\ncert = \"{}\"\nkey = \"{}\"\n",
        pem.display(),
        key.display()
    );
    let cl = Topology::nodes(1).edge(&toml).start().await;
    let health = format!("http://{}/healthz", cl.edge.addr("http"));
    for transport in ["tls", "ws", "wss", "quic"] {
        let addr = cl.edge.addr(transport);
        let s = bench(
            &cl,
            &[
                "connect",
                "--transport",
                transport,
                "--ca",
                pem.to_str().unwrap(),
                "--addr",
                &addr,
                "--sessions",
                "200",
                "--rate",
                "2000",
                "--hold",
                "1",
                "--edge-health",
                &health,
            ],
        );
        assert_eq!((s["opened"].as_u64(), s["failed"].as_u64()), (Some(200), Some(0)), "{transport}: {s}");
        // The previous transport's sessions may still be closing; this run's must all be open.
        assert!(s["edge_sessions_after"].as_u64() >= Some(200), "{transport}: sessions closed during the hold: {s}");
        // Once the load tool is gone every session has ended through its whole teardown (the core
        // told, the gauge back down), whichever way its transport failed.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let edge = common::metric(&cl.edge.addr("http"), "tern_edge_sessions").await;
            let core = common::metric(&cl.node(0).addr("http"), "tern_core_online_sessions").await;
            if (edge, core) == (Some(0.0), Some(0.0)) {
                break;
            }
            assert!(Instant::now() < deadline, "{transport}: sessions left on the edge {edge:?}, on the core {core:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let log = std::fs::read_to_string(cl.dir.path().join("edge-0.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
}

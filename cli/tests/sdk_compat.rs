//! The published WuKongIM JavaScript SDK (npm `wukongimjssdk` 1.0.4 under Node, `ws` as its WebSocket)
//! connects, sends, receives and acks through a real edge, and its conversation list, fed from
//! `/conversation/sync`, shows the right unread counts. The driver lives in compat/js; `.ci/run`
//! installs its packages with `npm ci`.

mod common;

use common::Topology;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wukongim_js_sdk_chats_through_the_edge() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/js");
    assert!(
        js.join("node_modules/wukongimjssdk").is_dir(),
        "the SDK is not installed: run `npm ci` in compat/js (.ci/run does this)"
    );
    let cl = Topology::nodes(1).start().await;
    // The SDK logs in as a web device (flag 1).
    cl.api.user("alice", 1).await;
    cl.api.user("bob", 1).await;
    cl.api.group("g1", &["alice", "bob"]).await;
    let mut child = tokio::process::Command::from({
        let mut c = Command::new("node");
        c.arg("sdk_compat.mjs")
            .current_dir(&js)
            .env("TERN_WS_ADDR", cl.ws())
            .env("TERN_API_ADDR", cl.node(0).addr("http"))
            .env("ALICE_UID", "alice")
            .env("ALICE_TOKEN", "alice-tok")
            .env("BOB_UID", "bob")
            .env("BOB_TOKEN", "bob-tok")
            .env("GROUP_ID", "g1");
        c
    });
    child.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), child.output())
        .await
        .expect("the SDK driver must finish within 90 s")
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SDK scenario failed\nstdout: {stdout}\nstderr: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(summary["ok"], true, "{summary}");
    // The SDK acked what it received: RECVACK frames went out from bob.
    assert!(summary["bob"]["framesOut"]["RECVACK"].as_u64().unwrap_or(0) >= 2, "{summary}");
}

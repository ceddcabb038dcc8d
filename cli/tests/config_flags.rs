//! Any setting can be given on the command line (`--set key=value`) or in the environment, over the file.

mod common;

use common::{Proc, BIN};

#[tokio::test]
async fn set_overrides_the_file_and_bad_values_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edge.toml");
    std::fs::write(&cfg, "tcp_addr = \"127.0.0.1:0\"\nws_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n")
        .unwrap();
    let cfg = cfg.to_str().unwrap();

    // A bad value given by flag is named.
    let out = std::process::Command::new(BIN).args(["edge", "--config", cfg, "--set", "max_frame=1"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`max_frame`"), "{err}");

    // Without --set flags, TERN_EDGE_SET holds them (`;` between).
    std::env::set_var("TERN_EDGE_SET", "http_proxy.addr=\"127.0.0.1:0\";core_addr=127.0.0.1:9;edge_id=\"from-env\"");
    let edge = Proc::spawn(&["edge", "--config", cfg], &dir.path().join("edge.log"));
    std::env::remove_var("TERN_EDGE_SET");
    assert!(edge.addr("proxy").starts_with("127.0.0.1:"), "{}", edge.ready);
    // No core listens at 127.0.0.1:9, so the edge is unhealthy, but it names itself as the env said.
    let health: serde_json::Value =
        reqwest::get(format!("http://{}/healthz", edge.addr("http"))).await.unwrap().json().await.unwrap();
    assert_eq!(health["edge_id"], "from-env", "{health}");
}

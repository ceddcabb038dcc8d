//! Deployments described in `deploy/regions/`: the shipped descriptions run as they are, and what
//! `tern deploy render` writes is what the binaries accept.

mod common;

use common::{connect, Api, Proc};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tern_shared::client::{Client, ClientOptions, Incoming};
use tern_shared::deployment::Deployment;
use tern_shared::pki::{Ca, Identity};

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/regions").join(name)
}

/// A CA in `dir` with a certificate for every voter and edge of `d`, named as the renderer expects.
fn certificates(d: &Deployment, dir: &Path) {
    let ca = Ca::init(dir, "regions test", 30).expect("CA");
    for (_, v) in d.voters() {
        ca.issue(&Identity::Node(v.id), &[], 30).expect("node certificate");
    }
    for (r, e) in d.edges() {
        ca.issue(&Identity::Edge { id: e.id.clone(), region: Some(r.id.clone()) }, &[], 30).expect("edge certificate");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_description_runs_as_is_and_a_message_crosses_regions() {
    let dir = shipped("local");
    let d = Deployment::load(&dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    certificates(&d, &certs);
    let (dir, certs) = (dir.to_str().unwrap(), certs.to_str().unwrap());
    let mut procs = Vec::new();
    for (_, v) in d.voters() {
        let (id, data) = (v.id.to_string(), tmp.path().join(format!("node-{}", v.id)));
        let args = ["core", "--deployment", dir, "--node-id", &id, "--cert-dir", certs, "--core-data-dir"];
        let log = tmp.path().join(format!("node-{id}.log"));
        procs.push(Proc::spawn(&[&args[..], &[data.to_str().unwrap()]].concat(), &log));
    }
    for (_, e) in d.edges() {
        let args = ["edge", "--deployment", dir, "--edge-id", &e.id, "--cert-dir", certs];
        procs.push(Proc::spawn(&args, &tmp.path().join(format!("{}.log", e.id))));
    }
    // Every node's API is where the description puts it; raft between them runs over mutual TLS.
    let apis: Vec<String> = d.voters().map(|(_, v)| format!("{}:{}", v.listen, d.ports.core_http)).collect();
    assert_eq!(procs[0].addr("http"), apis[0]);
    let api = Api::new(&apis[0]);
    let deadline = Instant::now() + Duration::from_secs(30);
    for addr in &apis {
        let url = format!("http://{addr}/health");
        while !matches!(reqwest::get(&url).await.map(|r| r.status().as_u16()), Ok(200)) {
            assert!(Instant::now() < deadline, "{url} never had a leader for every slot");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    api.user("alice", 0).await;
    api.user("bob", 0).await;

    // alice in eu-west, bob in ap-southeast, each on their region's edge at its described address.
    let edge_of = |region: &str| {
        let e = &d.region(region).unwrap().edges[0];
        format!("{}:{}", e.listen, d.ports.edge_tcp)
    };
    let alice = connect(&edge_of("eu-west"), "alice", 0).await;
    let mut bob = connect(&edge_of("ap-southeast"), "bob", 0).await;
    let ack = alice.send_text("bob", 1, "across regions").await.unwrap();
    assert_eq!(ack.reason_code, 1);
    match bob.recv_timeout(Duration::from_secs(10)).await {
        Some(Incoming::Message(m)) => assert_eq!(m.message_seq, ack.message_seq),
        other => panic!("bob got {other:?}"),
    }
    drop(procs);

    // The same description under `tern dev --regions` (same addresses, so after the processes above
    // are gone): the round trips are added between regions, and a region can be cut.
    let data = tmp.path().join("dev");
    let args = ["dev", "--regions", dir, "--data-dir", data.to_str().unwrap(), "--wan-admin", "127.0.0.1:0"];
    let dev = Proc::spawn(&args, &tmp.path().join("dev.log"));
    let admin = format!("http://{}/wan", dev.addr("wan_admin"));
    let edge = |id: &str| dev.ready["edges"][id].as_str().unwrap().to_string();
    let wan = || async { reqwest::get(&admin).await.unwrap().json::<serde_json::Value>().await.unwrap() };
    // Each voter dials the two others and each edge the two voters elsewhere: 12 paths, each relayed.
    assert_eq!(wan().await["paths"].as_array().unwrap().len(), 12);
    let tok = |uid: &str| ClientOptions::new(edge("eu-west-1"), uid, format!("{uid}-token"));
    let alice = Client::connect(tok("alice")).await.unwrap();
    let mut o = tok("bob");
    o.addr = edge("us-east-1");
    let mut bob = Client::connect(o).await.unwrap();
    let started = Instant::now();
    let ack = alice.send_text("bob", 1, "over the WAN").await.unwrap();
    let took = started.elapsed();
    assert_eq!(ack.reason_code, 1);
    // A commit needs a second voter, at least 80 ms away from eu-west.
    assert!(took >= Duration::from_millis(80), "acked after {took:?}");
    assert!(matches!(bob.recv_timeout(Duration::from_secs(10)).await, Some(Incoming::Message(_))));
    // The eu-west edge measures each link's round trip: about 80 ms to us-east's voter. Pings go
    // every second, so wait for one past the first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = reqwest::get(format!("http://{}/metrics", dev.ready["edge_http"]["eu-west-1"].as_str().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rtt_to_node_2: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with("tern_edge_core_link_rtt_seconds{") && l.contains("node=\"2\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(!rtt_to_node_2.is_empty(), "{metrics}");
    assert!(rtt_to_node_2.iter().all(|r| (0.078..0.5).contains(r)), "{rtt_to_node_2:?}");
    let carried: u64 =
        wan().await["paths"].as_array().unwrap().iter().map(|p| p["bytes_forward"].as_u64().unwrap()).sum();
    assert!(carried > 0);

    // ap-southeast partitioned off (its connections stay open, nothing passes, only timeouts notice):
    // eu-west and us-east still make a majority.
    let cut = reqwest::Client::new().post(format!("{admin}/partition/ap-southeast")).send().await.unwrap();
    assert_eq!(cut.json::<serde_json::Value>().await.unwrap()["paths"], 8);
    // A slot ap-southeast led is without a leader for its lease plus an election (about 6.5 s at these
    // round trips); a client sends again until acked, as the SDKs do.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acked = 0;
    while acked < 3 {
        assert!(Instant::now() < deadline, "{acked} of 3 messages acked with ap-southeast partitioned off");
        let sent = tokio::time::timeout(Duration::from_secs(5), alice.send_text("bob", 1, "partitioned")).await;
        if matches!(sent, Ok(Ok(ack)) if ack.reason_code == 1) {
            acked += 1;
        }
    }
}

#[test]
fn rendered_configs_are_what_the_binaries_accept() {
    let out = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_tern");
    for name in ["local", "example"] {
        let d = Deployment::load(&shipped(name)).unwrap();
        let rendered = out.path().join(name);
        let status = std::process::Command::new(bin)
            .args(["deploy", "render", shipped(name).to_str().unwrap(), "--out", rendered.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        for (_, v) in d.voters() {
            let path = rendered.join(format!("core/node-{}.toml", v.id));
            let text = std::fs::read_to_string(&path).unwrap();
            // Tokens come from the environment on the machine; validation wants them off loopback.
            let text = format!("manager_token = \"m\"\nadmin_token = \"a\"\n{text}");
            let c: tern_core::CoreConfig = tern_shared::config::parse(path.to_str().unwrap(), &text).unwrap();
            assert_eq!((c.node_id, c.peers.len()), (v.id, d.voters().count()));
            assert_eq!(c.raft.election_min_ms, d.raft_timings().election_min_ms);
            assert!(c.raft_tls.is_some() && c.link_tls.is_some());
        }
        for (r, e) in d.edges() {
            let path = rendered.join(format!("edge/{}.toml", e.id));
            let text = std::fs::read_to_string(&path).unwrap();
            let c: tern_edge::EdgeConfig = tern_shared::config::parse(path.to_str().unwrap(), &text).unwrap();
            assert_eq!((c.edge_id.as_str(), c.region.as_str()), (e.id.as_str(), r.id.as_str()));
            assert_eq!(c.core_addr.split(',').count(), d.voters().count());
            assert!(c.advertise.tcp.starts_with(e.host()), "{}", c.advertise.tcp);
        }
        let bootstrap: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(rendered.join("bootstrap.json")).unwrap()).unwrap();
        let eu = bootstrap["regions"].as_array().unwrap().iter().find(|r| r["id"] == "eu-west").unwrap();
        assert_eq!(eu["fallback"], serde_json::json!(["us-east", "ap-southeast"]));
    }
}

#[test]
fn the_terraform_example_describes_the_shipped_example_deployment() {
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["deploy", "render", shipped("example").to_str().unwrap(), "--out", out.path().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let read = |p: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let committed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/examples/three-regions/terraform.tfvars.json");
    assert_eq!(
        read(&committed),
        read(&out.path().join("terraform.tfvars.json")),
        "terraform/examples/three-regions/terraform.tfvars.json differs from deploy/regions/example: \
         run `tern deploy render deploy/regions/example --out rendered` and copy rendered/terraform.tfvars.json"
    );
}

//! Secure by default: a core or edge whose ports leave loopback refuses to start without mutual TLS and
//! tokens; in that configuration every port turns away a peer without credentials; the business token
//! cannot reach the operator API; the edge id is the link certificate's, and one live edge id is never
//! shared by two processes.

mod common;

use common::certs::{ca, mtls, Ca};
use common::{connect, never_up, start_edge, wait_edge_up, Api, Proc, Topology, BIN};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs `tern args`, which must exit with an error within a few seconds; returns what it printed.
fn refused(args: &[&str]) -> String {
    let mut child =
        Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn tern");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err).expect("stderr");
            assert!(!status.success(), "tern {args:?} started: {err}");
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tern {args:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn off_loopback_a_node_refuses_to_start_without_authentication() {
    let core = |extra: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut args = vec!["core", "--data-dir", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        refused(&args)
    };
    // Nothing is bound: each is refused while its settings are checked, naming the key to set.
    assert!(core(&["--http-addr", "0.0.0.0:5001"]).contains("`manager_token`"));
    assert!(core(&["--http-addr", "0.0.0.0:5001", "--manager-token", "b"]).contains("`admin_token`"));
    assert!(core(&["--link-addr", "0.0.0.0:5301"]).contains("`link_tls`"));
    assert!(core(&["--raft-addr", "0.0.0.0:5302"]).contains("`raft_tls`"));
    assert!(core(&["--peers", "1=127.0.0.1:5302,2=192.0.2.2:5302"]).contains("`raft_tls`"));
    let edge = refused(&["edge", "--core-addr", "192.0.2.1:5301", "--tcp-addr", "127.0.0.1:0"]);
    assert!(edge.contains("`link_tls`"), "{edge}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_must_be_said_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let _core = Proc::core_with_toml(dir.path(), "insecure = true");
    let text = std::fs::read_to_string(dir.path().join("core.log")).unwrap();
    assert!(text.contains("WARN") && text.contains("insecure = true: raft"), "{text}");
}

/// A core configured as it must be off loopback (tokens, mutual TLS on raft and links), on loopback
/// ports so the test stays on this machine.
fn secure_core(d: &Path, ca: &Ca) -> Proc {
    let node = ca.node(1);
    let toml = format!(
        "manager_token = \"biz\"\nadmin_token = \"adm\"\n{}{}",
        mtls("link_tls", &node, &ca.pem()),
        mtls("raft_tls", &node, &ca.pem())
    );
    Proc::core_with_toml(d, &toml)
}

/// A directory, the cluster CA made in it, and a secured core using it.
fn secured() -> (tempfile::TempDir, Ca, Proc) {
    let dir = tempfile::tempdir().unwrap();
    let cluster_ca = ca(dir.path(), "cluster-ca");
    let core = secure_core(dir.path(), &cluster_ca);
    (dir, cluster_ca, core)
}

fn api(core: &Proc, token: Option<&str>) -> Api {
    let mut a = Api::new(&core.addr("http"));
    a.token = token.map(String::from);
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_of_a_secured_core_refuses_a_peer_without_credentials() {
    let (dir, cluster_ca, core) = secured();
    let d = dir.path();
    let api = api(&core, None);

    // The API: nothing without a token; the business token does business but not membership.
    let token_req = serde_json::json!({"uid": "alice", "token": "alice-tok", "device_flag": 0});
    assert_eq!(api.post("/user/token", token_req.clone()).await.0, 401);
    let business = self::api(&core, Some("biz"));
    let admin = self::api(&core, Some("adm"));
    assert_eq!(self::api(&core, Some("bi")).post("/user/token", token_req.clone()).await.0, 401);
    business.ok("/user/token", token_req.clone()).await;
    business.user("bob", 0).await;
    let add = serde_json::json!({"id": 0, "raft_addr": "127.0.0.1:1"});
    let (status, body) = business.post("/cluster/nodes/add", add.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["msg"].as_str().unwrap_or_default().contains("admin token"), "{body}");
    // Past the token check, the admin's request is judged on its merits (node id 0 is invalid).
    assert_eq!(admin.post("/cluster/nodes/add", add).await.0, 400);
    assert_eq!(admin.post("/cluster/leader/balance", serde_json::json!({})).await.0, 200);
    admin.ok("/user/token", serde_json::json!({"uid": "carol", "token": "carol-tok"})).await;

    // The raft port: bytes in the clear get no answer.
    let raft = core.addr("raft");
    let mut plain = tokio::net::TcpStream::connect(&raft).await.unwrap();
    plain.write_all(&[0, 0, 0, 4, 4, 0, 0, 0]).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)) || buf[0] == 21, "a plain peer got an answer: {:?}", &buf[..8]);

    // An edge certificate from the cluster's own CA passes TLS but may not speak raft.
    let edge_cert = cluster_ca.edge("edge-1");
    let (connector, name) = cluster_ca.tls(&edge_cert).connector().unwrap();
    let tcp = tokio::net::TcpStream::connect(&raft).await.unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("the raft port's certificate is a node's");
    let _ = tls.write_all(&[0, 0, 0, 4, 4, 0, 0, 0]).await;
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "an edge got a raft answer");
    let log = std::fs::read_to_string(d.join("core.log")).unwrap();
    assert!(log.contains("raft peer refused"), "{log}");

    // The link port: no certificate, or a node's certificate, gets no link; the edge's own does.
    let link = core.addr("link");
    let plain_edge = start_edge(d, &link, "", 1);
    let node_as_edge = start_edge(d, &link, &mtls("link_tls", &cluster_ca.node(2), &cluster_ca.pem()), 2);
    for e in [&plain_edge, &node_as_edge] {
        never_up(e, Duration::from_millis(1500)).await;
    }
    let log = std::fs::read_to_string(d.join("core.log")).unwrap();
    assert!(log.contains("is not an edge"), "{log}");
    let edge = start_edge(d, &link, &mtls("link_tls", &edge_cert, &cluster_ca.pem()), 3);
    wait_edge_up(&edge).await;
    let alice = connect(&edge.addr("tcp"), "alice", 0).await;
    let mut bob = connect(&edge.addr("tcp"), "bob", 0).await;
    assert_eq!(alice.send_text("bob", 1, "through a secured core").await.unwrap().reason_code, 1);
    assert!(matches!(bob.recv_timeout(Duration::from_secs(5)).await, Some(tern_shared::client::Incoming::Message(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cannot_claim_another_edge_nor_take_a_live_edges_id() {
    let (dir, cluster_ca, core) = secured();
    let d = dir.path();
    let link = core.addr("link");
    let business = api(&core, Some("biz"));
    business.user("alice", 0).await;
    business.user("bob", 0).await;
    let (cert_a, cert_b) = (cluster_ca.edge("edge-a"), cluster_ca.edge("edge-b"));
    let edge_toml = |id: &str, cert| format!("edge_id = \"{id}\"\n{}", mtls("link_tls", cert, &cluster_ca.pem()));

    let edge_a = start_edge(d, &link, &edge_toml("edge-a", &cert_a), 0);
    let edge_b = start_edge(d, &link, &edge_toml("edge-b", &cert_b), 1);
    wait_edge_up(&edge_a).await;
    wait_edge_up(&edge_b).await;
    let mut alice = connect(&edge_a.addr("tcp"), "alice", 0).await;
    let bob = connect(&edge_b.addr("tcp"), "bob", 0).await;

    // Edge B's certificate cannot link as edge A, and a second process holding A's certificate cannot
    // take A's id while A's links live.
    let impostor = start_edge(d, &link, &edge_toml("edge-a", &cert_b), 2);
    let twin = start_edge(d, &link, &edge_toml("edge-a", &cert_a), 3);
    never_up(&impostor, Duration::from_millis(1500)).await;
    never_up(&twin, Duration::from_millis(500)).await;
    let log = std::fs::read_to_string(d.join("core.log")).unwrap();
    assert!(log.contains("the link claims to be edge `edge-a`"), "{log}");
    assert!(log.contains("edge `edge-a` is linked from another process"), "{log}");
    let twin_log = std::fs::read_to_string(d.join("edge-3.log")).unwrap();
    assert!(twin_log.contains("refused by the core"), "the refused edge is told why: {twin_log}");

    // Alice's session stayed where it is: messages to her still arrive on edge A.
    assert_eq!(bob.send_text("alice", 1, "still yours").await.unwrap().reason_code, 1);
    assert!(matches!(
        alice.recv_timeout(Duration::from_secs(5)).await,
        Some(tern_shared::client::Incoming::Message(_))
    ));

    // Once A is gone, the id is free for its successor.
    drop(alice);
    drop(edge_a);
    wait_edge_up(&twin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_left_with_the_default_id_do_not_share_it() {
    let cl = Topology::nodes(1).start().await;
    cl.api.user("alice", 0).await;
    cl.api.user("bob", 0).await;
    let mut alice = connect(&cl.tcp(), "alice", 0).await;
    let second = start_edge(cl.dir.path(), &cl.node(0).addr("link"), "", 1);
    never_up(&second, Duration::from_millis(1500)).await;
    let bob = connect(&cl.tcp(), "bob", 0).await;
    assert_eq!(bob.send_text("alice", 1, "not stolen").await.unwrap().reason_code, 1);
    assert!(matches!(
        alice.recv_timeout(Duration::from_secs(5)).await,
        Some(tern_shared::client::Incoming::Message(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_cannot_announce_a_user_who_never_logged_in_through_it() {
    use tern_shared::link::{LinkFrame, SessionInfo};
    use tern_shared::secret::{session_proof, user_token_hash};
    let (dir, cluster_ca, core) = secured();
    let d = dir.path();
    let business = api(&core, Some("biz"));
    for uid in ["alice", "bob", "carol"] {
        business.user(uid, 0).await;
    }
    let edge_a = start_edge(d, &core.addr("link"), &mtls("link_tls", &cluster_ca.edge("edge-1"), &cluster_ca.pem()), 0);
    wait_edge_up(&edge_a).await;
    let mut alice = connect(&edge_a.addr("tcp"), "alice", 0).await;
    let bob = connect(&edge_a.addr("tcp"), "bob", 0).await;

    // Edge B, with its own valid certificate, announces alice (whose token it never saw) and carol
    // (whose token it knows, as if carol had logged in through it).
    let tls = cluster_ca.tls(&cluster_ca.edge("edge-b"));
    let (connector, name) = tls.connector().unwrap();
    let tcp = tokio::net::TcpStream::connect(core.addr("link")).await.unwrap();
    let (mut reader, tx) = common::raw_link(connector.connect(name, tcp).await.expect("link tls"), "edge-b").await;
    tx.send(LinkFrame::PresenceSnapshot(Vec::new())).await.unwrap();
    let forged = SessionInfo {
        session: 1,
        uid: "alice".into(),
        device_flag: 0,
        device_level: 0,
        proof: [7; 32],
        ..Default::default()
    };
    let guessed = session_proof(&user_token_hash("alice", "wrong"), "edge-b", 1, 0);
    let carol_proof = session_proof(&user_token_hash("carol", "carol-tok"), "edge-b", 2, 0);
    tx.send(LinkFrame::SessionOpen(forged)).await.unwrap();
    let guess = SessionInfo {
        session: 3,
        uid: "alice".into(),
        device_flag: 0,
        device_level: 0,
        proof: guessed,
        ..Default::default()
    };
    tx.send(LinkFrame::SessionOpen(guess)).await.unwrap();
    let carol = SessionInfo {
        session: 2,
        uid: "carol".into(),
        device_flag: 0,
        device_level: 0,
        proof: carol_proof,
        ..Default::default()
    };
    tx.send(LinkFrame::SessionOpen(carol)).await.unwrap();
    // Frames of a link are handled in order: once carol is online, both alice announcements were judged.
    let deadline = Instant::now() + Duration::from_secs(10);
    while business.ok("/user/onlinestatus", serde_json::json!(["carol"])).await.as_array().is_none_or(Vec::is_empty) {
        assert!(Instant::now() < deadline, "carol never came online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(bob.send_text("alice", 1, "for alice only").await.unwrap().reason_code, 1);
    assert_eq!(bob.send_text("carol", 1, "for carol").await.unwrap().reason_code, 1);
    assert!(matches!(
        alice.recv_timeout(Duration::from_secs(5)).await,
        Some(tern_shared::client::Incoming::Message(_))
    ));
    // Edge B gets carol's message and nothing of alice's.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut delivered = Vec::new();
    while Instant::now() < deadline && delivered.is_empty() {
        match tokio::time::timeout(Duration::from_millis(200), reader.next()).await {
            Ok(Ok(Some(LinkFrame::Deliver(d)))) => delivered.extend(d.targets.iter().flat_map(|t| t.sessions.clone())),
            Ok(Ok(Some(_))) | Err(_) => {}
            Ok(other) => panic!("link ended: {other:?}"),
        }
    }
    assert_eq!(delivered, vec![2], "only carol's session, announced with a proof, gets a delivery");
    let log = std::fs::read_to_string(d.join("core.log")).unwrap();
    assert_eq!(log.matches("session announced without a valid proof").count(), 2, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_crowding_client_of_the_core_api_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let core = Proc::core_with_toml(dir.path(), "[http]\nheader_timeout_ms = 1000\nmax_connections = 4");
    let http = core.addr("http");
    let closed_within = |mut s: tokio::net::TcpStream, limit: Duration| async move {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(limit, s.read(&mut buf)).await;
        matches!(read, Ok(Ok(0)) | Ok(Err(_)))
    };

    // A head trickled a line every 300 ms is cut off once its second is up.
    let started = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(&http).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: core\r\n").await.unwrap();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(5) {
        if slow.write_all(b"X-Trickle: 1\r\n").await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(300), slow.read(&mut buf)).await {
            cut = true;
            break;
        }
    }
    assert!(cut && started.elapsed() < Duration::from_secs(3), "a trickling head lasted {:?}", started.elapsed());

    // Four connections fill the core's room; a fifth is closed at once.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(&http).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fifth = tokio::net::TcpStream::connect(&http).await.unwrap();
    assert!(closed_within(fifth, Duration::from_millis(500)).await, "a fifth connection was kept");
    // The idle ones send no head and are cut off in turn; then the API answers again.
    for s in idle {
        assert!(closed_within(s, Duration::from_secs(3)).await, "an idle connection was kept");
    }
    assert_eq!(reqwest::get(format!("http://{http}/health")).await.unwrap().status(), 200);
}

/// Runs `tern args` to completion; its stdout.
fn tern_ok(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run tern");
    assert!(out.status.success(), "tern {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tern_certs_makes_what_a_core_and_an_edge_need() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = d.join("certs");
    let certs = certs.to_str().unwrap();
    tern_ok(&["certs", "init", "--dir", certs]);
    assert!(Command::new(BIN).args(["certs", "init", "--dir", certs]).output().unwrap().status.code() != Some(0));
    // What `issue` prints goes into the configs as it is.
    let node = tern_ok(&["certs", "issue", "--dir", certs, "--node", "1", "--name", "127.0.0.1"]);
    let edge = tern_ok(&["certs", "issue", "--dir", certs, "--edge", "edge-eu-1", "--region", "eu-west"]);
    assert!(node.contains("[raft_tls]") && node.contains("[link_tls]") && edge.contains("[link_tls]"), "{node}{edge}");
    let core_toml = format!("manager_token = \"biz\"\nadmin_token = \"adm\"\n{node}");
    let core = Proc::core_with_toml(d, &core_toml);
    let edge = start_edge(d, &core.addr("link"), &format!("edge_id = \"edge-eu-1\"\nregion = \"eu-west\"\n{edge}"), 0);
    wait_edge_up(&edge).await;
    let health: serde_json::Value =
        reqwest::get(format!("http://{}/healthz", edge.addr("http"))).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_token_changed_while_its_link_was_down_is_kicked() {
    let mut cl = Topology::nodes(1).start().await;
    cl.api.user("alice", 0).await;
    cl.api.user("bob", 0).await;
    let mut alice = connect(&cl.tcp(), "alice", 0).await;
    let bob = connect(&cl.tcp(), "bob", 0).await;
    cl.kill(0);
    // While the edge cannot link (the core is down), a business server changes alice's token: here
    // through the same data dir served on ports the edge does not know.
    let hidden = cl.start_hidden(0, 1);
    Api::new(&hidden.addr("http")).ok("/user/token", serde_json::json!({"uid": "alice", "token": "new"})).await;
    drop(hidden);
    cl.start_again(0, 2).await;
    match alice.recv_timeout(Duration::from_secs(10)).await {
        Some(tern_shared::client::Incoming::Disconnect { reason_code, reason }) => {
            assert_eq!(reason_code, 2, "{reason}")
        }
        other => panic!("alice expected to be told to log in again, got {other:?}"),
    }
    assert_eq!(bob.send_text("bob", 1, "bob's token did not change").await.unwrap().reason_code, 1);
}

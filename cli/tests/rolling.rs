//! Rolling restarts: three core nodes and two edges under steady client sends (to a group and to person
//! channels) and business API calls through the edges' access layer. Every core node is stopped the
//! way a service manager stops it (SIGTERM) and started again, in turn, then every edge; each starts
//! as the previous release's link and raft port versions and comes back as this one's, as in an upgrade. No API call may
//! fail, every SEND is acked (after retryable refusals at most), no acked message is lost, stored twice
//! or reordered, and presence is complete afterwards.

mod common;

use base64::Engine;
use common::{free_ports, Proc, Topology};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tern_shared::client::{Client, ClientOptions, Outgoing};
use tern_shared::proto::Reason;

const SENDERS: usize = 4;
const GROUP: &str = "rolling";
/// Each sender sends one message, waits for its ack, then pauses this long.
const PAUSE: Duration = Duration::from_millis(30);
/// Business callers (each its own loop of API calls).
const CALLERS: usize = 2;

/// SENDACK reasons that mean "not now, send again".
fn retryable(code: u8) -> bool {
    [Reason::SystemError, Reason::ForwardError, Reason::NodeMatchError, Reason::NodeNotMatch, Reason::RateLimit]
        .iter()
        .any(|r| r.code() == code)
}

/// An edge on fixed ports (it comes back where its clients and callers knew it): client TCP, admin
/// HTTP, access layer.
struct Edge {
    id: &'static str,
    ports: [u16; 3],
    proc: Option<Proc>,
}

impl Edge {
    fn tcp(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }

    fn proxy(&self) -> String {
        format!("127.0.0.1:{}", self.ports[2])
    }

    /// `extra`: top-level settings (e.g. the link version of an older release).
    fn start(&mut self, dir: &Path, links: &str, apis: &[String], generation: u32, extra: &str) {
        let apis: Vec<String> = apis.iter().map(|a| format!("\"{a}\"")).collect();
        let [tcp, http, proxy] = self.ports;
        let toml = format!(
            "{extra}edge_id = \"{}\"\ntcp_addr = \"127.0.0.1:{tcp}\"\nws_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:{http}\"\n\
             core_addr = \"{links}\"\n[http_proxy]\naddr = \"127.0.0.1:{proxy}\"\n[[http_proxy.upstreams]]\n\
             name = \"core\"\nprefix = \"/\"\naddrs = [{}]\nhealth_path = \"/health\"\n",
            self.id,
            apis.join(", ")
        );
        let cfg = dir.join(format!("{}.toml", self.id));
        std::fs::write(&cfg, toml).expect("edge config");
        let log = dir.join(format!("{}-{generation}.log", self.id));
        self.proc = Some(Proc::spawn(&["edge", "--config", cfg.to_str().unwrap_or_default()], &log));
    }
}

#[derive(Default, Debug)]
struct Sent {
    /// (channel id as the sender names it, channel type, client msg no), in ack order.
    acked: Vec<(String, u8, String)>,
    /// When each acked message was first sent, and how long until its ack (resends included).
    latency: Vec<(Instant, Duration)>,
    /// Reason codes of SENDACKs that asked for a resend.
    refusals: Vec<u8>,
    reconnects: u32,
}

/// Connects `uid` to the first edge of `edges` (from `*at` on) that takes the login.
async fn connect_any(uid: &str, edges: &[String], at: &mut usize) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut o = ClientOptions::new(&edges[*at % edges.len()], uid, format!("{uid}-tok"));
        o.timeout = Duration::from_secs(5);
        if let Ok(c) = Client::connect(o).await {
            return c;
        }
        *at += 1;
        assert!(Instant::now() < deadline, "{uid} found no edge to connect to");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends to the group and to the next sender by turns until `stop`, each message until it is acked.
async fn sender(k: usize, edges: Vec<String>, stop: Arc<AtomicBool>) -> (Sent, Client) {
    let uid = format!("s{k}");
    let mut at = k;
    let mut client = connect_any(&uid, &edges, &mut at).await;
    let mut sent = Sent::default();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let (channel_id, channel_type) =
            if i % 2 == 0 { (GROUP.to_string(), 2) } else { (format!("s{}", (k + 1) % SENDERS), 1) };
        let no = format!("s{k}-{i}");
        let first = Instant::now();
        let deadline = first + Duration::from_secs(30);
        loop {
            let msg = Outgoing {
                channel_id: channel_id.clone(),
                channel_type,
                client_msg_no: no.clone(),
                payload: b"{}".to_vec(),
                ..Default::default()
            };
            match client.send(msg).await {
                Ok(a) if a.reason_code == Reason::Success.code() => break,
                Ok(a) => {
                    assert!(retryable(a.reason_code), "{no} refused with reason {}", a.reason_code);
                    sent.refusals.push(a.reason_code);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // The edge went away (or the ack did not come): another edge, the same message.
                Err(_) => {
                    sent.reconnects += 1;
                    client = connect_any(&uid, &edges, &mut at).await;
                }
            }
            assert!(Instant::now() < deadline, "{no} never acked");
        }
        sent.latency.push((first, first.elapsed()));
        sent.acked.push((channel_id, channel_type, no));
        i += 1;
        // Deliveries are not checked here: read them so the inbox never fills.
        while client.recv_timeout(Duration::ZERO).await.is_some() {}
        tokio::time::sleep(PAUSE).await;
    }
    (sent, client)
}

#[derive(Default, Debug)]
struct Calls {
    made: u32,
    failed: Vec<String>,
    /// client msg nos of messages sent through the API.
    sent: Vec<String>,
}

/// Which edges answer `/healthz` with 200, as a balancer in front of them sees it: probed every 200 ms.
async fn probe_edges(admin: Vec<String>, healthy: Arc<Mutex<Vec<bool>>>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().expect("client");
    while !stop.load(Ordering::Relaxed) {
        for (i, a) in admin.iter().enumerate() {
            let up = http.get(format!("http://{a}/healthz")).send().await.is_ok_and(|r| r.status().is_success());
            healthy.lock().unwrap()[i] = up;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A business server behind a balancer: token updates, group changes and sends through the edges'
/// access layer, the healthy edges by turns (a draining edge fails its `/healthz` before it stops);
/// one that refuses the connection is passed over.
async fn caller(c: usize, proxies: Vec<String>, healthy: Arc<Mutex<Vec<bool>>>, stop: Arc<AtomicBool>) -> Calls {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let mut calls = Calls::default();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let uid = format!("api{c}-{}", i % 5);
        let (path, body) = match i % 3 {
            0 => ("/user/token", serde_json::json!({"uid": uid, "token": "t", "device_flag": 0, "device_level": 1})),
            1 => (
                "/channel/subscriber_add",
                serde_json::json!({"channel_id": GROUP, "channel_type": 2, "subscribers": [uid]}),
            ),
            _ => {
                let no = format!("api{c}-{i}");
                calls.sent.push(no.clone());
                let payload = base64::engine::general_purpose::STANDARD.encode(b"{\"api\":1}");
                (
                    "/message/send",
                    serde_json::json!({"client_msg_no": no, "channel_id": GROUP, "channel_type": 2, "payload": payload}),
                )
            }
        };
        calls.made += 1;
        let mut outcome = Err("no edge took the connection".to_string());
        let up = healthy.lock().unwrap().clone();
        let mut order: Vec<usize> = (0..proxies.len()).map(|p| (i + p) % proxies.len()).collect();
        order.sort_by_key(|p| !up[*p]);
        for p in order {
            let proxy = &proxies[p];
            match http.post(format!("http://{proxy}{path}")).json(&body).send().await {
                Err(e) if e.is_connect() => continue,
                Err(e) => outcome = Err(format!("{path} via {proxy}: {e}")),
                Ok(r) if r.status().is_success() => outcome = Ok(()),
                Ok(r) => {
                    outcome = Err(format!("{path} via {proxy}: {} {}", r.status(), r.text().await.unwrap_or_default()))
                }
            }
            break;
        }
        if let Err(e) = outcome {
            let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let e = format!("{e} (at {:.3} s since the epoch)", at.as_secs_f64());
            eprintln!("API call failed: {e}");
            calls.failed.push(e);
            if path == "/message/send" {
                calls.sent.pop();
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_node_in_turn_fails_no_call_and_loses_no_message() {
    // Every node starts as the previous release (link version 6, raft port version 1) and comes back as
    // this one: edges and core nodes of both work together while the upgrade rolls.
    let mut cl = Topology::nodes(3).core("max_link_version = 6\nmax_raft_version = 1\n").start().await;
    let api = cl.api(0);
    let members: Vec<String> = (0..SENDERS).map(|k| format!("s{k}")).collect();
    for m in &members {
        api.user(m, 0).await;
    }
    api.ok("/channel", serde_json::json!({"channel_id": GROUP, "channel_type": 2, "subscribers": members})).await;

    let links: Vec<String> = (0..3).map(|i| cl.link_addr(i)).collect();
    let links = links.join(",");
    let apis: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", cl.http_port(i))).collect();
    let p = free_ports(6);
    let mut edges = [
        Edge { id: "edge-a", ports: [p[0], p[1], p[2]], proc: None },
        Edge { id: "edge-b", ports: [p[3], p[4], p[5]], proc: None },
    ];
    for e in edges.iter_mut() {
        e.start(cl.dir.path(), &links, &apis, 0, "link_version = 6\n");
        common::wait_edge_up(e.proc.as_ref().expect("edge")).await;
    }
    let tcp: Vec<String> = edges.iter().map(Edge::tcp).collect();
    let proxies: Vec<String> = edges.iter().map(Edge::proxy).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS).map(|k| tokio::spawn(sender(k, tcp.clone(), stop.clone()))).collect();
    let healthy = Arc::new(Mutex::new(vec![true; edges.len()]));
    let admin: Vec<String> = edges.iter().map(|e| format!("127.0.0.1:{}", e.ports[1])).collect();
    let prober = tokio::spawn(probe_edges(admin, healthy.clone(), stop.clone()));
    let callers: Vec<_> =
        (0..CALLERS).map(|c| tokio::spawn(caller(c, proxies.clone(), healthy.clone(), stop.clone()))).collect();
    // A steady stretch first, to compare send latency with and without restarts in one run.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let restarts_began = Instant::now();

    let restarts = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let took = cl.stop(i);
        restarts.lock().unwrap().push(format!("core {} stopped in {took:?}", i + 1));
        std::fs::write(cl.dir.path().join(format!("core{}.toml", i + 1)), "").expect("core config");
        cl.restart(i, 1);
        cl.every_group_led().await;
        // Back in the cluster: caught up and answering, before the next one goes.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for (n, e) in edges.iter_mut().enumerate() {
        let started = Instant::now();
        let mut proc = e.proc.take().expect("edge running");
        assert!(proc.terminate(Duration::from_secs(30)), "edge {} did not stop cleanly", e.id);
        restarts.lock().unwrap().push(format!("{} stopped in {:?}", e.id, started.elapsed()));
        e.start(cl.dir.path(), &links, &apis, n as u32 + 1, "");
        common::wait_edge_up(e.proc.as_ref().expect("edge")).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    let mut clients = Vec::new();
    for t in senders {
        let (s, c) = t.await.expect("sender");
        sent.push(s);
        clients.push(c);
    }
    prober.await.expect("prober");
    let mut calls = Vec::new();
    for t in callers {
        calls.push(t.await.expect("caller"));
    }
    for line in restarts.lock().unwrap().iter() {
        eprintln!("{line}");
    }
    for (k, s) in sent.iter().enumerate() {
        eprintln!("s{k}: {} acked, refusals {:?}, {} reconnects", s.acked.len(), s.refusals, s.reconnects);
    }
    let mut steady: Vec<Duration> = Vec::new();
    let mut rolling: Vec<Duration> = Vec::new();
    for (at, took) in sent.iter().flat_map(|s| &s.latency) {
        // The first second is connection set-up.
        if *at >= restarts_began {
            rolling.push(*took);
        } else if restarts_began.duration_since(*at) < Duration::from_secs(5) {
            steady.push(*took);
        }
    }
    eprintln!("send-to-ack without restarts: {}", summary(&mut steady));
    eprintln!("send-to-ack during the rolling restart: {}", summary(&mut rolling));
    let made: u32 = calls.iter().map(|c| c.made).sum();
    let failed: Vec<&String> = calls.iter().flat_map(|c| &c.failed).collect();
    eprintln!("{made} API calls, {} failed", failed.len());
    assert!(failed.is_empty(), "API calls failed: {failed:?}");
    assert!(made > 100, "too few API calls to mean anything: {made}");

    // Every acked message stored once, each sender's in the order acked.
    let reader = cl.api(0);
    let group = common::numbered(&reader.sync_all("s0", GROUP, 2).await);
    let stored: Vec<&str> = group.iter().map(|(no, _)| no.as_str()).collect();
    let mut unique = stored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), stored.len(), "a message was stored twice in the group");
    for (k, s) in sent.iter().enumerate() {
        let want: Vec<&str> = s.acked.iter().filter(|(_, t, _)| *t == 2).map(|(_, _, no)| no.as_str()).collect();
        let prefix = format!("s{k}-");
        let got: Vec<&str> = stored.iter().copied().filter(|no| no.starts_with(&prefix)).collect();
        assert_eq!(got, want, "s{k}'s group messages");
        let to = format!("s{}", (k + 1) % SENDERS);
        let person = common::numbered(&reader.sync_all(&to, &format!("s{k}"), 1).await);
        let got: Vec<&str> = person.iter().map(|(no, _)| no.as_str()).collect();
        let want: Vec<&str> = s.acked.iter().filter(|(_, t, _)| *t == 1).map(|(_, _, no)| no.as_str()).collect();
        assert_eq!(got, want, "s{k} to {to}");
    }
    for c in &calls {
        for no in &c.sent {
            assert!(stored.contains(&no.as_str()), "API message {no} missing");
        }
    }

    // Presence complete: every sender, connected somewhere, is online on every node.
    let deadline = Instant::now() + Duration::from_secs(15);
    for node in 0..3 {
        loop {
            let (status, online) = cl.api(node).post("/user/onlinestatus", serde_json::json!(members)).await;
            let count = online.as_array().map_or(0, |a| a.iter().filter(|u| u["online"] == 1).count());
            if status == 200 && count == SENDERS {
                break;
            }
            assert!(Instant::now() < deadline, "node {} sees {count} of {SENDERS} online: {online}", node + 1);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Upgraded all round: every edge now reports its round trip (link version 7) to every node.
    for node in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let overview = cl.api(node).ok_get("/console/api/overview").await;
            let edges = overview["edges"].as_array().cloned().unwrap_or_default();
            let reporting = edges
                .iter()
                .filter(|e| matches!(e["id"].as_str(), Some("edge-a" | "edge-b")) && e["rtt_ms"].is_f64())
                .count();
            if reporting == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "node {}: {edges:?}", node + 1);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let view = cl.api(node).ok_get("/cluster").await;
        let versions: Vec<&serde_json::Value> =
            view["nodes"].as_array().into_iter().flatten().map(|n| &n["raft_version"]).collect();
        assert_eq!(versions, [&serde_json::json!(2); 3], "node {}'s view of raft port versions", node + 1);
    }
    drop(clients);
}

/// "n, p50, p99, max" of `d`.
fn summary(d: &mut [Duration]) -> String {
    d.sort();
    let at = |q: f64| d.get(((d.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
    format!("{} sends, p50 {:?}, p99 {:?}, max {:?}", d.len(), at(0.5), at(0.99), at(1.0))
}

/// `tern dev --restart`: the running `tern dev` restarts its three core nodes one at a time, then its
/// edge, while a business server calls the API through the edge's access layer and, when that refuses
/// the connection (the edge is down), a core node directly. No call fails; afterwards the edge takes
/// logins and sends again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tern_dev_restarts_its_nodes_one_at_a_time_without_a_failed_call() {
    let dir = tempfile::tempdir().unwrap();
    // An address of its own on loopback: `tern dev` binds WuKongIM's default ports.
    let n = std::process::id();
    let host = format!("127.0.{}.{}", 100 + n % 100, 2 + (n / 100) % 250);
    let data = dir.path().join("dev");
    let data = data.to_str().expect("path");
    let log = dir.path().join("dev.log");
    let dev = Proc::spawn(&["dev", "--host", &host, "--data-dir", data], &log);
    let (proxy, core_api, tcp) = (format!("{host}:5090"), format!("{host}:5001"), format!("{host}:5100"));
    let before = Client::connect(ClientOptions::new(&tcp, "alice", "alice-token")).await.expect("alice");
    let stop = Arc::new(AtomicBool::new(false));
    let healthy = Arc::new(Mutex::new(vec![true, true]));
    let calls = tokio::spawn(caller(0, vec![proxy.clone(), core_api], healthy, stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The edge's access layer runs on threads of its own; a restarted edge must not leave them behind.
    let access_threads = dev.threads_named("tern-access") - dev.threads_named("tern-access-end");
    assert!(access_threads > 0, "no access layer threads found");
    let asked = std::process::Command::new(common::BIN).args(["dev", "--restart", "--data-dir", data]).status();
    assert!(asked.expect("tern dev --restart").success());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("rolling restart done") {
            assert_eq!(text.matches("rolling restart: core node back").count(), 3, "{text}");
            assert!(text.contains("rolling restart: edge back linked=true"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "the rolling restart did not finish; log:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let calls = calls.await.expect("caller");
    eprintln!("{} API calls during the restart, {} failed", calls.made, calls.failed.len());
    assert!(calls.failed.is_empty(), "{:?}", calls.failed);
    assert!(calls.made > 50, "too few calls: {}", calls.made);

    // The edge drained its sessions; a client logs in again and sends.
    let old = before.send_text("bob", 1, "on the old session").await;
    assert!(old.is_err(), "alice's session from before the restart is still open: {old:?}");
    let alice = Client::connect(ClientOptions::new(&tcp, "alice", "alice-token")).await.expect("alice again");
    let ack = alice.send_text("bob", 1, "after the restart").await.expect("sendack");
    assert_eq!(ack.reason_code, Reason::Success.code());
    let health = reqwest::get(format!("http://{proxy}/health")).await.expect("access layer");
    assert!(health.status().is_success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while dev.threads_named("tern-access") - dev.threads_named("tern-access-end") != access_threads {
        assert!(Instant::now() < deadline, "the replaced edge's access layer threads are still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

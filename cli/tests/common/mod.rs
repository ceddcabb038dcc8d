//! Test harness: real `tern core` and `tern edge` processes on loopback, each with its own data dir.
#![allow(dead_code)]

pub mod certs;
pub mod hooks;
pub mod regions;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tern_shared::client::{Client, ClientOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_tern");

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    child: Child,
    pub ready: serde_json::Value,
}

impl Proc {
    pub fn spawn(args: &[&str], log: &Path) -> Proc {
        let log_file = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", std::env::var("TERN_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn tern");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix("TERN_READY ") {
                    let _ = tx.send(json.to_string());
                }
            }
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let exited = child.try_wait().ok().flatten();
            let _ = child.kill();
            // The end of the log says why (before any backtrace); its start is every node's startup chatter.
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let text = text.split("tack backtrace:").next().unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!("{args:?} did not become ready (exit: {exited:?}); last lines of its log:\n{}", tail.join("\n"));
        };
        Proc { child, ready: serde_json::from_str(&line).expect("ready json") }
    }

    pub fn addr(&self, key: &str) -> String {
        self.ready[key].as_str().unwrap_or_default().to_string()
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
    }

    /// SIGKILL: no shutdown code runs, like a crash or power loss of the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub core: Proc,
    pub edge: Proc,
    pub api: Api,
}

/// A failing test keeps its data dir and process logs for a look afterwards. A test also fails when
/// a core or edge it ran panicked, even if the process went on.
fn keep_if_failing(dir: &mut tempfile::TempDir) {
    let failing = std::thread::panicking();
    let panicked = if failing { None } else { log_with_a_panic(dir.path()) };
    if failing || panicked.is_some() {
        let kept = std::mem::replace(dir, tempfile::tempdir().expect("tempdir")).keep();
        eprintln!("test failed: core and edge logs kept in {}", kept.display());
    }
    if let Some(log) = panicked {
        panic!("a process panicked: see {}", log.file_name().unwrap_or_default().to_string_lossy());
    }
}

/// The first process log in `dir` that records a panic.
fn log_with_a_panic(dir: &Path) -> Option<PathBuf> {
    let logs = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path());
    logs.filter(|p| p.extension().is_some_and(|e| e == "log"))
        .find(|p| std::fs::read_to_string(p).is_ok_and(|text| text.contains("panicked at")))
}

/// The slot (raft group) of the person channel between `a` and `b` in a cluster with default slots.
pub fn person_slot(a: &str, b: &str) -> u16 {
    use tern_shared::channel::{person_channel_id, slot_of, DEFAULT_SLOTS};
    slot_of(&person_channel_id(a, b), DEFAULT_SLOTS)
}

/// (client msg no, seq) of synced messages, in order.
pub fn numbered(msgs: &[serde_json::Value]) -> Vec<(String, u64)> {
    msgs.iter()
        .map(|m| (m["client_msg_no"].as_str().unwrap_or_default().to_string(), m["message_seq"].as_u64().unwrap_or(0)))
        .collect()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        keep_if_failing(&mut self.dir);
    }
}

impl Cluster {
    /// A core on ephemeral ports and an edge linked to it. `edge_toml` is extra edge settings.
    pub async fn start(edge_toml: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let core = start_core(dir.path(), "127.0.0.1:0", "127.0.0.1:0", 0);
        let edge = start_edge(dir.path(), &core.addr("link"), edge_toml, 0);
        let api = Api::new(&core.addr("http"));
        wait_edge_up(&edge).await;
        Cluster { dir, core, edge, api }
    }

    pub fn tcp(&self) -> String {
        self.edge.addr("tcp")
    }

    pub fn ws(&self) -> String {
        format!("ws://{}", self.edge.addr("ws"))
    }

    /// Restarts the core on the same data dir and ports after a kill.
    pub async fn restart_core(&mut self, generation: u32) {
        let (http, link) = (self.core.addr("http"), self.core.addr("link"));
        self.core = start_core(self.dir.path(), &http, &link, generation);
        wait_edge_up(&self.edge).await;
    }
}

pub fn start_core(dir: &Path, http: &str, link: &str, generation: u32) -> Proc {
    let data: PathBuf = dir.join("core-data");
    let log = dir.join(format!("core-{generation}.log"));
    Proc::spawn(
        &[
            "core",
            "--data-dir",
            data.to_str().unwrap_or_default(),
            "--http-addr",
            http,
            "--link-addr",
            link,
            "--raft-addr",
            "127.0.0.1:0",
        ],
        &log,
    )
}

pub fn start_edge(dir: &Path, core_link: &str, extra_toml: &str, generation: u32) -> Proc {
    let cfg = dir.join(format!("edge-{generation}.toml"));
    let toml = format!(
        "tcp_addr = \"127.0.0.1:0\"\nws_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\ncore_addr = \"{core_link}\"\n{extra_toml}"
    );
    std::fs::write(&cfg, toml).expect("edge config");
    let log = dir.join(format!("edge-{generation}.log"));
    Proc::spawn(&["edge", "--config", cfg.to_str().unwrap_or_default()], &log)
}

/// The value of `series` (a metric name with its labels, as exported) on the `/metrics` of `http_addr`.
pub async fn metric(http_addr: &str, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{http_addr}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().filter_map(|l| l.rsplit_once(' ')).find(|(name, _)| *name == series)?.1.parse().ok()
}

/// Polls `series` until `wanted` holds for its value, failing the test after `within`.
pub async fn wait_metric(http_addr: &str, series: &str, within: Duration, wanted: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let value = metric(http_addr, series).await;
        if value.is_some_and(&wanted) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} at {http_addr} is {value:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the edge reports its core link up.
pub async fn wait_edge_up(edge: &Proc) {
    let url = format!("http://{}/healthz", edge.addr("http"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("edge link to core did not come up");
}

/// Fails the test if the edge reports a core link at any time within `for_`.
pub async fn never_up(edge: &Proc, for_: Duration) {
    let url = format!("http://{}/healthz", edge.addr("http"));
    let until = Instant::now() + for_;
    while Instant::now() < until {
        let status = reqwest::get(&url).await.expect("healthz").status();
        assert_eq!(status, 503, "this edge must not get a link");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Api {
    base: String,
    http: reqwest::Client,
    pub token: Option<String>,
}

impl Api {
    pub fn new(addr: &str) -> Api {
        Api { base: format!("http://{addr}"), http: reqwest::Client::new(), token: None }
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = &self.token {
            req = req.header("token", t);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    /// GET that must succeed.
    pub async fn ok_get(&self, path: &str) -> serde_json::Value {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("token", t);
        }
        let resp = req.send().await.expect("http request");
        assert_eq!(resp.status().as_u16(), 200, "GET {path}");
        resp.json().await.expect("json")
    }

    /// POST that must succeed.
    pub async fn ok(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, v) = self.post(path, body).await;
        assert_eq!(status, 200, "POST {path}: {v}");
        v
    }

    pub async fn user(&self, uid: &str, device_flag: u8) {
        self.ok(
            "/user/token",
            serde_json::json!({"uid": uid, "token": format!("{uid}-tok"), "device_flag": device_flag}),
        )
        .await;
    }

    pub async fn group(&self, id: &str, members: &[&str]) {
        self.ok("/channel", serde_json::json!({"channel_id": id, "channel_type": 2, "subscribers": members})).await;
    }

    /// Every message of a channel as `login_uid` sees it, paging upward from seq 1.
    pub async fn sync_all(&self, login_uid: &str, channel_id: &str, channel_type: u8) -> Vec<serde_json::Value> {
        let mut out: Vec<serde_json::Value> = Vec::new();
        let mut start = 1;
        loop {
            let body = serde_json::json!({
                "login_uid": login_uid, "channel_id": channel_id, "channel_type": channel_type,
                "start_message_seq": start, "end_message_seq": 0, "limit": 100, "pull_mode": 1,
            });
            let page = self.ok("/channel/messagesync", body).await;
            let msgs = page["messages"].as_array().cloned().unwrap_or_default();
            if let Some(last) = msgs.last() {
                start = last["message_seq"].as_u64().unwrap_or(0) + 1;
            }
            out.extend(msgs);
            if page["more"] != 1 {
                return out;
            }
        }
    }
}

pub async fn connect(addr: &str, uid: &str, device_flag: u8) -> Client {
    let mut o = ClientOptions::new(addr, uid, format!("{uid}-tok"));
    o.device_flag = device_flag;
    Client::connect(o).await.unwrap_or_else(|e| panic!("{uid} connect: {e}"))
}

impl Proc {
    /// A core on loopback ephemeral ports with its settings in `dir/core.toml`, data in `dir/data`
    /// and log in `dir/core.log`.
    pub fn core_with_toml(dir: &Path, toml: &str) -> Proc {
        let cfg = dir.join("core.toml");
        std::fs::write(&cfg, toml).expect("core config");
        let data = dir.join("data");
        let args = [
            "core",
            "--config",
            cfg.to_str().unwrap_or_default(),
            "--data-dir",
            data.to_str().unwrap_or_default(),
            "--http-addr",
            "127.0.0.1:0",
            "--link-addr",
            "127.0.0.1:0",
            "--raft-addr",
            "127.0.0.1:0",
        ];
        Proc::spawn(&args, &dir.join("core.log"))
    }
}

/// A hand-made edge link over `stream` for `edge_id`, past its hello: the reader of the core's frames
/// and a sender of the edge's.
pub async fn raw_link<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static>(
    stream: S,
    edge_id: &str,
) -> (tern_shared::link::io::FrameReader<tokio::io::ReadHalf<S>>, tokio::sync::mpsc::Sender<tern_shared::link::LinkFrame>)
{
    use tern_shared::link::{io, EdgeAddrs, LinkFrame, LINK_VERSION};
    let (r, w) = tokio::io::split(stream);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(io::write_loop(w, rx));
    let instance = rand_instance();
    let hello = LinkFrame::Hello {
        version: LINK_VERSION,
        edge_id: edge_id.into(),
        addrs: EdgeAddrs::default(),
        lane: 0,
        instance,
    };
    tx.send(hello).await.expect("link writer");
    let mut reader = io::FrameReader::new(r);
    match reader.next().await {
        Ok(Some(LinkFrame::HelloAck { .. })) => {}
        other => panic!("no hello ack: {other:?}"),
    }
    (reader, tx)
}

/// A different link instance for every hand-made edge process.
fn rand_instance() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// `n` loopback ports that were free a moment ago (for processes that must know each other's ports).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

/// A three-node core cluster and one edge linked to all three nodes.
pub struct Cluster3 {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Option<Proc>>,
    ports: Vec<[u16; 3]>,
    pub edge: Proc,
    /// `relays[i][j]`: the path node i uses to reach node j, when the cluster was started with relays.
    relays: Vec<Vec<Option<Relay>>>,
}

impl Drop for Cluster3 {
    fn drop(&mut self) {
        keep_if_failing(&mut self.dir);
    }
}

impl Cluster3 {
    /// `core_toml`: settings every node loads (its `--config` file).
    pub async fn start(core_toml: &str) -> Cluster3 {
        Self::start_inner(core_toml, None).await
    }

    /// Like `start`, but every node reaches every other through a relay the test can cut.
    pub async fn start_with_relays(core_toml: &str) -> Cluster3 {
        Self::start_inner(core_toml, Some(0)).await
    }

    /// Like `start_with_relays`, with `rtt_ms` added on every path between two nodes: voters in three
    /// regions that far apart (the edge's links stay local).
    pub async fn start_across_wan(core_toml: &str, rtt_ms: u32) -> Cluster3 {
        Self::start_inner(core_toml, Some(rtt_ms)).await
    }

    async fn start_inner(core_toml: &str, relay_rtt_ms: Option<u32>) -> Cluster3 {
        let dir = tempfile::tempdir().expect("tempdir");
        // Relays listen on ports of the same batch: one the kernel gave a relay for port 0 could be a
        // node's, released by `free_ports` a moment before.
        let p = free_ports(9 + 12);
        let ports: Vec<[u16; 3]> = (0..3).map(|i| [p[3 * i], p[3 * i + 1], p[3 * i + 2]]).collect();
        let mut relay_ports = p[9..].iter();
        let mut relays: Vec<Vec<Option<Relay>>> = (0..3).map(|_| (0..3).map(|_| None).collect()).collect();
        if let Some(rtt) = relay_rtt_ms {
            for (i, row) in relays.iter_mut().enumerate() {
                for (j, slot) in row.iter_mut().enumerate() {
                    if i != j {
                        let log = dir.path().join(format!("relay-{}-{}.log", i + 1, j + 1));
                        let mut port = || relay_ports.next().copied().unwrap_or(0);
                        let (listen, admin) = (port(), port());
                        *slot = Some(Relay::start([listen, admin], &format!("127.0.0.1:{}", ports[j][2]), rtt, &log));
                    }
                }
            }
        }
        for (i, row) in relays.iter().enumerate() {
            let dial: Vec<String> = row
                .iter()
                .enumerate()
                .filter_map(|(j, r)| r.as_ref().map(|r| format!("{}={}", j + 1, r.addr)))
                .collect();
            let mut toml = core_toml.to_string();
            if !dial.is_empty() {
                let entries: Vec<String> = dial
                    .iter()
                    .map(|d| {
                        let (id, addr) = d.split_once('=').unwrap_or_default();
                        format!("[[dial]]\nid = {id}\nraft_addr = \"{addr}\"\n")
                    })
                    .collect();
                toml = format!("{}\n{}", entries.join(""), toml);
            }
            std::fs::write(dir.path().join(format!("core{}.toml", i + 1)), toml).expect("core config");
        }
        let nodes = (0..3).map(|i| Some(spawn_node(dir.path(), &ports, i, 0, false))).collect();
        // Listed last-first, so the founding leader (node 1) is not simply the first link.
        let links: Vec<String> = ports.iter().rev().map(|p| format!("127.0.0.1:{}", p[1])).collect();
        let edge = start_edge(dir.path(), &links.join(","), "", 0);
        let cl = Cluster3 { dir, nodes, ports, edge, relays };
        cl.every_group_led().await;
        wait_edge_up(&cl.edge).await;
        cl
    }

    pub fn http_port(&self, i: usize) -> u16 {
        self.ports[i][0]
    }

    pub fn raft_port(&self, i: usize) -> u16 {
        self.ports[i][2]
    }

    pub fn link_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i][1])
    }

    pub fn api(&self, i: usize) -> Api {
        Api::new(&format!("127.0.0.1:{}", self.ports[i][0]))
    }

    /// Waits until every live node knows a leader for every group (its `/health` answers 200).
    pub async fn every_group_led(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, n) in self.nodes.iter().enumerate() {
            if n.is_none() {
                continue;
            }
            let url = format!("http://127.0.0.1:{}/health", self.ports[i][0]);
            loop {
                let status = reqwest::get(&url).await.map(|r| r.status().as_u16());
                if matches!(status, Ok(200)) {
                    break;
                }
                assert!(Instant::now() < deadline, "node {} lacks group leaders: {status:?}", i + 1);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The index of the node every live node names as the leader of `slot`'s raft group, once they agree.
    pub async fn leader_of(&self, slot: u16) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut seen = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if n.is_none() {
                    continue;
                }
                let url = format!("http://127.0.0.1:{}/cluster", self.ports[i][0]);
                let leader = match reqwest::get(&url).await {
                    Ok(r) => r
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v["groups"][usize::from(slot)]["leader"].as_u64()),
                    Err(_) => None,
                };
                seen.push(leader);
            }
            if let Some(Some(l)) = seen.first() {
                if seen.iter().all(|s| *s == Some(*l)) && self.nodes[(*l - 1) as usize].is_some() {
                    return (*l - 1) as usize;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Cuts node `i` off from the other nodes (both directions), or heals it.
    pub async fn isolate(&self, i: usize, cut: bool) {
        for (a, row) in self.relays.iter().enumerate() {
            for (b, relay) in row.iter().enumerate() {
                if a == i || b == i {
                    if let Some(r) = relay {
                        r.set_cut(cut).await;
                    }
                }
            }
        }
    }

    /// Peak resident memory of node `i` so far (VmHWM), in bytes.
    pub fn peak_rss(&self, i: usize) -> Option<u64> {
        let pid = self.nodes[i].as_ref()?.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches(" kB");
        kb.trim().parse::<u64>().ok().map(|kb| kb * 1024)
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].take() {
            p.kill9();
        }
    }

    /// Stops node `i` as a service manager does (SIGTERM) and waits for it to exit; returns how long it
    /// took. Fails the test if it does not exit cleanly within 30 s.
    pub fn stop(&mut self, i: usize) -> Duration {
        let started = Instant::now();
        let mut node = self.nodes[i].take().expect("node is running");
        assert!(node.terminate(Duration::from_secs(30)), "node {} did not stop cleanly", i + 1);
        started.elapsed()
    }

    pub fn restart(&mut self, i: usize, generation: u32) {
        self.nodes[i] = Some(spawn_node(self.dir.path(), &self.ports, i, generation, false));
    }

    /// Starts one more node with `--join`; returns its index and raft address.
    pub fn add_joiner(&mut self) -> (usize, String) {
        let p = free_ports(3);
        self.ports.push([p[0], p[1], p[2]]);
        let i = self.ports.len() - 1;
        std::fs::write(self.dir.path().join(format!("core{}.toml", i + 1)), "").expect("core config");
        self.nodes.push(Some(spawn_node(self.dir.path(), &self.ports, i, 0, true)));
        (i, format!("127.0.0.1:{}", p[2]))
    }
}

fn spawn_node(dir: &Path, ports: &[[u16; 3]], i: usize, generation: u32, join: bool) -> Proc {
    let [http, link, raft] = ports[i];
    let peers: Vec<String> =
        ports.iter().take(3).enumerate().map(|(j, p)| format!("{}=127.0.0.1:{}", j + 1, p[2])).collect();
    let data = dir.join(format!("node{}", i + 1));
    let log = dir.join(format!("node{}-{generation}.log", i + 1));
    let (http, link, raft) = (format!("127.0.0.1:{http}"), format!("127.0.0.1:{link}"), format!("127.0.0.1:{raft}"));
    let id = (i + 1).to_string();
    let config = dir.join(format!("core{}.toml", i + 1));
    let peers = peers.join(",");
    let mut args = vec![
        "core",
        "--config",
        config.to_str().unwrap_or_default(),
        "--node-id",
        &id,
        "--data-dir",
        data.to_str().unwrap_or_default(),
        "--http-addr",
        &http,
        "--link-addr",
        &link,
        "--raft-addr",
        &raft,
    ];
    if join {
        args.push("--join");
    } else {
        args.extend(["--peers", &peers]);
    }
    // Tests place leadership themselves; the balancer runs where a test's config turns it on.
    if !std::fs::read_to_string(&config).unwrap_or_default().contains("balance_interval_ms") {
        args.extend(["--set", "raft.balance_interval_ms=0"]);
    }
    Proc::spawn(&args, &log)
}

/// A TCP relay a test can cut: while cut it drops its connections and refuses new ones.
/// A `tern wan relay` process: the path to `target` with `rtt_ms` added, cut and healed through its admin
/// API.
pub struct Relay {
    pub addr: String,
    admin: String,
    _proc: Proc,
}

impl Relay {
    /// `ports`: where it listens and its admin API.
    pub fn start(ports: [u16; 2], target: &str, rtt_ms: u32, log: &Path) -> Relay {
        let rtt = rtt_ms.to_string();
        let [listen, admin] = ports.map(|p| format!("127.0.0.1:{p}"));
        let args = ["wan", "relay", "--listen", &listen, "--admin", &admin, "--to", target, "--rtt-ms", &rtt];
        let proc = Proc::spawn(&args, log);
        Relay { addr: proc.addr("relay"), admin: proc.addr("admin"), _proc: proc }
    }

    /// Cuts the path (its connections dropped, new ones refused) or heals it.
    pub async fn set_cut(&self, cut: bool) {
        let url = format!("http://{}/{}", self.admin, if cut { "cut" } else { "heal" });
        let r = reqwest::Client::new().post(url).send().await.expect("relay admin");
        assert!(r.status().is_success(), "relay admin: {}", r.status());
    }
}

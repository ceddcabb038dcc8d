//! Test harness: real `tern core` and `tern edge` processes on loopback, each with its own data dir.
#![allow(dead_code)]

pub mod certs;
pub mod hooks;
pub mod regions;
pub mod topology;

#[allow(unused_imports)]
pub use topology::{Cluster, Topology};

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

    /// Threads of the process whose name starts with `prefix`.
    pub fn threads_named(&self, prefix: &str) -> usize {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).into_iter().flatten().flatten();
        tasks
            .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|n| n.trim_end().starts_with(prefix)))
            .count()
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

/// `n` loopback ports that are free, for processes that must know each other's ports before they
/// start. They come from below the kernel's ephemeral range (32768 and up), each handed out once per
/// test process: a port the kernel picked for a `:0` bind or an outgoing connection elsewhere in the
/// test could otherwise be taken between this check and the process binding it.
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Where this process starts in the range: test binaries run one after another, but a binary run
    // again soon after may find the previous run's ports in TIME_WAIT.
    let _ = NEXT.compare_exchange(u32::MAX, std::process::id() * 7919 % SPAN, Ordering::Relaxed, Ordering::Relaxed);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..SPAN {
        if ports.len() == n {
            break;
        }
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "no {n} free loopback ports below the ephemeral range");
    ports
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

//! One builder for the deployments tests run. `start`: core nodes (each a `tern core` process with its
//! own data dir and settings), optionally a `tern wan relay` on every path between two nodes (cut,
//! healed, or a WAN round trip), and an edge linked to every node; it returns once every node knows a
//! leader for every raft group and the edge's links are up. `start_regions`: the nodes as voters of
//! regions a WAN apart, a voter and an edge in each, described in `deploy/regions` form and run by
//! `tern dev --regions` with its relays on every cross-region path and its DNS server (`regions.rs`).
//!
//! ```ignore
//! let cl = Topology::nodes(3).core("admin_token = \"t\"").relays(80).start().await;
//! let dev = Topology::nodes(3).relays(80).start_regions(dir, [11, 12, 13]);
//! ```

use super::regions::DevRegions;
use super::{free_ports, keep_if_failing, start_edge, wait_edge_up, Api, Proc, Relay};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Topology {
    nodes: usize,
    core_toml: String,
    /// Settings only node `i` gets, after the common ones.
    node_toml: Vec<(usize, String)>,
    relay_rtt_ms: Option<u32>,
    edge_toml: String,
}

impl Topology {
    /// `n` core nodes (voters from the start), one edge.
    pub fn nodes(n: usize) -> Topology {
        assert!((1..=5).contains(&n), "1 to 5 core nodes");
        Topology {
            nodes: n,
            core_toml: String::new(),
            node_toml: Vec::new(),
            relay_rtt_ms: None,
            edge_toml: String::new(),
        }
    }

    /// Settings every core node loads (its `--config` file).
    pub fn core(mut self, toml: &str) -> Topology {
        self.core_toml = toml.to_string();
        self
    }

    /// Settings node `i` (0-based) loads besides the common ones.
    pub fn node(mut self, i: usize, toml: &str) -> Topology {
        self.node_toml.push((i, toml.to_string()));
        self
    }

    /// Every node reaches every other through a relay the test can cut, adding `rtt_ms` (0: none) to
    /// the path: voters that far apart (the edge's links stay local).
    pub fn relays(mut self, rtt_ms: u32) -> Topology {
        self.relay_rtt_ms = Some(rtt_ms);
        self
    }

    /// Extra settings of the edge.
    pub fn edge(mut self, toml: &str) -> Topology {
        self.edge_toml = toml.to_string();
        self
    }

    /// Regions `REGIONS[..n]`, `relays`' round trip apart (80 ms if not given), one voter and one edge
    /// each, on 127.0.`nets[i]`.x: addresses no other test may use while this one runs. Files go under
    /// `dir`. Core settings given to the builder are not used (the description derives raft timings).
    pub fn start_regions(self, dir: &Path, nets: [u8; 3]) -> DevRegions {
        const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-southeast"];
        assert!(self.nodes <= REGIONS.len(), "up to {} regions", REGIONS.len());
        let rtt = self.relay_rtt_ms.unwrap_or(80);
        let desc = dir.join("description");
        std::fs::create_dir_all(&desc).expect("description dir");
        let mut top = String::from("name = \"drill\"\ndomain = \"im.drill.test\"\n");
        let regions: Vec<(&str, u8)> = REGIONS.iter().copied().zip(nets).take(self.nodes).collect();
        for (i, (a, _)) in regions.iter().enumerate() {
            for (b, _) in &regions[i + 1..] {
                top += &format!("[[path]]\nbetween = [\"{a}\", \"{b}\"]\nrtt_ms = {rtt}\n");
            }
        }
        std::fs::write(desc.join("deployment.toml"), top).expect("deployment.toml");
        for (i, (id, net)) in regions.iter().enumerate() {
            let region = format!(
                "dns_name = \"{id}.im.drill.test\"\nclients = [\"127.0.{net}.0/24\"]\n[[voter]]\nid = {}\nlisten = \"127.0.{net}.10\"\n[[edge]]\nid = \"{id}-1\"\nlisten = \"127.0.{net}.1\"\n",
                i + 1
            );
            std::fs::write(desc.join(format!("{id}.toml")), region).expect("region file");
        }
        DevRegions::run(&desc, dir)
    }

    pub async fn start(self) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = self.nodes;
        let relayed = self.relay_rtt_ms.is_some();
        let relay_count = if relayed { n * (n - 1) } else { 0 };
        let p = free_ports(3 * n + 2 * relay_count);
        let ports: Vec<[u16; 3]> = (0..n).map(|i| [p[3 * i], p[3 * i + 1], p[3 * i + 2]]).collect();
        let mut relay_ports = p[3 * n..].chunks(2);
        let mut relays: Vec<Vec<Option<Relay>>> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        if let Some(rtt) = self.relay_rtt_ms {
            for (i, row) in relays.iter_mut().enumerate() {
                for (j, slot) in row.iter_mut().enumerate().filter(|(j, _)| *j != i) {
                    let log = dir.path().join(format!("relay-{}-{}.log", i + 1, j + 1));
                    let at = relay_ports.next().expect("relay ports");
                    *slot = Some(Relay::start([at[0], at[1]], &format!("127.0.0.1:{}", ports[j][2]), rtt, &log));
                }
            }
        }
        for (i, row) in relays.iter().enumerate() {
            let mut toml = String::new();
            for (j, r) in row.iter().enumerate() {
                if let Some(r) = r {
                    toml += &format!("[[dial]]\nid = {}\nraft_addr = \"{}\"\n", j + 1, r.addr);
                }
            }
            toml += &format!("\n{}\n", self.core_toml);
            for (_, extra) in self.node_toml.iter().filter(|(k, _)| *k == i) {
                toml += &format!("{extra}\n");
            }
            std::fs::write(dir.path().join(format!("core{}.toml", i + 1)), toml).expect("core config");
        }
        let nodes = (0..n).map(|i| Some(spawn_node_at(dir.path(), &ports, n, i, 0, None))).collect();
        // Listed last-first, so the founding leader (node 1) is not simply the first link.
        let links: Vec<String> = ports.iter().rev().map(|p| format!("127.0.0.1:{}", p[1])).collect();
        let edge = start_edge(dir.path(), &links.join(","), &self.edge_toml, 0);
        let api = Api::new(&format!("127.0.0.1:{}", ports[0][0]));
        let cl = Cluster { dir, nodes, ports, edge, relays, api, voters: n };
        cl.every_group_led().await;
        wait_edge_up(&cl.edge).await;
        cl
    }
}

/// A running deployment of `Topology`.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Option<Proc>>,
    ports: Vec<[u16; 3]>,
    pub edge: Proc,
    /// `relays[i][j]`: the path node i uses to reach node j, when the topology has relays.
    relays: Vec<Vec<Option<Relay>>>,
    /// Node 1's API.
    pub api: Api,
    /// Nodes started as voters (joiners come after them).
    voters: usize,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        keep_if_failing(&mut self.dir);
    }
}

impl Cluster {
    pub fn tcp(&self) -> String {
        self.edge.addr("tcp")
    }

    pub fn ws(&self) -> String {
        format!("ws://{}", self.edge.addr("ws"))
    }

    /// Node `i`'s process (it must be running).
    pub fn node(&self, i: usize) -> &Proc {
        self.nodes[i].as_ref().expect("node is running")
    }

    pub fn http_port(&self, i: usize) -> u16 {
        self.ports[i][0]
    }

    pub fn http_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i][0])
    }

    pub fn raft_port(&self, i: usize) -> u16 {
        self.ports[i][2]
    }

    pub fn link_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i][1])
    }

    pub fn api(&self, i: usize) -> Api {
        Api::new(&self.http_addr(i))
    }

    /// Waits until every live node knows a leader for every group (its `/health` answers 200).
    pub async fn every_group_led(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, n) in self.nodes.iter().enumerate() {
            if n.is_none() {
                continue;
            }
            let url = format!("http://{}/health", self.http_addr(i));
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
                let url = format!("http://{}/cluster", self.http_addr(i));
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

    /// Starts node `i` again on its data and ports (after `kill` or `stop`); its log is
    /// `node<i+1>-<generation>.log`.
    pub fn restart(&mut self, i: usize, generation: u32) {
        self.nodes[i] = Some(spawn_node_at(self.dir.path(), &self.ports, self.voters, i, generation, None));
    }

    /// Starts node `i` again (after `kill` or `stop`) and waits until every node knows every group's
    /// leader and the edge is linked again.
    pub async fn start_again(&mut self, i: usize, generation: u32) {
        self.restart(i, generation);
        self.every_group_led().await;
        wait_edge_up(&self.edge).await;
    }

    /// Node `i` (stopped) started on its data with its API and link port where the edge and the tests
    /// do not know them (ephemeral ports): changes made through it meet the edge only later.
    pub fn start_hidden(&self, i: usize, generation: u32) -> Proc {
        spawn_node_at(self.dir.path(), &self.ports, self.voters, i, generation, Some(["127.0.0.1:0", "127.0.0.1:0"]))
    }

    /// Starts one more node with `--join`; returns its index and raft address.
    pub fn add_joiner(&mut self) -> (usize, String) {
        let p = free_ports(3);
        self.ports.push([p[0], p[1], p[2]]);
        let i = self.ports.len() - 1;
        std::fs::write(self.dir.path().join(format!("core{}.toml", i + 1)), "").expect("core config");
        self.nodes.push(Some(spawn_node_at(self.dir.path(), &self.ports, self.voters, i, 0, None)));
        (i, format!("127.0.0.1:{}", p[2]))
    }
}

/// Node `i` of the cluster on `ports` (http, link, raft), or on `elsewhere` (http, link), its settings
/// in `dir/core<i+1>.toml`. The first `voters` nodes founded the cluster; a later one joins.
fn spawn_node_at(
    dir: &Path,
    ports: &[[u16; 3]],
    voters: usize,
    i: usize,
    generation: u32,
    elsewhere: Option<[&str; 2]>,
) -> Proc {
    let [http, link, raft] = ports[i];
    let join = i >= voters;
    let peers: Vec<String> =
        ports.iter().take(voters).enumerate().map(|(j, p)| format!("{}=127.0.0.1:{}", j + 1, p[2])).collect();
    let data = dir.join(format!("node{}", i + 1));
    let log = dir.join(format!("node{}-{generation}.log", i + 1));
    let (mut http, mut link, raft) =
        (format!("127.0.0.1:{http}"), format!("127.0.0.1:{link}"), format!("127.0.0.1:{raft}"));
    if let Some([h, l]) = elsewhere {
        (http, link) = (h.to_string(), l.to_string());
    }
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

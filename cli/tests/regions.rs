//! Deployments described in `deploy/regions/`: the shipped descriptions run as they are, and what
//! `tern deploy render` writes is what the binaries accept.

mod common;

use common::regions::DevRegions;
use common::{connect, Api, Proc, Topology};
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
    let dev = DevRegions::run(Path::new(dir), tmp.path());
    let edge = |id: &str| dev.edge(id);
    // Each voter dials the two others and each edge the two voters elsewhere: 12 paths, each relayed;
    // and each region's clients reach every edge's three ports through a relay of their own.
    let paths = dev.paths().await;
    let kind = |k: &str| paths.iter().filter(|p| p["kind"] == k).count();
    assert_eq!((kind("raft"), kind("link"), kind("client")), (6, 6, 27));
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
    let metrics =
        reqwest::get(format!("http://{}/metrics", dev.edge_http("eu-west-1"))).await.unwrap().text().await.unwrap();
    let rtt_to_node_2: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with("tern_edge_core_link_rtt_seconds{") && l.contains("node=\"2\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(!rtt_to_node_2.is_empty(), "{metrics}");
    assert!(rtt_to_node_2.iter().all(|r| (0.078..0.5).contains(r)), "{rtt_to_node_2:?}");
    // The relays' byte counts, also as Prometheus metrics: raft from eu-west to us-east carried the
    // message (and heartbeats) and the answers came back.
    let metrics = reqwest::get(format!("{}/metrics", dev.admin())).await.unwrap().text().await.unwrap();
    let series = |labels: &str| -> f64 {
        let prefix = format!("tern_wan_bytes_total{{{labels}}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok()).unwrap_or(0.0)
    };
    for direction in ["forward", "back"] {
        let labels = format!("direction=\"{direction}\",from=\"eu-west\",kind=\"raft\",to=\"us-east\"");
        assert!(series(&labels) > 1000.0, "{labels}: {metrics}");
    }

    // home_region = "eu-west": the balancer hands every slot's leadership to its voter (node 1), so
    // writes commit in one round trip from there.
    let health = format!("http://{}/health", apis[0]);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let h: serde_json::Value = reqwest::get(&health).await.unwrap().json().await.unwrap();
        if h["leading"] == h["slots"] {
            break;
        }
        assert!(Instant::now() < deadline, "node 1 leads {} of {} slots", h["leading"], h["slots"]);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // ap-southeast partitioned off (its connections stay open, nothing passes, only timeouts notice):
    // eu-west and us-east still make a majority.
    assert_eq!(dev.steer("partition", "ap-southeast").await["paths"], 8 + 9);
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

/// One client's acked sends: (channel id, channel type, client_msg_no, seq, when sent, when acked,
/// reconnects so far).
type Acked = Vec<(String, u8, String, u32, Instant, Instant, u32)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_region_s_clients_send_again_through_another_and_no_acked_message_is_lost() {
    use tern_shared::client::roam::{RoamOptions, Roaming};
    let tmp = tempfile::tempdir().unwrap();
    let dev = Topology::nodes(3).relays(80).start_regions(tmp.path(), [11, 12, 13]);
    let (d, dns, apis, api) = (&dev.d, dev.dns(), dev.api_urls(), dev.api(0));

    // Users in every region (four each; TERN_DRILL_USERS for a larger run), each in the group and
    // writing to one user of the next region.
    let per_region: u8 = std::env::var("TERN_DRILL_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let regions: Vec<(String, u8)> = vec![("eu-west".into(), 11), ("us-east".into(), 12), ("ap-southeast".into(), 13)];
    let mut users = Vec::new();
    for (r, net) in &regions {
        for k in 0..per_region {
            users.push((format!("{r}-{k}"), r.clone(), *net, k));
        }
    }
    for (uid, ..) in &users {
        api.user(uid, 0).await;
    }
    let members: Vec<&str> = users.iter().map(|u| u.0.as_str()).collect();
    api.group("everywhere", &members).await;
    let bootstrap = dev.bootstrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, (uid, region, net, k)) in users.iter().cloned().enumerate() {
        let peer = users[(i + usize::from(per_region)) % users.len()].0.clone();
        let mut client = ClientOptions::new("", &uid, format!("{uid}-tok"));
        client.source = Some(format!("127.0.{net}.{}", 100 + k).parse().unwrap());
        client.timeout = Duration::from_secs(3);
        let mut o = RoamOptions::new(bootstrap.clone(), d.ports.edge_tcp, client);
        o.dns = Some(dns);
        o.api = apis.clone();
        o.give_up = Duration::from_secs(30);
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Roaming::connect(o).await.unwrap_or_else(|e| panic!("{uid} could not connect: {e}"));
            let home = c.edge().unwrap();
            let mut acked: Acked = Vec::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (channel, kind) =
                    if n.is_multiple_of(2) { ("everywhere".to_string(), 2) } else { (peer.clone(), 1) };
                let text = format!("{uid} #{n}");
                let payload = serde_json::json!({"type": 1, "content": text}).to_string().into_bytes();
                let msg = tern_shared::client::Outgoing {
                    channel_id: channel.clone(),
                    channel_type: kind,
                    payload,
                    ..Default::default()
                };
                let no = tern_shared::client::random_msg_no();
                let sent = Instant::now();
                let ack = c.send(tern_shared::client::Outgoing { client_msg_no: no.clone(), ..msg }).await;
                let ack = ack.unwrap_or_else(|e| panic!("{uid}: {e}"));
                assert_eq!(ack.reason_code, 1, "{uid}");
                acked.push((channel, kind, no, ack.message_seq, sent, Instant::now(), c.reconnects()));
                n += 1;
                while c.recv(Duration::ZERO).await.is_some() {}
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (uid, region, home, acked)
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cut_at = Instant::now();
    dev.steer("cut", "ap-southeast").await;
    // The operator console's view from eu-west shows the cut at once: ap-southeast's voter unreachable,
    // its edge gone from the edges linked here.
    let console = dev.api(0);
    let shown = loop {
        let o = console.ok_get("/console/api/overview").await;
        let voter_lost = o["reachable"]["3"] == false;
        let edge_gone = !o["edges"].as_array().is_some_and(|e| e.iter().any(|e| e["id"] == "ap-southeast-1"));
        if voter_lost && edge_gone {
            break cut_at.elapsed();
        }
        assert!(cut_at.elapsed() < Duration::from_secs(3), "the console does not show the cut: {o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("the console showed the cut after {shown:?}");
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(cut_at.elapsed())).await;
    dev.steer("heal", "ap-southeast").await;
    let healed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut results = Vec::new();
    for t in tasks {
        results.push(tokio::time::timeout(Duration::from_secs(60), t).await.expect("a client hung").unwrap());
    }

    // Every client of the lost region sent again, through another region, soon after the cut.
    let mut resumed: Vec<Duration> = Vec::new();
    for (uid, region, home, acked) in &results {
        if region != "ap-southeast" {
            continue;
        }
        let after = acked.iter().find(|a| a.5 > cut_at && a.6 > 0);
        let after = after.unwrap_or_else(|| panic!("{uid} (edge {home}) never sent again after the cut"));
        resumed.push(after.5 - cut_at);
    }
    resumed.sort();
    let at = |q: f64| resumed[((resumed.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "region cut -> its {} clients acked again after p50 {:?}, p99 {:?}, max {:?}",
        resumed.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    assert!(at(0.99) < Duration::from_secs(5), "{resumed:?}");
    // The returning voter does not unseat the leaders (it did not campaign while cut off): sends
    // after the heal are acked as quickly as before the cut.
    let slowest = |from: Instant, to: Instant| {
        let sends = results.iter().flat_map(|r| r.3.iter()).filter(|a| a.4 >= from && a.4 < to);
        sends.map(|a| a.5 - a.4).max().unwrap_or_default()
    };
    let (before, after) =
        (slowest(cut_at - Duration::from_secs(2), cut_at), slowest(healed_at, healed_at + Duration::from_secs(3)));
    eprintln!("slowest send in the 2 s before the cut {before:?}, in the 3 s after the heal {after:?}");
    // An election at these timings takes the lease (1.2 s) and an election timeout (0.8-1.2 s).
    assert!(after < Duration::from_secs(2), "a send took {after:?} after the heal: the leaders were unseated");

    // Reading every channel back shows every acked message once, at its acked seq, in order.
    let mut by_channel: std::collections::HashMap<(String, u8, String), Vec<(String, u32)>> = Default::default();
    for (uid, _, _, acked) in &results {
        for (channel, kind, no, seq, ..) in acked {
            // A person channel is read as its sender sees it.
            let login = if *kind == 1 { uid.clone() } else { users[0].0.clone() };
            by_channel.entry((channel.clone(), *kind, login)).or_default().push((no.clone(), *seq));
        }
    }
    let total: usize = by_channel.values().map(Vec::len).sum();
    for ((channel, kind, login), sent) in by_channel {
        let stored = api.sync_all(&login, &channel, kind).await;
        let seqs: Vec<u64> = stored.iter().map(|m| m["message_seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{channel}: seqs out of order");
        for (no, seq) in sent {
            let found: Vec<_> = stored.iter().filter(|m| m["client_msg_no"] == no.as_str()).collect();
            assert_eq!(found.len(), 1, "{channel}: {no} stored {} times", found.len());
            assert_eq!(found[0]["message_seq"].as_u64(), Some(u64::from(seq)), "{channel}: {no}");
        }
    }
    eprintln!("{total} acked messages read back once each, in order");

    // Healed: ap-southeast's voter catches up with the others, and DNS sends its clients home again.
    let applied = |node: usize| {
        let url = format!("{}/metrics", apis[node]);
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            let mut by_slot: Vec<(String, u64)> = text
                .lines()
                .filter(|l| l.starts_with("tern_core_raft_last_applied{"))
                .filter_map(|l| Some((l.split(' ').next()?.to_string(), l.rsplit(' ').next()?.parse().ok()?)))
                .collect();
            by_slot.sort();
            by_slot
        }
    };
    let leaders = applied(0).await;
    assert_eq!(leaders.len(), usize::from(d.slots));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let behind: Vec<_> = applied(2).await.into_iter().zip(&leaders).filter(|(a, b)| a.1 < b.1).collect();
        if behind.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "ap-southeast's voter still behind: {behind:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut client = ClientOptions::new("", "ap-southeast-0", "ap-southeast-0-tok");
    client.source = Some("127.0.13.200".parse().unwrap());
    let mut o = RoamOptions::new(bootstrap, d.ports.edge_tcp, client);
    o.dns = Some(dns);
    let home = dev.front("ap-southeast", "ap-southeast-1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Roaming::connect(o.clone()).await.unwrap().edge().unwrap().ip() != home {
        assert!(Instant::now() < deadline, "DNS never sent ap-southeast's new clients home");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_crosses_into_a_region_once_per_edge_not_once_per_member() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Topology::nodes(3).relays(80).start_regions(tmp.path(), [21, 22, 23]);
    let (d, api) = (&dev.d, dev.api(0));
    // Bytes core nodes sent down edge links into each region (the edges' links dial out of their region).
    let link_bytes = || async {
        let mut by_region = std::collections::BTreeMap::<String, u64>::new();
        for p in dev.paths().await.iter().filter(|p| p["kind"] == "link") {
            *by_region.entry(p["from"].as_str().unwrap().to_string()).or_default() += p["bytes_back"].as_u64().unwrap();
        }
        by_region
    };
    // Members connect to their region's edge directly, not through the client relays: the bytes that
    // count are the links', and 10,000 members through relays would need more descriptors than a
    // process may hold here.
    let front = |region: &str| dev.edge(&d.region(region).unwrap().edges[0].id);
    let sizes: Vec<usize> = std::env::var("TERN_COPY_MEMBERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8]);
    const MESSAGES: usize = 20;
    let mut per_message = Vec::new();
    for &n in &sizes {
        let group = format!("copies-{n}");
        let sender = format!("sender-{n}");
        let mut uids = vec![sender.clone()];
        for r in &d.regions {
            uids.extend((0..n).map(|k| format!("{}-{n}-{k}", r.id)));
        }
        let phase = Instant::now();
        for chunk in uids.chunks(200) {
            futures_util::future::join_all(chunk.iter().map(|u| api.user(u, 0))).await;
        }
        eprintln!("{} members: tokens in {:?}", uids.len(), phase.elapsed());
        let phase = Instant::now();
        let members: Vec<&str> = uids.iter().map(String::as_str).collect();
        api.group(&group, &members).await;
        eprintln!("{} members: group made in {:?}", uids.len(), phase.elapsed());
        let phase = Instant::now();
        // Logins check tokens at each uid's slot leader, a WAN round trip away: log in 200 at a time.
        let logins: Vec<ClientOptions> = d
            .regions
            .iter()
            .flat_map(|r| (0..n).map(move |k| (r, format!("{}-{n}-{k}", r.id))))
            .map(|(r, uid)| ClientOptions::new(front(&r.id), &uid, format!("{uid}-tok")))
            .collect();
        let mut receivers = Vec::new();
        for chunk in logins.chunks(200) {
            let connected = futures_util::future::join_all(chunk.iter().cloned().map(Client::connect)).await;
            receivers.extend(connected.into_iter().map(|c| c.expect("member login")));
        }
        eprintln!("{} members: logged in in {:?}", uids.len(), phase.elapsed());
        let from =
            Client::connect(ClientOptions::new(front("eu-west"), &sender, format!("{sender}-tok"))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // RECVs each region's edge has queued to its clients, to know when every copy has arrived.
        let queued = || async {
            let mut total = 0.0;
            for r in &d.regions {
                let series = "tern_edge_recv_delivered_total";
                total += common::metric(&dev.edge_http(&r.edges[0].id), series).await.unwrap_or(0.0);
            }
            total
        };
        let (before, queued_before, sent_at) = (link_bytes().await, queued().await, Instant::now());
        let text = "x".repeat(1000);
        for _ in 0..MESSAGES {
            assert_eq!(from.send_text(&group, 2, &text).await.unwrap().reason_code, 1);
        }
        let want = queued_before + (MESSAGES * 3 * n) as f64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while queued().await < want {
            assert!(Instant::now() < deadline, "not every copy reached the edges");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (after, took) = (link_bytes().await, sent_at.elapsed());
        // What the links carry anyway (pings, pongs, leader reports) over as long, taken off.
        let idle_from = link_bytes().await;
        tokio::time::sleep(took).await;
        let idle_to = link_bytes().await;
        let into: Vec<(String, u64)> = after
            .iter()
            .map(|(r, b)| {
                let idle = idle_to[r] - idle_from.get(r).copied().unwrap_or(0);
                (r.clone(), (b - before.get(r).copied().unwrap_or(0)).saturating_sub(idle) / MESSAGES as u64)
            })
            .collect();
        eprintln!(
            "group of {} members ({n} per region): link bytes into each region per message {into:?} ({took:?} for every copy)",
            3 * n + 1
        );
        // A region without the group's leader gets one copy for its edge: the message and its sessions'
        // ids, not a copy per member.
        for (region, bytes) in into.iter().filter(|(r, _)| r != "eu-west") {
            let one_copy_and_ids = 1300 + 4 * n as u64;
            assert!(*bytes >= 1000, "a 1000-byte message did not reach {region}: {bytes} bytes");
            assert!(*bytes <= one_copy_and_ids, "{bytes} bytes into {region} per message for {n} members there");
        }
        // Every member got every message; repeats (a leadership change mid-run pushes again) are counted,
        // as their bytes are in the figures above.
        let mut repeats = 0;
        for c in &mut receivers {
            let mut seqs = std::collections::BTreeSet::new();
            while seqs.len() < MESSAGES {
                match c.recv_timeout(Duration::from_secs(10)).await {
                    Some(Incoming::Message(m)) if !seqs.insert(m.message_seq) => repeats += 1,
                    Some(Incoming::Message(_)) => {}
                    other => panic!("message {} of group {group}: {other:?}", seqs.len()),
                }
            }
            while let Some(Incoming::Message(_)) = c.recv_timeout(Duration::ZERO).await {
                repeats += 1;
            }
        }
        eprintln!("group of {} members: {repeats} repeated RECVs", 3 * n + 1);
        per_message.push(into.iter().map(|(_, b)| *b).sum::<u64>());
    }
    eprintln!("cross-region link bytes per message: {per_message:?} for {sizes:?} members per region");
}

/// `tern bench send --bootstrap` finds its edge through the deployment's DNS and rides out the loss of
/// its region: every message acked, none failed, each sender reconnected elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tern_bench_finds_its_region_by_dns_and_rides_out_its_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Topology::nodes(3).relays(80).start_regions(tmp.path(), [41, 42, 43]);
    let d = &dev.d;
    let rendered = tmp.path().join("rendered");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["deploy", "render", tmp.path().join("description").to_str().unwrap()])
        .args(["--out", rendered.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let (_, node_1) = d.voters().next().unwrap();
    let api = format!("http://{}:{}", node_1.listen, d.ports.core_http);
    let (bootstrap, summary) = (rendered.join("bootstrap.json"), tmp.path().join("bench.json"));
    let dns = dev.dns().to_string();
    let edge_port = d.ports.edge_tcp.to_string();
    let bench = tokio::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["bench", "send", "--api", &api, "--bootstrap", bootstrap.to_str().unwrap(), "--dns", &dns])
        .args(["--edge-port", &edge_port, "--source", "127.0.43.50", "--senders", "2", "--messages", "150"])
        .args(["--rate", "30", "--max-seconds", "60", "--json", summary.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("bench.log")).unwrap())
        .spawn()
        .unwrap();

    // Both senders are on ap-southeast's edge (DNS answered by their source address); then it is cut.
    common::wait_metric(&dev.edge_http("ap-southeast-1"), "tern_edge_sessions", Duration::from_secs(30), |n| n == 2.0)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    dev.steer("cut", "ap-southeast").await;
    let out =
        tokio::time::timeout(Duration::from_secs(90), bench.wait_with_output()).await.expect("bench hung").unwrap();
    let log = std::fs::read_to_string(tmp.path().join("bench.log")).unwrap_or_default();
    assert!(out.status.success(), "{log}");
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    eprintln!("tern bench across a region cut: {s}");
    assert_eq!((s["acked"].as_u64(), s["failed"].as_u64()), (Some(150), Some(0)), "{s}");
    assert!(s["reconnects"].as_u64().unwrap() >= 2, "{s}");
}

//! The operator console at `/console`: its data endpoints want the admin token, and in a real headless
//! Chromium (`browser/console.mjs`) an operator signs in, sees three nodes and every slot's leader,
//! moves a leader from the page and sees it move, finds an online user's edge, and uses it on a phone;
//! the page and its data also come through an edge's access layer.
//! Screenshots go to the test's directory, or to `TERN_SCREENSHOTS` (docs/console holds current ones).

mod common;

use common::{connect, Topology};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ADMIN: &str = "console-admin-token";
const BUSINESS: &str = "console-business-token";

async fn status(url: &str, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.header("token", t);
    }
    req.send().await.expect("request").status().as_u16()
}

async fn admin_get(url: &str) -> serde_json::Value {
    let r = reqwest::Client::new().get(url).header("token", ADMIN).send().await.expect("request");
    r.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_and_steers_the_cluster_in_a_browser() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../browser");
    assert!(
        browser_dir.join("node_modules/puppeteer-core").is_dir() && Path::new("/usr/bin/chromium").exists(),
        "the console test needs Chromium and puppeteer-core: run scripts/setup"
    );
    let cl =
        Topology::nodes(3).core(&format!("admin_token = \"{ADMIN}\"\nmanager_token = \"{BUSINESS}\"\n")).start().await;
    let mut api = cl.api(0);
    api.token = Some(BUSINESS.into());
    api.user("alice", 0).await;
    api.user("bob", 0).await;
    api.group("team", &["alice", "bob"]).await;
    let alice = connect(&cl.edge.addr("tcp"), "alice", 0).await;
    // Traffic while the operator looks: the rates move, bob has unread messages.
    let traffic = tokio::spawn(async move {
        for n in 0..400 {
            let to = if n % 2 == 0 { ("bob", 1) } else { ("team", 2) };
            let _ = alice.send_text(to.0, to.1, &format!("message {n}")).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        alice
    });

    let base = format!("http://127.0.0.1:{}", cl.http_port(0));
    // The page itself holds no data; what it shows needs the admin token, not the business one.
    assert_eq!(status(&format!("{base}/console"), None).await, 200);
    for path in
        ["/console/api/overview", "/console/api/user?uid=alice", "/console/api/channel?channel_id=g&channel_type=2"]
    {
        assert_eq!(status(&format!("{base}{path}"), None).await, 401, "{path} without a token");
        assert_eq!(status(&format!("{base}{path}"), Some(BUSINESS)).await, 401, "{path} with the business token");
    }
    assert_eq!(status(&format!("{base}/console/api/overview"), Some(ADMIN)).await, 200);
    // Through an edge's access layer too.
    let front_toml = format!(
        "edge_id = \"front\"\n[http_proxy]\naddr = \"127.0.0.1:0\"\n[[http_proxy.upstreams]]\nname = \"core\"\n\
         prefix = \"/\"\naddrs = [\"127.0.0.1:{}\"]\nhealth_path = \"/health\"\n",
        cl.http_port(0)
    );
    let front = common::start_edge(cl.dir.path(), &cl.link_addr(0), &front_toml, 1);
    let proxied = format!("http://{}", front.addr("proxy"));
    assert_eq!(status(&format!("{proxied}/console"), None).await, 200);
    assert_eq!(status(&format!("{proxied}/console/api/overview"), None).await, 401);
    assert_eq!(status(&format!("{proxied}/console/api/overview"), Some(ADMIN)).await, 200);
    drop(front);
    let deadline = Instant::now() + Duration::from_secs(10);
    let edge = loop {
        let user = admin_get(&format!("{base}/console/api/user?uid=alice")).await;
        if let Some(edge) = user["sessions"][0]["edge_id"].as_str() {
            break edge.to_string();
        }
        assert!(Instant::now() < deadline, "alice's session never showed: {user}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let shots = std::env::var("TERN_SCREENSHOTS").unwrap_or_else(|_| cl.dir.path().join("shots").display().to_string());
    let out = Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .env("CONSOLE_URL", format!("{base}/console"))
        .env("ADMIN_TOKEN", ADMIN)
        .env("ONLINE_UID", "alice")
        .env("ONLINE_EDGE", &edge)
        .env("GROUP_ID", "team")
        .env("SHOTS", &shots)
        .output()
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value =
        stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or_else(|| {
            panic!("no result from the browser:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
        });
    assert_eq!(result["ok"], true, "{result:#}\n{}", String::from_utf8_lossy(&out.stderr));

    // The move the page showed is the cluster's.
    let to = result["moved"]["to"].as_u64().expect("moved to");
    let cluster = admin_get(&format!("{base}/cluster")).await;
    assert_eq!(cluster["groups"][0]["leader"].as_u64(), Some(to), "{cluster}");
    traffic.abort();
    // A node that goes away shows as unreachable within a few heartbeats.
    assert_eq!(admin_get(&format!("{base}/console/api/overview")).await["reachable"]["3"], true);
    let mut cl = cl;
    cl.kill(2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin_get(&format!("{base}/console/api/overview")).await["reachable"]["3"] != false {
        assert!(Instant::now() < deadline, "node 3 still shown reachable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for shot in ["login.png", "core.png", "deployment.png", "users.png", "channels.png", "core-phone.png"] {
        assert!(Path::new(&shots).join(shot).exists(), "{shot} not saved");
    }
}

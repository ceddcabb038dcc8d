//! The edge's HTTP access layer (pingora) in front of the core's API: proxying, `/route` preferring
//! the edge a client came through, WebSocket upgrades, per-address rate limits, metrics and access
//! logs; and, in front of a 3-node core, requests that keep succeeding while a node is killed.

mod common;

use common::{connect, metric, start_edge, wait_edge_up, wait_metric, Api, Topology};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tern_shared::client::{Client, ClientOptions, Incoming};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Writes `request` and reads until the proxy closes the connection.
async fn exchange_until_closed<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &str) -> String {
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection stayed open after {:?}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).into_owned()
}

async fn raw(addr: &str, request: &str) -> String {
    exchange_until_closed(tokio::net::TcpStream::connect(addr).await.unwrap(), request).await
}

/// An upgrade request the core's API does not take up (it answers `/route` as usual).
const REFUSED_UPGRADE: &str =
    "GET /route?uid=alice HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

/// A backend that answers every request (upgrades too) with a 403 whose body comes 200 ms after its
/// head, and keeps the connection open. Returns its address and the request heads it received.
async fn slow_refuser() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                // One request per read (they are small), answered in turn on a kept-alive connection.
                let mut buf = vec![0; 4096];
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 10\r\n\r\n01234").await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = s.write_all(b"56789").await;
                }
            });
        }
    });
    (addr, heads)
}

/// `[http_proxy]` settings with one upstream group per `(name, prefix, addrs)`.
fn proxy_toml(extra: &str, upstreams: &[(&str, &str, Vec<String>)]) -> String {
    let mut t = format!("[http_proxy]\naddr = \"127.0.0.1:0\"\n{extra}\n");
    for (name, prefix, addrs) in upstreams {
        let addrs: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
        let health = if *name == "core" { "/health" } else { "" };
        t += &format!(
            "[[http_proxy.upstreams]]\nname = \"{name}\"\nprefix = \"{prefix}\"\naddrs = [{}]\nhealth_path = \"{health}\"\n",
            addrs.join(", ")
        );
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_the_api_routes_to_the_nearest_edge_upgrades_websockets_and_limits_rates() {
    let cl = Topology::nodes(1).start().await;
    let (slow, heads) = slow_refuser().await;
    let cert = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
    let (pem, key) = (cl.dir.path().join("a.pem"), cl.dir.path().join("a.key"));
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let toml = format!(
        "edge_id = \"edge-front\"\nregion = \"eu\"\n{}[[certs]]\ncert = \"{}\"\nkey = \"{}\"\n",
        proxy_toml(
            "requests_per_sec_per_ip = 40\ntls_addr = \"127.0.0.1:0\"",
            &[
                ("core", "/", vec![cl.node(0).addr("http")]),
                ("chat", "/chat", vec![cl.edge.addr("ws")]),
                ("slow", "/slow", vec![slow]),
            ],
        ),
        pem.display(),
        key.display()
    );
    let front = start_edge(cl.dir.path(), &cl.node(0).addr("link"), &toml, 1);
    wait_edge_up(&front).await;
    let via = Api::new(&front.addr("proxy"));

    // The API through the proxy; the edge answers its own health.
    via.user("alice", 0).await;
    via.user("bob", 0).await;
    assert_eq!(via.ok_get("/healthz").await["status"], "ok");

    // `/route` through the front edge names that edge first, then the other edge of its region, then
    // the rest; straight at the core the first is chosen per uid.
    let neighbour = start_edge(cl.dir.path(), &cl.node(0).addr("link"), "edge_id = \"edge-eu-2\"\nregion = \"eu\"", 2);
    wait_edge_up(&neighbour).await;
    let route = via.ok_get("/route?uid=alice").await;
    assert_eq!(
        (route["tcp_addr"].as_str(), route["region"].as_str()),
        (Some(front.addr("tcp").as_str()), Some("eu")),
        "{route}"
    );
    assert_eq!(route["fallback"][0]["tcp_addr"], neighbour.addr("tcp"), "{route}");
    assert_eq!(route["fallback"][1]["tcp_addr"], cl.tcp(), "{route}");
    let direct = cl.api.ok_get("/route?uid=alice").await;
    assert_eq!(direct["fallback"].as_array().map(Vec::len), Some(2));

    // A WebSocket session through the proxy's `/chat` upstream (the back edge's ws listener).
    let mut o = ClientOptions::new(format!("ws://{}/chat", front.addr("proxy")), "alice", "alice-tok");
    o.device_flag = 0;
    let alice = Client::connect(o).await.expect("websocket through the proxy");
    let mut bob = connect(&cl.tcp(), "bob", 0).await;
    let ack = alice.send_text("bob", 1, "through pingora").await.expect("send");
    assert_eq!(ack.reason_code, 1);
    match bob.recv_timeout(Duration::from_secs(5)).await {
        Some(Incoming::Message(m)) => assert_eq!(m.message_seq, ack.message_seq),
        other => panic!("bob expected the message, got {other:?}"),
    }
    let back = alice.send_text("bob", 1, "still open").await.expect("second send on the upgraded connection");
    assert_eq!(back.message_seq, ack.message_seq + 1);

    // The same over the proxy's HTTPS listener: TLS with the edge's certificate, then the tunnel.
    let roots = tern_shared::tls::client_config(cert.cert.pem().as_bytes()).unwrap();
    let mut o = ClientOptions::new(format!("wss://{}/chat", front.addr("proxy_tls")), "bob", "bob-tok");
    o.tls = Some(roots.clone());
    o.server_name = Some("a.test".into());
    let bob_wss = Client::connect(o).await.expect("wss through the proxy");
    let to_alice = bob_wss.send_text("alice", 1, "over the https listener").await.expect("send over wss");
    assert_eq!(to_alice.reason_code, 1);
    let admin = front.addr("http");
    wait_metric(&admin, "tern_edge_proxy_tunnels", Duration::from_secs(5), |v| v == 2.0).await;
    // Plain requests on the HTTPS listener go through pingora.
    let tcp = tokio::net::TcpStream::connect(front.addr("proxy_tls")).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("a.test").unwrap();
    let tls =
        tokio_rustls::TlsConnector::from(roots.clone()).connect(name.clone(), tcp).await.expect("https handshake");
    let health = exchange_until_closed(tls, "GET /healthz HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200") && health.contains("\"ok\""), "{health}");
    // A client that offers HTTP/2 gets it; the backend still gets HTTP/1.1.
    let mut h2_config = (*roots).clone();
    h2_config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(front.addr("proxy_tls")).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(h2_config)).connect(name, tcp).await.expect("h2 handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, connection) = h2::client::handshake(tls).await.expect("h2 preface");
    tokio::spawn(connection);
    let request = http::Request::get("https://a.test/route?uid=alice").body(()).unwrap();
    let (answer, _) = h2.send_request(request, true).expect("h2 request");
    let answer = answer.await.expect("h2 answer");
    assert_eq!(answer.status(), 200);
    let mut body = answer.into_body();
    let mut route = Vec::new();
    while let Some(chunk) = body.data().await {
        route.extend_from_slice(&chunk.expect("h2 body"));
    }
    let route: serde_json::Value = serde_json::from_slice(&route).expect("json over h2");
    assert_eq!(route["tcp_addr"].as_str(), Some(front.addr("tcp").as_str()), "{route}");
    // A tunnel ends with either side: a WebSocket that goes away is no longer counted.
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/chat", front.addr("proxy"))).await.unwrap();
    wait_metric(&admin, "tern_edge_proxy_tunnels", Duration::from_secs(5), |v| v == 3.0).await;
    drop(ws);
    wait_metric(&admin, "tern_edge_proxy_tunnels", Duration::from_secs(5), |v| v == 2.0).await;

    // An upgrade the backend refuses: its answer reaches the client, then the connection ends.
    let refused = raw(&front.addr("proxy"), REFUSED_UPGRADE).await;
    assert!(refused.starts_with("HTTP/1.1 200") && refused.contains("tcp_addr"), "{refused}");
    // Also when the refusal's body comes later than its head and the backend keeps the connection;
    // the backend sees this hop's forwarding headers.
    let upgrade = "GET /slow HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   X-Forwarded-For: 10.1.1.1\r\n\r\n";
    let refused = raw(&front.addr("proxy"), upgrade).await;
    assert!(refused.starts_with("HTTP/1.1 403") && refused.ends_with("\r\n\r\n0123456789"), "{refused}");
    let head = heads.lock().unwrap().pop().unwrap_or_default();
    assert!(head.contains("x-forwarded-for: 10.1.1.1, 127.0.0.1\r\n"), "{head}");
    assert!(head.contains("x-tern-edge: edge-front\r\n") && head.contains("x-forwarded-proto: http\r\n"), "{head}");

    // Past 40 requests/s from one address the proxy answers 429 itself.
    let http = reqwest::Client::new();
    let url = format!("http://{}/route?uid=alice", front.addr("proxy"));
    let mut codes = Vec::new();
    for _ in 0..120 {
        codes.push(http.get(&url).send().await.expect("request").status().as_u16());
    }
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert!(limited > 0 && codes.iter().all(|c| *c == 200 || *c == 429), "{codes:?}");
    assert!(codes.iter().take(30).all(|c| *c == 200), "the first requests are under the limit: {codes:?}");

    // Upgrades count against the same per-address rate.
    let mut upgrade_limited = false;
    for _ in 0..100 {
        let answer = raw(&front.addr("proxy"), REFUSED_UPGRADE).await;
        if answer.starts_with("HTTP/1.1 429") {
            upgrade_limited = answer.contains("\"rate\"");
            break;
        }
    }
    assert!(upgrade_limited, "an upgrade past the rate limit was let through");

    let ok = metric(&admin, "tern_edge_proxy_requests_total{code=\"2xx\",upstream=\"core\"}").await;
    assert!(ok.unwrap_or(0.0) >= 5.0, "2xx count: {ok:?}");
    let rejected = metric(&admin, "tern_edge_proxy_rejected_total{reason=\"rate\"}").await;
    assert!(rejected.is_some_and(|r| r > limited as f64), "{rejected:?}");
    let core_up = format!("tern_edge_proxy_backend_up{{backend=\"{}\",upstream=\"core\"}}", cl.node(0).addr("http"));
    assert_eq!(metric(&admin, &core_up).await, Some(1.0));

    let log = std::fs::read_to_string(cl.dir.path().join("edge-1.log")).unwrap_or_default();
    let line = log.lines().find(|l| l.contains("tern_edge::access") && l.contains("/user/token"));
    assert!(line.is_some_and(|l| l.contains("status=200") && l.contains("upstream=core")), "access log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_keep_succeeding_while_a_core_node_is_killed() {
    let mut cl = Topology::nodes(3).start().await;
    let apis: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", cl.http_port(i))).collect();
    let toml = format!(
        "edge_id = \"edge-front\"\n{}",
        proxy_toml("health_interval_ms = 200\neject_after = 1", &[("core", "/", apis.clone())])
    );
    let link_addrs: Vec<String> = (0..3).map(|i| cl.link_addr(i)).collect();
    let front = start_edge(cl.dir.path(), &link_addrs.join(","), &toml, 1);
    wait_edge_up(&front).await;
    let proxy = front.addr("proxy");
    let victim = cl.leader_of(0).await;

    // Four clients read `/route` (served by whichever node gets it) for 5 s; the leader dies at 1.5 s.
    let stop_at = Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for c in 0..4 {
        let url = format!("http://{proxy}/route?uid=u{c}");
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut ok, mut failed) = (0u32, Vec::new());
            while Instant::now() < stop_at {
                match http.get(&url).timeout(Duration::from_secs(5)).send().await {
                    Ok(r) if r.status().is_success() => ok += 1,
                    Ok(r) => failed.push(r.status().as_u16().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cl.kill(victim);
    let mut total = 0;
    for t in tasks {
        let (ok, failed) = t.await.expect("client task");
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        total += ok;
    }
    assert!(total > 100, "only {total} requests in 5 s");

    // The active check marks the dead node down; the others stay up.
    let admin = front.addr("http");
    let dead = format!("tern_edge_proxy_backend_up{{backend=\"{}\",upstream=\"core\"}}", apis[victim]);
    wait_metric(&admin, &dead, Duration::from_secs(5), |v| v == 0.0).await;
    for api in apis.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, api)| api) {
        let up = format!("tern_edge_proxy_backend_up{{backend=\"{api}\",upstream=\"core\"}}");
        // A new leader is elected within seconds; until then the survivors' /health says 503.
        wait_metric(&admin, &up, Duration::from_secs(10), |v| v == 1.0).await;
    }
    let retried = metric(&admin, "tern_edge_proxy_retries_total").await.unwrap_or(0.0);
    let ejected = metric(&admin, "tern_edge_proxy_ejections_total{upstream=\"core\"}").await.unwrap_or(0.0);
    eprintln!("{total} requests, {retried} retried on another node, {ejected} ejections");
    assert!(retried >= 1.0, "requests that met the dead node were retried elsewhere");
}

/// Reads from `s` until `marker` has arrived (5 s at most); returns all of it.
async fn read_until(s: &mut tokio::net::TcpStream, marker: &str) -> String {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&got).contains(marker) {
        let mut buf = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!("{marker:?} never came ({other:?}): {:?}", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_is_not_forwarded_unless_configured() {
    let cl = Topology::nodes(1).start().await;
    let core = vec![cl.node(0).addr("http")];
    let closed = format!("edge_id = \"edge-closed\"\n{}", proxy_toml("", &[("core", "/", core.clone())]));
    let open = format!("edge_id = \"edge-open\"\n{}", proxy_toml("forward_cluster = true", &[("core", "/", core)]));
    let (closed, open) = (
        start_edge(cl.dir.path(), &cl.node(0).addr("link"), &closed, 1),
        start_edge(cl.dir.path(), &cl.node(0).addr("link"), &open, 2),
    );
    let via = Api::new(&closed.addr("proxy"));
    let (status, body) = via.post("/cluster/leader/balance", serde_json::json!({})).await;
    assert_eq!((status, body["msg"].as_str()), (403, Some("cluster_api")), "{body}");
    // However it is spelled, and as an upgrade too.
    let mut s = tokio::net::TcpStream::connect(closed.addr("proxy")).await.unwrap();
    let upgrade = "GET //%63luster HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    s.write_all(upgrade.as_bytes()).await.unwrap();
    let answer = read_until(&mut s, "cluster_api").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    via.user("alice", 0).await;

    let (status, body) = Api::new(&open.addr("proxy")).post("/cluster/leader/balance", serde_json::json!({})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_load_balancer_the_proxy_header_names_the_client_whose_connections_are_limited() {
    let cl = Topology::nodes(1).start().await;
    let (slow, heads) = slow_refuser().await;
    let toml = format!(
        "edge_id = \"edge-front\"\n{}",
        proxy_toml("proxy_protocol = true\nmax_conns_per_ip = 1\nread_timeout_ms = 1500", &[("slow", "/", vec![slow])])
    );
    let front = start_edge(cl.dir.path(), &cl.node(0).addr("link"), &toml, 1);
    wait_edge_up(&front).await;
    let proxy = front.addr("proxy");
    let request = |src: &str| format!("PROXY TCP4 {src} 127.0.0.1 40000 80\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n");

    // A kept-alive connection the load balancer opened for 203.0.113.7.
    let mut first = tokio::net::TcpStream::connect(&proxy).await.unwrap();
    first.write_all(request("203.0.113.7").as_bytes()).await.unwrap();
    let answer = read_until(&mut first, "0123456789").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let head = heads.lock().unwrap().pop().unwrap_or_default();
    assert!(head.contains("x-forwarded-for: 203.0.113.7\r\n"), "{head}");

    // While it is open, a second connection for that client is closed unanswered; another client's is served.
    assert_eq!(raw(&proxy, &request("203.0.113.7")).await, "");
    let mut other = tokio::net::TcpStream::connect(&proxy).await.unwrap();
    other.write_all(request("198.51.100.1").as_bytes()).await.unwrap();
    assert!(read_until(&mut other, "0123456789").await.starts_with("HTTP/1.1 403"));
    // Without a PROXY header a connection gets nothing.
    assert_eq!(raw(&proxy, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n").await, "");
    // A head trickling in a byte at a time is cut off at `read_timeout_ms` from the first byte.
    let mut trickle = tokio::net::TcpStream::connect(&proxy).await.unwrap();
    trickle.write_all(b"PROXY TCP4 192.0.2.1 127.0.0.1 40000 80\r\n").await.unwrap();
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /x HTTP/1.1\r\nHost: t\r\n".iter().cycle().take(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if trickle.write_all(&[*b]).await.is_err() || matches!(trickle.try_read(&mut [0u8; 16]), Ok(0)) {
            cut = true;
            break;
        }
    }
    assert!(cut && started.elapsed() < Duration::from_millis(3500), "cut {cut} after {:?}", started.elapsed());

    let admin = front.addr("http");
    assert_eq!(metric(&admin, "tern_edge_proxy_rejected_total{reason=\"conns\"}").await, Some(1.0));
    assert_eq!(metric(&admin, "tern_edge_proxy_rejected_total{reason=\"proxy_header\"}").await, Some(1.0));
    let log = std::fs::read_to_string(cl.dir.path().join("edge-1.log")).unwrap_or_default();
    assert!(log.lines().any(|l| l.contains("tern_edge::access") && l.contains("client=203.0.113.7")), "{log}");
    drop(first);
}

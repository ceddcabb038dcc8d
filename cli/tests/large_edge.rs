//! A very large edge: its presence snapshot after a relink is sent in chunks, so an edge holding a
//! million sessions links again and the core knows every one of them.

mod common;

use common::{metric, Api, Proc};
use std::time::{Duration, Instant};
use tern_shared::link::{codec, io, LinkFrame, SessionInfo, LINK_VERSION};
use tern_shared::secret::{session_proof, user_token_hash};
use tokio::io::AsyncWriteExt;

const UIDS: usize = 10_000;
const SESSIONS: usize = 1_000_000;
/// As a real edge chunks its snapshot.
const CHUNK: usize = 20_000;

fn encoded(frame: &LinkFrame) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(frame, &mut out).unwrap();
    out
}

async fn online(http: &str) -> f64 {
    metric(http, "tern_core_online_sessions").await.unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_with_a_million_sessions_relinks_and_the_core_knows_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let core = Proc::core_with_toml(dir.path(), "");
    let http = core.addr("http");
    let api = std::sync::Arc::new(Api::new(&http));
    let uids: Vec<String> = (0..UIDS).map(|n| format!("u{n}")).collect();
    let mut setting = tokio::task::JoinSet::new();
    for part in uids.chunks(UIDS / 32) {
        let (api, part) = (api.clone(), part.to_vec());
        setting.spawn(async move {
            for uid in part {
                api.ok("/user/token", serde_json::json!({"uid": uid, "token": format!("{uid}-tok")})).await;
            }
        });
    }
    setting.join_all().await;
    let hashes: Vec<[u8; 32]> = uids.iter().map(|u| user_token_hash(u, &format!("{u}-tok"))).collect();
    let sessions: Vec<SessionInfo> = (0..SESSIONS)
        .map(|n| {
            let (uid, session) = (n % UIDS, n as u64 + 1);
            SessionInfo {
                session,
                uid: uids[uid].clone(),
                device_flag: 0,
                device_level: 0,
                proof: session_proof(&hashes[uid], "edge-big", session, 0),
                ..Default::default()
            }
        })
        .collect();

    // Encoded beforehand, so this process only copies bytes while the core takes them in (and the
    // pong reader is not starved of CPU).
    let mut frames = Vec::new();
    for (n, chunk) in sessions.chunks(CHUNK).enumerate() {
        let frame =
            if n == 0 { LinkFrame::PresenceSnapshot(chunk.to_vec()) } else { LinkFrame::PresenceMore(chunk.to_vec()) };
        codec::encode(&frame, &mut frames).unwrap();
        codec::encode(&LinkFrame::Ping(n as u64), &mut frames).unwrap();
    }
    drop(sessions);

    for round in ["first link", "relink"] {
        let started = Instant::now();
        let tcp = tokio::net::TcpStream::connect(core.addr("link")).await.unwrap();
        let (r, mut w) = tokio::io::split(tcp);
        let hello = LinkFrame::Hello {
            version: LINK_VERSION,
            edge_id: "edge-big".into(),
            addrs: Default::default(),
            lane: 0,
            instance: round.len() as u64,
        };
        w.write_all(&encoded(&hello)).await.unwrap();
        let mut reader = io::FrameReader::new(r);
        assert!(matches!(reader.next().await, Ok(Some(LinkFrame::HelloAck { .. }))));
        // The longest wait between pongs while the core takes the snapshot in: a real edge gives up on
        // a link after 3 s without a frame.
        let pongs = tokio::spawn(async move {
            let (mut last, mut longest) = (Instant::now(), Duration::ZERO);
            while let Ok(Some(frame)) = reader.next().await {
                if matches!(frame, LinkFrame::Pong { .. }) {
                    longest = longest.max(last.elapsed());
                    last = Instant::now();
                }
            }
            longest
        });
        w.write_all(&frames).await.unwrap();
        let deadline = started + Duration::from_secs(180);
        while online(&http).await != SESSIONS as f64 {
            assert!(Instant::now() < deadline, "{round}: the core knows {} sessions", online(&http).await);
            w.write_all(&encoded(&LinkFrame::Ping(0))).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let took = started.elapsed();
        w.shutdown().await.unwrap();
        let longest = pongs.await.unwrap();
        eprintln!(
            "{round}: {SESSIONS} sessions known to the core {took:?} after connecting; pongs at most {longest:?} apart"
        );
        assert!(longest < Duration::from_secs(2), "{round}: no pong for {longest:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while online(&http).await != 0.0 {
            assert!(Instant::now() < deadline, "the link's sessions outlived it");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

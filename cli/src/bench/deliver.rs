//! `tern bench deliver`: one group with every receiver online and one sender sending at a set rate.
//! Each receiver checks what it gets: arrival latency (the payload carries the send time), order (seqs
//! strictly increasing) and duplicates; missing deliveries are counted at the end.

use super::{ms, progress, run_tag, Api};
use anyhow::{bail, Context};
use clap::Args;
use futures_util::{stream, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::{Duration, Instant};
use tern_shared::channel::kind;
use tern_shared::client::{Client, ClientOptions, Incoming, Outgoing};

#[derive(Args, Clone)]
pub struct DeliverArgs {
    #[command(flatten)]
    api: Api,
    /// Edge address: host:port (TCP) or ws://host:port.
    #[arg(long, default_value = "127.0.0.1:5100")]
    addr: String,
    /// Group members online and receiving (the sender is one more).
    #[arg(long, default_value_t = 500)]
    receivers: u64,
    /// Group members who stay offline (they cost the fan-out a membership scan, not a delivery).
    #[arg(long, default_value_t = 0)]
    offline: u64,
    /// Messages the sender sends.
    #[arg(long, default_value_t = 200)]
    messages: u64,
    /// Messages per second from the sender.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Payload bytes (padding after the timestamp).
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Receivers stop waiting this long after the last send.
    #[arg(long, default_value_t = 10)]
    drain_seconds: u64,
}

#[derive(Serialize)]
struct Summary {
    receivers: u64,
    offline_members: u64,
    sent_acked: u64,
    expected_deliveries: u64,
    delivered: u64,
    missing: u64,
    duplicates: u64,
    out_of_order: u64,
    seconds: f64,
    deliveries_per_sec: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_p999_ms: f64,
    latency_max_ms: f64,
}

#[derive(Default)]
struct Seen {
    delivered: u64,
    duplicates: u64,
    out_of_order: u64,
    latency_us: Option<Histogram<u64>>,
}

/// Microseconds since the epoch; sender and receivers share the machine's clock.
fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

async fn receive(mut c: Client, expect: u64, until: Instant) -> Seen {
    let mut seen = Seen { latency_us: Histogram::new(3).ok(), ..Default::default() };
    let mut last_seq = 0u32;
    let mut got = std::collections::HashSet::new();
    while seen.delivered < expect {
        let left = until.saturating_duration_since(Instant::now());
        let Some(Incoming::Message(m)) = c.recv_timeout(left).await else { break };
        let sent_us: i64 = std::str::from_utf8(&m.payload)
            .ok()
            .and_then(|p| p.split('|').nth(1))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if !got.insert(m.message_seq) {
            seen.duplicates += 1;
            continue;
        }
        if m.message_seq <= last_seq {
            seen.out_of_order += 1;
        }
        last_seq = last_seq.max(m.message_seq);
        seen.delivered += 1;
        if let Some(h) = seen.latency_us.as_mut() {
            let _ = h.record((now_us() - sent_us).max(0) as u64);
        }
    }
    seen
}

pub async fn run(a: DeliverArgs) -> anyhow::Result<()> {
    if a.receivers == 0 || a.messages == 0 || a.rate == 0 {
        bail!("--receivers, --messages and --rate must be non-zero");
    }
    tern_shared::limits::raise_fd_limit(a.receivers + 64, "this load tool");
    let http = reqwest::Client::new();
    let tag = run_tag();
    let group = format!("deliver-{tag}");
    let sender_uid = format!("dsend-{tag}");
    let uids: Vec<String> = (0..a.receivers).map(|i| format!("drecv-{tag}-{i}")).collect();
    a.api.user(&http, &sender_uid, false).await?;
    let body = serde_json::json!({"channel_id": group, "channel_type": 2, "subscribers": [sender_uid]});
    a.api.post(&http, "/channel", body).await?;
    let offline: Vec<String> = (0..a.offline).map(|i| format!("doff-{tag}-{i}")).collect();
    for chunk in offline.chunks(1000) {
        let body = serde_json::json!({"channel_id": group, "channel_type": 2, "subscribers": chunk});
        a.api.post(&http, "/channel/subscriber_add", body).await?;
    }
    let bar = progress(a.receivers, "receivers online");
    let clients: Vec<anyhow::Result<Client>> = stream::iter(uids.chunks(1000).map(|c| c.to_vec()).collect::<Vec<_>>())
        .then(|chunk| {
            let (http, api, group) = (&http, &a.api, &group);
            async move {
                let body = serde_json::json!({"channel_id": group, "channel_type": 2, "subscribers": chunk});
                api.post(http, "/channel/subscriber_add", body).await?;
                Ok::<_, anyhow::Error>(chunk)
            }
        })
        .map(|chunk| {
            let (http, api, addr, bar) = (&http, &a.api, &a.addr, &bar);
            async move {
                let chunk = chunk?;
                let mut out = Vec::new();
                for uid in chunk {
                    api.user(http, &uid, false).await?;
                    out.push(Client::connect(ClientOptions::new(addr.clone(), uid, "t")).await?);
                    bar.inc(1);
                }
                Ok::<_, anyhow::Error>(out)
            }
        })
        .buffer_unordered(8)
        .flat_map(|r: anyhow::Result<Vec<Client>>| match r {
            Ok(v) => stream::iter(v.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => stream::iter(vec![Err(e)]),
        })
        .collect()
        .await;
    bar.finish_and_clear();
    let clients: Vec<Client> =
        clients.into_iter().collect::<anyhow::Result<_>>().context("bringing receivers online")?;
    let sender = Client::connect(ClientOptions::new(a.addr.clone(), sender_uid, "t")).await?;

    let send_window = Duration::from_secs_f64(a.messages as f64 / a.rate as f64);
    let until = Instant::now() + send_window + Duration::from_secs(a.drain_seconds);
    let receivers: Vec<_> = clients.into_iter().map(|c| tokio::spawn(receive(c, a.messages, until))).collect();
    let bar = progress(a.messages, "sent");
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / a.rate as f64));
    let mut acked = 0;
    let pad = "x".repeat(a.payload.saturating_sub(24));
    for i in 0..a.messages {
        tick.tick().await;
        let payload = format!("{i}|{}|{pad}", now_us()).into_bytes();
        let msg = Outgoing { channel_id: group.clone(), channel_type: kind::GROUP, payload, ..Default::default() };
        if matches!(sender.send(msg).await, Ok(ack) if ack.reason_code == 1) {
            acked += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut hist = Histogram::<u64>::new(3)?;
    let (mut delivered, mut duplicates, mut out_of_order) = (0, 0, 0);
    for r in receivers {
        let seen = r.await?;
        delivered += seen.delivered;
        duplicates += seen.duplicates;
        out_of_order += seen.out_of_order;
        if let Some(h) = seen.latency_us {
            hist.add(h)?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let expected = acked * a.receivers;
    let s = Summary {
        receivers: a.receivers,
        offline_members: a.offline,
        sent_acked: acked,
        expected_deliveries: expected,
        delivered,
        missing: expected.saturating_sub(delivered),
        duplicates,
        out_of_order,
        seconds,
        deliveries_per_sec: delivered as f64 / seconds,
        latency_p50_ms: ms(&hist, 0.5),
        latency_p99_ms: ms(&hist, 0.99),
        latency_p999_ms: ms(&hist, 0.999),
        latency_max_ms: hist.max() as f64 / 1000.0,
    };
    a.api.report("bench deliver", &s)
}

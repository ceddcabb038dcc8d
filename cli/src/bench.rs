//! `tern bench send`: many senders, each sending one message at a time and waiting for its SENDACK, so
//! the latency measured is store-then-ack latency. Bounded by a message count and a time limit.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_shared::channel::kind;
use tern_shared::client::{Client, ClientOptions, Outgoing};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Sender-acked throughput and ack latency.
    Send(SendArgs),
}

#[derive(Args, Clone)]
pub struct SendArgs {
    /// Core HTTP API, used to create the benchmark users.
    #[arg(long, default_value = "http://127.0.0.1:5001")]
    api: String,
    #[arg(long)]
    manager_token: Option<String>,
    /// Edge address: host:port (TCP) or ws://host:port.
    #[arg(long, default_value = "127.0.0.1:5100")]
    addr: String,
    /// Concurrent senders, each on its own connection.
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Messages in total across all senders.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Stop after this many seconds even if messages remain.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
    /// Also write the JSON summary here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Summary {
    senders: usize,
    payload_bytes: usize,
    acked: u64,
    failed: u64,
    seconds: f64,
    acked_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Send(a) => send(a).await,
    }
}

async fn api_post(http: &reqwest::Client, a: &SendArgs, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
    let mut req = http.post(format!("{}{path}", a.api)).json(&body);
    if let Some(t) = &a.manager_token {
        req = req.header("token", t);
    }
    let resp = req.send().await.with_context(|| format!("POST {path}"))?;
    if !resp.status().is_success() {
        bail!("POST {path}: {} {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    Ok(())
}

async fn send(a: SendArgs) -> anyhow::Result<()> {
    if a.senders == 0 {
        bail!("--senders must be at least 1");
    }
    let http = reqwest::Client::new();
    let run_id = tern_shared::client::random_msg_no()[..8].to_string();
    let mut clients = Vec::new();
    for i in 0..a.senders {
        let uid = format!("bench-{run_id}-{i}");
        api_post(&http, &a, "/user/token", serde_json::json!({"uid": uid, "token": "t", "device_flag": 0})).await?;
        clients.push(Client::connect(ClientOptions::new(a.addr.clone(), uid, "t")).await?);
    }
    let payload = vec![b'x'; a.payload];
    let remaining = Arc::new(AtomicU64::new(a.messages));
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let bar = ProgressBar::new(a.messages);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} acked {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        let (remaining, stop, failed, bar, payload) =
            (remaining.clone(), stop.clone(), failed.clone(), bar.clone(), payload.clone());
        let peer = format!("bench-{run_id}-peer-{i}");
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"));
            while !stop.load(Ordering::Relaxed)
                && remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
            {
                let t = Instant::now();
                let msg = Outgoing {
                    channel_id: peer.clone(),
                    channel_type: kind::PERSON,
                    payload: payload.clone(),
                    ..Default::default()
                };
                match client.send(msg).await {
                    Ok(ack) if ack.reason_code == 1 => {
                        let _ = hist.record(t.elapsed().as_micros() as u64);
                        bar.inc(1);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            hist
        }));
    }
    let limit = Duration::from_secs(a.max_seconds);
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut hist = Histogram::<u64>::new(3)?;
    for t in tasks {
        hist.add(t.await?)?;
    }
    timer.abort();
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let s = Summary {
        senders: a.senders,
        payload_bytes: a.payload,
        acked: hist.len(),
        failed: failed.load(Ordering::Relaxed),
        seconds,
        acked_per_sec: hist.len() as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1000.0,
    };
    println!("| senders | payload | acked | failed | seconds | acked msgs/s | p50 ms | p99 ms | p99.9 ms | max ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} B | {} | {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
        s.senders,
        s.payload_bytes,
        s.acked,
        s.failed,
        s.seconds,
        s.acked_per_sec,
        s.p50_ms,
        s.p99_ms,
        s.p999_ms,
        s.max_ms
    );
    let json = serde_json::to_string_pretty(&s)?;
    println!("{json}");
    if let Some(path) = a.json {
        std::fs::write(path, json)?;
    }
    Ok(())
}

//! `tern bench send`: many senders, each sending one message at a time and waiting for its SENDACK, so
//! the latency measured is store-then-ack latency.

use super::{ms, progress, run_tag, Api};
use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_shared::channel::kind;
use tern_shared::client::roam::{Bootstrap, RoamOptions, Roaming};
use tern_shared::client::{Client, ClientOptions, Outgoing};

#[derive(Args, Clone)]
pub struct SendArgs {
    #[command(flatten)]
    api: Api,
    /// Edge address: host:port (TCP), ws://host:port[/path], or wss:// and tls:// ones (with --ca).
    #[arg(long, default_value = "127.0.0.1:5100")]
    addr: String,
    /// CA certificate (PEM) that the edge's TLS certificate chains to.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// SNI name for TLS.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Messages per second across all senders (0: each sends its next as soon as the last is acked).
    #[arg(long, default_value_t = 0)]
    rate: u64,
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
    /// Find edges through a deployment's DNS instead of --addr: the client bootstrap list that `tern
    /// deploy render` writes. A sender that loses its edge reconnects down its region's fallback list
    /// and resends (same client_msg_no) as the client library does; a send counts as failed only when
    /// no edge takes it within 60 s.
    #[arg(long)]
    bootstrap: Option<std::path::PathBuf>,
    /// With --bootstrap: the DNS server to ask (the system's resolvers if unset).
    #[arg(long)]
    dns: Option<std::net::SocketAddr>,
    /// With --bootstrap: the edges' client TCP port (`ports.edge_tcp`).
    #[arg(long, default_value_t = 5100)]
    edge_port: u16,
    /// Source address of the senders' connections (and DNS queries: DNS picks the region by it).
    #[arg(long)]
    source: Option<std::net::IpAddr>,
}

/// A sender's connection: to one edge, or through DNS to whichever edge answers.
enum Sender {
    Direct(Client),
    Roaming(Box<Roaming>),
}

impl Sender {
    /// The SENDACK's reason code, or `None` when the send failed.
    async fn send(&mut self, msg: Outgoing) -> Option<u8> {
        match self {
            Sender::Direct(c) => c.send(msg).await.ok().map(|a| a.reason_code),
            Sender::Roaming(r) => r.send(msg).await.ok().map(|a| a.reason_code),
        }
    }

    fn reconnects(&self) -> u32 {
        match self {
            Sender::Direct(_) => 0,
            Sender::Roaming(r) => r.reconnects(),
        }
    }
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
    /// Connections made after each sender's first (with --bootstrap).
    reconnects: u64,
}

pub async fn run(a: SendArgs) -> anyhow::Result<()> {
    if a.senders == 0 {
        bail!("--senders must be at least 1");
    }
    let http = reqwest::Client::new();
    let tag = run_tag();
    let tls = match &a.ca {
        Some(ca) => Some(tern_shared::tls::client_config(&std::fs::read(ca).context("reading --ca")?)?),
        None if a.addr.starts_with("wss://") || a.addr.starts_with("tls://") => bail!("{} needs --ca", a.addr),
        None => None,
    };
    let bootstrap: Option<Bootstrap> = match &a.bootstrap {
        Some(path) => {
            let text = std::fs::read(path).with_context(|| format!("reading --bootstrap {}", path.display()))?;
            Some(serde_json::from_slice(&text).with_context(|| format!("--bootstrap {}", path.display()))?)
        }
        None => None,
    };
    let mut clients = Vec::new();
    for i in 0..a.senders {
        let uid = format!("bench-{tag}-{i}");
        a.api.user(&http, &uid, false).await?;
        let mut o = ClientOptions::new(a.addr.clone(), uid, "t");
        o.tls = tls.clone();
        o.server_name = Some(a.server_name.clone());
        o.source = a.source;
        clients.push(match &bootstrap {
            Some(b) => {
                let mut r = RoamOptions::new(b.clone(), a.edge_port, o);
                r.dns = a.dns;
                Sender::Roaming(Box::new(Roaming::connect(r).await?))
            }
            None => Sender::Direct(Client::connect(o).await?),
        });
    }
    // Each sender's share of --rate, as the gap between its sends.
    let gap = (a.rate > 0).then(|| Duration::from_secs_f64(a.senders as f64 / a.rate as f64));
    let payload = vec![b'x'; a.payload];
    let remaining = Arc::new(AtomicU64::new(a.messages));
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let bar = progress(a.messages, "acked");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let (remaining, stop, failed, bar, payload) =
            (remaining.clone(), stop.clone(), failed.clone(), bar.clone(), payload.clone());
        let peer = format!("bench-{tag}-peer-{i}");
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"));
            let mut pace = gap.map(|g| {
                let mut t = tokio::time::interval(g);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while !stop.load(Ordering::Relaxed)
                && remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
            {
                if let Some(p) = pace.as_mut() {
                    p.tick().await;
                }
                let t = Instant::now();
                let msg = Outgoing {
                    channel_id: peer.clone(),
                    channel_type: kind::PERSON,
                    payload: payload.clone(),
                    ..Default::default()
                };
                if client.send(msg).await == Some(1) {
                    let _ = hist.record(t.elapsed().as_micros() as u64);
                    bar.inc(1);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            (hist, client.reconnects())
        }));
    }
    let timer = {
        let stop = stop.clone();
        let limit = Duration::from_secs(a.max_seconds);
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut hist = Histogram::<u64>::new(3)?;
    let mut reconnects = 0;
    for t in tasks {
        let (h, r) = t.await?;
        hist.add(h)?;
        reconnects += u64::from(r);
    }
    timer.abort();
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let s = Summary {
        senders: a.senders,
        payload_bytes: a.payload,
        acked: hist.len(),
        failed: failed.load(Ordering::Relaxed),
        seconds,
        acked_per_sec: hist.len() as f64 / seconds,
        p50_ms: ms(&hist, 0.5),
        p99_ms: ms(&hist, 0.99),
        p999_ms: ms(&hist, 0.999),
        max_ms: hist.max() as f64 / 1000.0,
        reconnects,
    };
    a.api.report("bench send", &s)
}

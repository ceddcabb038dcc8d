//! `tern bench`: the pressure tests operators run before going live. Every run is bounded by a count
//! and a time limit, shows progress, and ends with a Markdown table and a JSON summary.

mod connect;
mod deliver;
mod send;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Sender-acked throughput and store-then-ack latency.
    Send(send::SendArgs),
    /// Open and hold many idle sessions; connect rate, failures, edge memory per session.
    Connect(connect::ConnectArgs),
    /// One big group: arrival latency, order and duplicates at every receiver.
    Deliver(deliver::DeliverArgs),
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Send(a) => send::run(a).await,
        BenchCommand::Connect(a) => connect::run(a).await,
        BenchCommand::Deliver(a) => deliver::run(a).await,
    }
}

/// The core's HTTP API, where the benchmark users and groups are made.
#[derive(Args, Clone)]
pub struct Api {
    #[arg(long, default_value = "http://127.0.0.1:5001")]
    api: String,
    #[arg(long)]
    manager_token: Option<String>,
    /// Also write the JSON summary to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Api {
    pub async fn post(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let mut req = http.post(format!("{}{path}", self.api)).json(&body);
        if let Some(t) = &self.manager_token {
            req = req.header("token", t);
        }
        let resp = req.send().await.with_context(|| format!("POST {path}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// Gives `uid` the token `t` on device flag 0; `slave` lets one uid hold many sessions.
    pub async fn user(&self, http: &reqwest::Client, uid: &str, slave: bool) -> anyhow::Result<()> {
        let body =
            serde_json::json!({"uid": uid, "token": "t", "device_flag": 0, "device_level": if slave { 0 } else { 1 }});
        self.post(http, "/user/token", body).await.map(|_| ())
    }

    /// Prints `summary` as a Markdown table and as JSON, and writes the JSON file if asked.
    pub fn report<T: Serialize>(&self, title: &str, summary: &T) -> anyhow::Result<()> {
        let json = serde_json::to_value(summary)?;
        println!("### {title}\n\n| metric | value |\n|---|---|");
        if let Some(map) = json.as_object() {
            for (k, v) in map {
                let shown = match v {
                    serde_json::Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
                    other => other.to_string(),
                };
                println!("| {k} | {shown} |");
            }
        }
        let text = serde_json::to_string_pretty(&json)?;
        println!("\n{text}");
        if let Some(path) = &self.json {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} {{per_sec}} {{elapsed}}");
    bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

/// A short random tag so repeated runs against one core do not collide.
pub fn run_tag() -> String {
    tern_shared::client::random_msg_no()[..8].to_string()
}

/// Milliseconds of a microsecond histogram quantile.
pub fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

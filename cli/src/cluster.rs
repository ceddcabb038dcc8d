//! `tern cluster`: show a core cluster and change its membership, through any node's HTTP API.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ClusterArgs {
    /// Any core node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:5001", global = true)]
    api: String,
    /// The core's `admin_token`, which `/cluster/*` requires.
    #[arg(long, env = "TERN_ADMIN_TOKEN", global = true)]
    admin_token: Option<String>,
    /// For a core without an admin token (loopback only), whose manager token then guards `/cluster/*`.
    #[arg(long, env = "TERN_MANAGER_TOKEN", global = true)]
    manager_token: Option<String>,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Nodes, leaders per node, and per slot (raft group) leader, term, log positions and lag.
    Status,
    /// Add a node started with `tern core --join`; it becomes a voter once caught up.
    Add {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        raft_addr: String,
    },
    /// Remove a node from the voters.
    Remove {
        #[arg(long)]
        id: u64,
    },
    /// Move raft leadership of one slot (or, without --slot, of every slot) to a voter.
    Transfer {
        #[arg(long)]
        to: u64,
        #[arg(long)]
        slot: Option<u16>,
    },
    /// Spread leadership evenly over the voters (slot i to the (i mod voters)-th).
    Balance,
}

pub async fn run(a: ClusterArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let (method, path, body) = match a.command {
        ClusterCommand::Status => (reqwest::Method::GET, "/cluster", None),
        ClusterCommand::Add { id, raft_addr } => {
            (reqwest::Method::POST, "/cluster/nodes/add", Some(serde_json::json!({"id": id, "raft_addr": raft_addr})))
        }
        ClusterCommand::Remove { id } => {
            (reqwest::Method::POST, "/cluster/nodes/remove", Some(serde_json::json!({"id": id})))
        }
        ClusterCommand::Transfer { to, slot } => {
            (reqwest::Method::POST, "/cluster/leader/transfer", Some(serde_json::json!({"node_id": to, "slot": slot})))
        }
        ClusterCommand::Balance => (reqwest::Method::POST, "/cluster/leader/balance", None),
    };
    let mut req = http.request(method, format!("{}{path}", a.api));
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(t) = a.admin_token.as_ref().or(a.manager_token.as_ref()) {
        req = req.header("token", t);
    }
    let resp = req.send().await.with_context(|| format!("calling {}{path}", a.api))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let pretty =
        serde_json::from_str::<serde_json::Value>(&text).and_then(|v| serde_json::to_string_pretty(&v)).unwrap_or(text);
    if !status.is_success() {
        bail!("{status}: {pretty}");
    }
    println!("{pretty}");
    Ok(())
}

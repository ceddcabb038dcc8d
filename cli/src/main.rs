//! `tern`: run a local deployment, a core node or an edge; chat from a terminal; measure.

mod bench;
mod certs;
mod chat;
mod cluster;
mod deploy;
mod dev;
mod dns;
mod serve;
mod wan;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tern", version, about = "Tern: a WuKongIM-compatible IM edge + core")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a core and an edge on loopback with embedded defaults (data in ./data).
    Dev(dev::DevArgs),
    /// Run one core node.
    Core(serve::CoreArgs),
    /// Run one edge.
    Edge(serve::EdgeArgs),
    /// Chat from a terminal: lines you type are sent, messages you receive are printed.
    Chat(chat::ChatArgs),
    /// The cluster's CA: create it, issue node and edge certificates.
    Certs(certs::CertsArgs),
    /// A global deployment's description: check it, render configs, Terraform variables, bootstrap.
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// Show a core cluster, add or remove nodes.
    Cluster(cluster::ClusterArgs),
    /// Simulated wide-area paths: `tern wan relay` adds a round trip to one TCP path.
    #[command(subcommand)]
    Wan(WanCommand),
    /// Load tests against a running edge and core.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Subcommand)]
enum WanCommand {
    /// Carry TCP connections to a target with a round trip, jitter and loss added; cut and heal it.
    Relay(wan::RelayArgs),
}

fn init_logging() {
    // openraft narrates every election of every slot at info; Tern logs leadership changes itself.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into());
    // Colors only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Dev(a) => dev::run(a).await,
        Command::Core(a) => serve::core(a).await,
        Command::Edge(a) => serve::edge(a).await,
        Command::Chat(a) => chat::run(a).await,
        Command::Certs(a) => certs::run(a),
        Command::Cluster(a) => cluster::run(a).await,
        Command::Deploy(c) => deploy::run(c),
        Command::Bench(b) => bench::run(b).await,
        Command::Wan(WanCommand::Relay(a)) => wan::relay(a).await,
    }
}

//! `tern certs`: the cluster's own CA, and certificates for core nodes and edges with their identity
//! inside (docs/SECURITY.md).

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tern_shared::pki::{Ca, Identity};

#[derive(Args)]
pub struct CertsArgs {
    /// Where the CA lives (`ca.pem`, `ca.key`) and issued certificates are written.
    #[arg(long, default_value = "./certs", global = true)]
    dir: PathBuf,
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a CA (refuses to overwrite one).
    Init {
        #[arg(long, default_value = "Tern cluster CA")]
        name: String,
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a certificate for one core node (`--node`) or one edge (`--edge`).
    Issue {
        /// A core node's id: its certificate serves its raft and link ports and dials other nodes.
        #[arg(long, conflicts_with = "edge", required_unless_present = "edge")]
        node: Option<u64>,
        /// An edge's id (`edge_id`): the core takes the edge's identity from this certificate.
        #[arg(long)]
        edge: Option<String>,
        /// The edge's region, recorded in its certificate.
        #[arg(long, requires = "edge")]
        region: Option<String>,
        /// Extra DNS names or IP addresses a node serves under (repeat the flag).
        #[arg(long = "name", requires = "node")]
        names: Vec<String>,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

pub fn run(a: CertsArgs) -> anyhow::Result<()> {
    match a.command {
        CertsCommand::Init { name, days } => {
            Ca::init(&a.dir, &name, days)?;
            println!("CA written to {} (keep ca.key offline once every certificate is issued)", a.dir.display());
        }
        CertsCommand::Issue { node, edge, region, names, days } => {
            let ca = Ca::open(&a.dir).context("no CA here: run `tern certs init` first")?;
            let (identity, tables): (_, &[&str]) = match (node, edge) {
                (Some(id), _) => (Identity::Node(id), &["raft_tls", "link_tls"]),
                (None, Some(id)) => (Identity::Edge { id, region }, &["link_tls"]),
                (None, None) => anyhow::bail!("name a --node or an --edge"),
            };
            let issued = ca.issue(&identity, &names, days)?;
            let tls = ca.link_tls(&issued);
            println!("# {identity:?}: certificate {}, key {}", issued.cert.display(), issued.key.display());
            for table in tables {
                println!("[{table}]\n{}", toml::to_string(&tls)?);
            }
        }
    }
    Ok(())
}

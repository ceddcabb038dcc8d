//! `tern deploy`: check a deployment description (`deploy/regions/<name>/`) and render from it every
//! core node's and edge's config, the Terraform variables and the clients' bootstrap list.

pub mod configs;
mod outputs;

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use tern_shared::deployment::Deployment;

#[derive(Subcommand)]
pub enum DeployCommand {
    /// Check a description and summarize it.
    Check {
        /// The deployment's directory (`deployment.toml` and one `<region>.toml` per region).
        dir: PathBuf,
    },
    /// Write every node's and edge's config, `terraform.tfvars.json` and `bootstrap.json`.
    Render(RenderArgs),
}

#[derive(Args)]
pub struct RenderArgs {
    dir: PathBuf,
    /// Where to write (created; files in it are replaced, and node configs an earlier rendering wrote
    /// for machines no longer described are removed).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    layout: LayoutArgs,
}

/// Paths on the machines the configs are for.
#[derive(Args, Clone)]
pub struct LayoutArgs {
    /// The cluster CA's `ca.pem` and each machine's own certificate and key.
    #[arg(long, default_value = "/etc/tern/certs")]
    pub cert_dir: PathBuf,
    /// The public certificate for the edges' TLS listeners.
    #[arg(long, default_value = "/etc/tern/tls")]
    pub tls_dir: PathBuf,
    /// A core node's RocksDB directory.
    #[arg(long, default_value = "/var/lib/tern/core")]
    pub core_data_dir: PathBuf,
}

impl From<LayoutArgs> for configs::Layout {
    fn from(a: LayoutArgs) -> Self {
        configs::Layout { cert_dir: a.cert_dir, tls_dir: a.tls_dir, data_dir: a.core_data_dir }
    }
}

pub fn run(c: DeployCommand) -> anyhow::Result<()> {
    match c {
        DeployCommand::Check { dir } => {
            let d = Deployment::load(&dir)?;
            let t = d.raft_timings();
            println!("{}: {} ({} regions)", d.name, d.domain, d.regions.len());
            for r in &d.regions {
                let voters: Vec<String> = r.voters.iter().map(|v| v.id.to_string()).collect();
                let edges: Vec<&str> = r.edges.iter().map(|e| e.id.as_str()).collect();
                println!(
                    "  {:<14} voters [{}]  edges [{}]  fallback {}",
                    r.id,
                    voters.join(", "),
                    edges.join(", "),
                    d.fallback(&r.id).join(" > ")
                );
            }
            println!(
                "  raft: largest voter round trip {} ms: heartbeat {} ms, elections {}-{} ms",
                d.voter_rtt_ms(),
                t.heartbeat_ms,
                t.election_min_ms,
                t.election_max_ms
            );
            Ok(())
        }
        DeployCommand::Render(a) => {
            let d = Deployment::load(&a.dir)?;
            let files = render(&d, &a.layout.into())?;
            write(&a.out, &files)
        }
    }
}

/// Writes a rendering into `out`, and removes the node configs an earlier one wrote there for machines
/// since taken out of the description: left in place, they would be deployed as if current.
fn write(out: &Path, files: &[(String, String)]) -> anyhow::Result<()> {
    for path in stale(out, files) {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        println!("removed {} (no longer in the description)", path.display());
    }
    for (name, text) in files {
        let path = out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{} files in {}", files.len(), out.display());
    Ok(())
}

/// Node configs in `out` that carry the rendering's header and are not among `files`. Files without
/// the header are someone else's and stay.
fn stale(out: &Path, files: &[(String, String)]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in ["core", "edge"] {
        let Ok(entries) = std::fs::read_dir(out.join(dir)) else { continue };
        for entry in entries.flatten() {
            let name = format!("{dir}/{}", entry.file_name().to_string_lossy());
            let ours = std::fs::read_to_string(entry.path()).is_ok_and(|t| t.starts_with(HEADER));
            if ours && !files.iter().any(|(n, _)| *n == name) {
                found.push(entry.path());
            }
        }
    }
    found
}

/// How every rendered node config begins.
const HEADER: &str = "# Rendered from the deployment `";

/// Every file of a rendering, by relative path.
pub fn render(d: &Deployment, layout: &configs::Layout) -> anyhow::Result<Vec<(String, String)>> {
    let header = format!("{HEADER}{}` by `tern deploy render`; edit that instead.\n", d.name);
    let mut files = Vec::new();
    for (_, v) in d.voters() {
        let table = configs::core(d, v.id, layout)?;
        files.push((format!("core/node-{}.toml", v.id), format!("{header}{}", toml::to_string(&table)?)));
    }
    for (_, e) in d.edges() {
        let table = configs::edge(d, &e.id, layout)?;
        files.push((format!("edge/{}.toml", e.id), format!("{header}{}", toml::to_string(&table)?)));
    }
    files.push(("terraform.tfvars.json".into(), serde_json::to_string_pretty(&outputs::tfvars(d))? + "\n"));
    files.push(("bootstrap.json".into(), serde_json::to_string_pretty(&outputs::bootstrap(d))? + "\n"));
    Ok(files)
}

/// The deployment-implied settings of a core node or an edge, for `tern core|edge --deployment`.
pub fn base(dir: &Path, part: Part<'_>, layout: &configs::Layout) -> anyhow::Result<toml::Table> {
    let d = Deployment::load(dir)?;
    match part {
        Part::Node(id) => configs::core(&d, id, layout),
        Part::Edge(id) => configs::edge(&d, id, layout),
    }
}

pub enum Part<'a> {
    Node(u64),
    Edge(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_rendering_removes_configs_of_machines_it_no_longer_has_and_nothing_else() {
        let out = tempfile::tempdir().unwrap();
        let d = Deployment::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/regions/local")).unwrap();
        let files = render(&d, &configs::Layout::default()).unwrap();
        write(out.path(), &files).unwrap();
        let gone = out.path().join("core/node-9.toml");
        std::fs::write(&gone, format!("{HEADER}old` by `tern deploy render`\n")).unwrap();
        let mine = out.path().join("edge/notes.toml");
        std::fs::write(&mine, "# an operator's file\n").unwrap();
        write(out.path(), &files).unwrap();
        assert!(!gone.exists());
        assert!(mine.exists());
        assert!(files.iter().all(|(name, _)| out.path().join(name).exists()));
    }
}

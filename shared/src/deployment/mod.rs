//! A global deployment described once: `deployment.toml` (name, domain, ports, the round trips between
//! regions) and one `<region>.toml` per region (its core voters and edges) in one directory. `tern core`,
//! `tern edge`, `tern dev` and `tern deploy render` (node configs, Terraform variables, the clients'
//! bootstrap list) all read it, so they cannot drift apart.

mod check;
mod paths;
mod timing;

pub use check::cidr;
pub use timing::RaftTimings;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where a description is wrong: the file, the key inside it, and why.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid { path: String, key: String, message: String },
}

pub const FILE: &str = "deployment.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// A short name (Terraform prefixes its resources with it).
    pub name: String,
    /// The name clients resolve; DNS answers it with the nearest healthy region's edges.
    pub domain: String,
    #[serde(default = "default_slots")]
    pub slots: u16,
    /// The region each slot's leader should be kept in while its voter is up, so most writes commit in
    /// one short round trip (its voters become the core's `raft.preferred_leaders`).
    #[serde(default)]
    pub home_region: Option<String>,
    #[serde(default)]
    pub ports: Ports,
    /// Raft timings; derived from the largest round trip between voters when absent.
    #[serde(default)]
    pub raft: Option<RaftTimings>,
    /// The round trip between each pair of regions.
    #[serde(default, rename = "path")]
    pub paths: Vec<WanPath>,
    /// Read from the region files, sorted by id.
    #[serde(skip)]
    pub regions: Vec<Region>,
}

fn default_slots() -> u16 {
    crate::channel::DEFAULT_SLOTS
}

/// The ports every node and edge uses on its own address (0: that listener is off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ports {
    pub core_http: u16,
    pub core_link: u16,
    pub core_raft: u16,
    pub edge_tcp: u16,
    pub edge_ws: u16,
    pub edge_wss: u16,
    pub edge_http: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            core_http: 5001,
            core_link: 5301,
            core_raft: 5302,
            edge_tcp: 5100,
            edge_ws: 5200,
            edge_wss: 0,
            edge_http: 5080,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WanPath {
    /// Two region ids.
    pub between: [String; 2],
    pub rtt_ms: u32,
    /// Added to each direction at random, up to this much (the local relay only).
    #[serde(default)]
    pub jitter_ms: u32,
    /// Share of chunks the local relay drops in each direction (0 ≤ loss < 1).
    #[serde(default)]
    pub loss: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// The file's name without `.toml`.
    #[serde(skip)]
    pub id: String,
    /// A stable name for this region alone: the clients' fallback list names regions by it.
    pub dns_name: String,
    /// The cloud's name for the region (e.g. `eu-west-1`), for Terraform's provider.
    #[serde(default)]
    pub cloud_region: Option<String>,
    /// Client source networks counted as this region's by the local DNS server (CIDRs).
    #[serde(default)]
    pub clients: Vec<String>,
    #[serde(default, rename = "voter")]
    pub voters: Vec<Voter>,
    #[serde(default, rename = "edge")]
    pub edges: Vec<Edge>,
}

/// A core node, one raft voter of every slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voter {
    pub id: u64,
    /// The IP its ports bind.
    pub listen: String,
    /// The name or IP other nodes and the edges dial (default: `listen`).
    #[serde(default)]
    pub advertise: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub id: String,
    /// The IP its ports bind.
    pub listen: String,
    /// The name or IP clients are given (default: `listen`).
    #[serde(default)]
    pub advertise: Option<String>,
}

impl Voter {
    pub fn host(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.listen)
    }
}

impl Edge {
    pub fn host(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.listen)
    }
}

/// `host:port`, bracketing an IPv6 address.
pub fn join(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Deployment {
    /// Reads and checks the description in `dir`.
    pub fn load(dir: &Path) -> Result<Deployment, DeploymentError> {
        let mut deployment: Deployment = parse(&dir.join(FILE))?;
        let entries = std::fs::read_dir(dir).map_err(|source| DeploymentError::Read { path: shown(dir), source })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.file_name().is_some_and(|n| n != FILE))
            .collect();
        files.sort();
        for file in files {
            let mut region: Region = parse(&file)?;
            region.id = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            deployment.regions.push(region);
        }
        deployment.check(dir)?;
        Ok(deployment)
    }

    pub fn region(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// Every voter with its region, by id.
    pub fn voters(&self) -> impl Iterator<Item = (&Region, &Voter)> {
        let mut all: Vec<(&Region, &Voter)> =
            self.regions.iter().flat_map(|r| r.voters.iter().map(move |v| (r, v))).collect();
        all.sort_by_key(|(_, v)| v.id);
        all.into_iter()
    }

    pub fn edges(&self) -> impl Iterator<Item = (&Region, &Edge)> {
        self.regions.iter().flat_map(|r| r.edges.iter().map(move |e| (r, e)))
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, DeploymentError> {
    let text = std::fs::read_to_string(path).map_err(|source| DeploymentError::Read { path: shown(path), source })?;
    toml::from_str(&text).map_err(|e| DeploymentError::Parse { path: shown(path), message: e.to_string() })
}

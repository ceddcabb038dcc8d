//! What makes a description sound: names that can go into certificates and DNS, unique ids, a round
//! trip for every pair of regions, voters placed so that losing one region keeps a quorum, raft timings
//! that suit the round trips.

use super::{Deployment, DeploymentError, FILE};
use crate::config::is_dns_name;
use crate::pki::valid_name;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

impl Deployment {
    pub(super) fn check(&self, dir: &Path) -> Result<(), DeploymentError> {
        let at = |file: &str, key: &str, message: String| DeploymentError::Invalid {
            path: dir.join(file).display().to_string(),
            key: key.to_string(),
            message,
        };
        let top = |key: &str, message: String| at(FILE, key, message);
        // Spread over the region files: named by the directory.
        let all = |key: &str, message: String| DeploymentError::Invalid {
            path: dir.display().to_string(),
            key: key.to_string(),
            message,
        };
        if !valid_name(&self.name) {
            return Err(top("name", "must be 1-64 letters, digits, '.', '_' or '-'".into()));
        }
        if !is_dns_name(&self.domain) {
            return Err(top("domain", format!("`{}` is not a DNS name", self.domain)));
        }
        if !(1..=4096).contains(&self.slots) {
            return Err(top("slots", "must be between 1 and 4096".into()));
        }
        let p = &self.ports;
        let used: Vec<u16> = [p.core_http, p.core_link, p.core_raft].into_iter().filter(|&x| x != 0).collect();
        if used.len() < 3 || used.iter().collect::<BTreeSet<_>>().len() < 3 {
            return Err(top("ports", "core_http, core_link and core_raft must be set and differ".into()));
        }
        let edge: Vec<u16> = [p.edge_tcp, p.edge_ws, p.edge_wss, p.edge_http].into_iter().filter(|&x| x != 0).collect();
        if edge.iter().collect::<BTreeSet<_>>().len() < edge.len() || p.edge_http == 0 {
            return Err(top("ports", "the edge ports must differ, and edge_http (health checks) must be set".into()));
        }
        if p.edge_tcp == 0 && p.edge_ws == 0 && p.edge_wss == 0 {
            return Err(top("ports", "set at least one of edge_tcp, edge_ws, edge_wss".into()));
        }
        if self.regions.is_empty() {
            return Err(all("region", format!("no region files (<region>.toml) beside {FILE}")));
        }

        let mut voters = BTreeSet::new();
        let mut edges = BTreeSet::new();
        // Voters share the core ports and edges the edge ports: one of each per address.
        let (mut voter_ips, mut edge_ips) = (BTreeSet::new(), BTreeSet::new());
        let mut dns = BTreeSet::from([self.domain.clone()]);
        for r in &self.regions {
            let file = format!("{}.toml", r.id);
            let bad = |key: &str, message: String| at(&file, key, message);
            if !valid_name(&r.id) {
                return Err(bad("(file name)", "a region id must be 1-64 letters, digits, '.', '_' or '-'".into()));
            }
            if !is_dns_name(&r.dns_name) || !dns.insert(r.dns_name.clone()) {
                return Err(bad("dns_name", format!("`{}` is not a DNS name of its own", r.dns_name)));
            }
            for (i, net) in r.clients.iter().enumerate() {
                if cidr(net).is_none() {
                    return Err(bad(&format!("clients[{i}]"), format!("`{net}` is not an address/prefix")));
                }
            }
            for (i, v) in r.voters.iter().enumerate() {
                let key = |k: &str| format!("voter[{i}].{k}");
                if v.id == 0 || v.id > i64::MAX as u64 || !voters.insert(v.id) {
                    return Err(bad(
                        &key("id"),
                        format!("{} must be a non-zero id (below 2^63) no other voter has", v.id),
                    ));
                }
                machine(&v.listen, v.advertise.as_deref(), &mut voter_ips).map_err(|(k, m)| bad(&key(k), m))?;
            }
            for (i, e) in r.edges.iter().enumerate() {
                let key = |k: &str| format!("edge[{i}].{k}");
                if !valid_name(&e.id) || !edges.insert(e.id.clone()) {
                    return Err(bad(
                        &key("id"),
                        format!("`{}` must be a name (letters, digits, '.', '_', '-') no other edge has", e.id),
                    ));
                }
                machine(&e.listen, e.advertise.as_deref(), &mut edge_ips).map_err(|(k, m)| bad(&key(k), m))?;
            }
        }
        if voters.is_empty() || edges.is_empty() {
            return Err(all(if voters.is_empty() { "voter" } else { "edge" }, "no region holds one".into()));
        }
        if voters.len() % 2 == 0 {
            return Err(all(
                "voter",
                format!(
                    "{} voters: use an odd number (an even one tolerates no more failures than one fewer)",
                    voters.len()
                ),
            ));
        }
        let holding: Vec<_> = self.regions.iter().filter(|r| !r.voters.is_empty()).collect();
        if holding.len() > 1 {
            if let Some(r) = holding.iter().find(|r| r.voters.len() * 2 > voters.len()) {
                return Err(at(
                    &format!("{}.toml", r.id),
                    "voter",
                    format!(
                        "{} of {} voters: losing this region would lose the quorum; spread them so no region holds a majority (or keep every voter in one region)",
                        r.voters.len(),
                        voters.len()
                    ),
                ));
            }
        }
        if let Some(home) = &self.home_region {
            if self.region(home).is_none_or(|r| r.voters.is_empty()) {
                return Err(top("home_region", format!("`{home}` is not a region holding a voter")));
            }
        }

        let mut pairs = BTreeSet::new();
        for (i, path) in self.paths.iter().enumerate() {
            let key = |k: &str| format!("path[{i}].{k}");
            let [a, b] = &path.between;
            for end in [a, b] {
                if self.region(end).is_none() {
                    return Err(top(&key("between"), format!("no region `{end}` ({end}.toml)")));
                }
            }
            let pair = if a < b { (a, b) } else { (b, a) };
            if a == b || !pairs.insert(pair) {
                return Err(top(&key("between"), format!("{a} and {b}: two different regions, each pair once")));
            }
            if path.rtt_ms == 0 {
                return Err(top(&key("rtt_ms"), "must be at least 1".into()));
            }
            if path.jitter_ms > path.rtt_ms {
                return Err(top(&key("jitter_ms"), "must not exceed rtt_ms".into()));
            }
            if !(0.0..1.0).contains(&path.loss) {
                return Err(top(&key("loss"), "must be at least 0 and below 1".into()));
            }
        }
        for (i, a) in self.regions.iter().enumerate() {
            for b in &self.regions[i + 1..] {
                if self.path(&a.id, &b.id).is_none() {
                    return Err(top("path", format!("no round trip between {} and {}: add a [[path]]", a.id, b.id)));
                }
            }
        }
        let rtt = self.voter_rtt_ms();
        if let Some((key, message)) = self.raft.and_then(|t| t.unsuited(rtt)) {
            return Err(top(key, message));
        }
        Ok(())
    }

    /// The raft timings the nodes run with: as given, or derived from the round trips.
    pub fn raft_timings(&self) -> super::RaftTimings {
        self.raft.unwrap_or_else(|| super::RaftTimings::derive(self.voter_rtt_ms()))
    }
}

/// A machine's `listen` and `advertise`: the key at fault and why.
fn machine(listen: &str, advertise: Option<&str>, taken: &mut BTreeSet<IpAddr>) -> Result<(), (&'static str, String)> {
    let ip: IpAddr = listen.parse().map_err(|_| ("listen", format!("`{listen}` is not an IP address")))?;
    if !ip.is_unspecified() && !taken.insert(ip) {
        return Err(("listen", format!("{ip} is taken by another machine of the same kind: their ports would clash")));
    }
    match advertise {
        None if ip.is_unspecified() => {
            Err(("advertise", format!("required with listen = \"{listen}\": it is what the others dial")))
        }
        Some(a) if !host(a) => Err(("advertise", format!("`{a}` is not an IP address or DNS name"))),
        _ => Ok(()),
    }
}

fn host(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || is_dns_name(s)
}

/// `address/prefix` as the network and prefix length.
pub fn cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= if ip.is_ipv4() { 32 } else { 128 }).then_some((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn shipped(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/regions").join(name)
    }

    /// The error's file name and key when `change` is made to the local description.
    fn refused(change: impl FnOnce(&mut Deployment)) -> (String, String) {
        let dir = shipped("local");
        let mut d = Deployment::load(&dir).unwrap();
        change(&mut d);
        match d.check(&dir) {
            Err(DeploymentError::Invalid { path, key, .. }) => {
                (Path::new(&path).file_name().unwrap().to_string_lossy().into_owned(), key)
            }
            other => panic!("{other:?}"),
        }
    }

    fn owned(file: &str, key: &str) -> (String, String) {
        (file.to_string(), key.to_string())
    }

    #[test]
    fn the_shipped_descriptions_are_sound() {
        let local = Deployment::load(&shipped("local")).unwrap();
        assert_eq!(
            local.regions.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["ap-southeast", "eu-west", "us-east"]
        );
        assert_eq!(local.voter_rtt_ms(), 217);
        assert_eq!(local.fallback("eu-west"), ["us-east", "ap-southeast"]);
        assert_eq!(local.fallback("ap-southeast"), ["eu-west", "us-east"]);
        assert_eq!(local.raft_timings(), crate::deployment::RaftTimings::derive(217));
        let example = Deployment::load(&shipped("example")).unwrap();
        assert_eq!(example.edges().count(), 6);
        assert_eq!(example.voters().count(), 3);
    }

    #[test]
    fn mistakes_are_named_by_file_and_key() {
        let local = shipped("local").file_name().unwrap().to_string_lossy().into_owned();
        let more = |n: u64| {
            move |d: &mut Deployment| {
                let v = d.regions[1].voters[0].clone();
                for id in 10..10 + n {
                    let listen = format!("127.0.1.{}", 100 + id);
                    d.regions[1].voters.push(crate::deployment::Voter { id, listen, ..v.clone() });
                }
            }
        };
        assert_eq!(refused(more(1)), owned(&local, "voter"), "four voters");
        assert_eq!(refused(more(2)), owned("eu-west.toml", "voter"), "three of five in one region");
        assert_eq!(refused(|d| drop(d.paths.pop())), owned(FILE, "path"));
        assert_eq!(refused(|d| d.paths[0].loss = 1.0), owned(FILE, "path[0].loss"));
        assert_eq!(
            refused(|d| d.raft = Some(crate::deployment::RaftTimings::derive(20))),
            owned(FILE, "raft.heartbeat_ms")
        );
        assert_eq!(
            refused(|d| d.regions[2].edges[0].id = d.regions[0].edges[0].id.clone()),
            owned("us-east.toml", "edge[0].id")
        );
        assert_eq!(
            refused(|d| d.regions[1].voters[0].listen = "localhost".into()),
            owned("eu-west.toml", "voter[0].listen")
        );
        assert_eq!(refused(|d| d.home_region = Some("mars".into())), owned(FILE, "home_region"));
        assert_eq!(
            refused(|d| d.regions[1].voters[0].listen = "0.0.0.0".into()),
            owned("eu-west.toml", "voter[0].advertise")
        );
        assert_eq!(
            refused(|d| d.regions[0].edges[0].listen = d.regions[1].edges[0].listen.clone()),
            owned("eu-west.toml", "edge[0].listen"),
            "two edges on one address"
        );
        assert_eq!(refused(|d| d.slots = 5000), owned(FILE, "slots"));
        assert_eq!(
            refused(|d| d.regions[0].clients.push("127.0.3.0/33".into())),
            owned("ap-southeast.toml", "clients[1]")
        );
    }

    #[test]
    fn a_file_with_an_unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(shipped("local")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        let file = dir.path().join("us-east.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("listen = \"127.0.2.10\"", "listen = \"127.0.2.10\"\nvote = true")).unwrap();
        let err = Deployment::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("us-east.toml") && err.contains("vote"), "{err}");
    }
}

//! A whole deployment under `tern dev --regions`: core voters, edges, the WAN relays between regions and
//! the DNS server, in one process, with the admin API's cuts and heals, each region's core API and the
//! clients' bootstrap list.

use super::{Api, Proc};
use std::net::SocketAddr;
use std::path::Path;
use tern_shared::client::roam::Bootstrap;
use tern_shared::deployment::Deployment;

pub struct DevRegions {
    pub d: Deployment,
    pub dev: Proc,
}

impl DevRegions {
    /// `tern dev --regions` on the description in `desc`, its data and log under `dir`.
    pub fn run(desc: &Path, dir: &Path) -> DevRegions {
        let d = Deployment::load(desc).expect("description");
        let (desc, data) = (desc.to_str().expect("path"), dir.join("dev"));
        let data = data.to_str().expect("path");
        let args = ["dev", "--regions", desc, "--data-dir", data, "--wan-admin", "127.0.0.1:0", "--dns", "127.0.0.1:0"];
        DevRegions { d, dev: Proc::spawn(&args, &dir.join("dev.log")) }
    }

    /// Each voter's HTTP API (`http://…`), in the description's order.
    pub fn api_urls(&self) -> Vec<String> {
        self.d.voters().map(|(_, v)| format!("http://{}:{}", v.listen, self.d.ports.core_http)).collect()
    }

    pub fn api(&self, voter: usize) -> Api {
        Api::new(self.api_urls()[voter].trim_start_matches("http://"))
    }

    /// The admin API (`http://…`): `/wan`, `/dns`, `/metrics`.
    pub fn admin(&self) -> String {
        format!("http://{}", self.dev.addr("wan_admin"))
    }

    /// `cut`, `partition` or `heal` every path into and out of `region`; the admin API's answer.
    pub async fn steer(&self, action: &str, region: &str) -> serde_json::Value {
        let r = reqwest::Client::new().post(format!("{}/wan/{action}/{region}", self.admin())).send().await;
        let r = r.expect("admin API");
        assert!(r.status().is_success(), "{action} {region}: {}", r.status());
        r.json().await.expect("admin JSON")
    }

    /// Every relayed path: `from`, `to`, `kind`, bytes carried each way, cut or partitioned.
    pub async fn paths(&self) -> Vec<serde_json::Value> {
        let status: serde_json::Value =
            reqwest::get(format!("{}/wan", self.admin())).await.expect("admin API").json().await.expect("JSON");
        status["paths"].as_array().cloned().unwrap_or_default()
    }

    pub fn dns(&self) -> SocketAddr {
        self.dev.addr("dns").parse().expect("DNS address")
    }

    /// Where edge `id` takes clients directly (TCP), and its HTTP port (`/metrics`, `/healthz`).
    pub fn edge(&self, id: &str) -> String {
        self.dev.ready["edges"][id].as_str().expect("edge").to_string()
    }

    pub fn edge_http(&self, id: &str) -> String {
        self.dev.ready["edge_http"][id].as_str().expect("edge").to_string()
    }

    /// The address `region`'s clients dial for edge `id` (through a relay with the round trip added).
    pub fn front(&self, region: &str, id: &str) -> std::net::IpAddr {
        self.dev.ready["fronts"][region][id].as_str().expect("front").parse().expect("IP")
    }

    /// What `tern deploy render` writes as bootstrap.json.
    pub fn bootstrap(&self) -> Bootstrap {
        let d = &self.d;
        let regions: Vec<_> = d
            .regions
            .iter()
            .map(|r| serde_json::json!({"id": r.id, "dns_name": r.dns_name, "fallback": d.fallback(&r.id)}))
            .collect();
        serde_json::from_value(serde_json::json!({"domain": d.domain, "regions": regions})).expect("bootstrap")
    }
}

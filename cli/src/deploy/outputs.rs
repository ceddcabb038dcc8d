//! What Terraform and the clients take from a deployment: the variables of
//! `terraform/examples/three-regions` and the bootstrap list a client ships with.

use serde_json::{json, Value};
use tern_shared::deployment::Deployment;

/// `terraform.tfvars.json`: every region with its cloud region, DNS names, voters and edges.
pub fn tfvars(d: &Deployment) -> Value {
    let regions: serde_json::Map<String, Value> = d
        .regions
        .iter()
        .map(|r| {
            let voters: Vec<Value> = r.voters.iter().map(|v| json!({"id": v.id, "name": v.host()})).collect();
            let edges: Vec<Value> = r.edges.iter().map(|e| json!({"id": e.id, "name": e.host()})).collect();
            let value = json!({
                "cloud_region": r.cloud_region.clone().unwrap_or_default(),
                "dns_name": r.dns_name,
                "voters": voters,
                "edges": edges,
            });
            (r.id.clone(), value)
        })
        .collect();
    let t = d.raft_timings();
    json!({
        "deployment": d.name,
        "domain": d.domain,
        "home_region": d.home_region.clone().unwrap_or_default(),
        "ports": d.ports,
        "raft": t,
        "regions": regions,
    })
}

/// `bootstrap.json`: for each region its edges' addresses by transport and the other regions to try,
/// nearest first. A client resolves `domain` first and walks its region's fallback list when that fails.
pub fn bootstrap(d: &Deployment) -> Value {
    let regions: Vec<Value> = super::configs::served(d)
        .map(|r| {
            let edges: Vec<Value> =
                r.edges.iter().map(|e| json!({"id": e.id, "addrs": super::configs::client_addrs(d, e)})).collect();
            let mut route = super::configs::region_route(d, r);
            route["edges"] = json!(edges);
            route
        })
        .collect();
    json!({"deployment": d.name, "domain": d.domain, "regions": regions})
}

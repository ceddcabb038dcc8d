//! What the DNS server answers, as Route 53 would with the records `terraform/modules/dns` makes: the
//! deployment's domain gives the nearest region that still has a healthy edge, each region's own name
//! gives that region's healthy edges. "Nearest" is the region whose `clients` networks hold the asking
//! address (Route 53 measures latency to the resolver instead), then that region's fallback order.

use std::net::IpAddr;
use tern_shared::deployment::{Deployment, Edge, Region};

#[derive(Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    /// Not a name under the deployment's domain: refused, as an authoritative-only server does.
    NotOurs,
    /// Under the domain but not a name it has.
    NoSuchName,
    /// These edges, for a client in `client_region`.
    Edges { client_region: &'a str, edges: Vec<&'a Edge> },
}

/// The answer to `name` asked from `source`, given which edges pass their health checks.
pub fn answer<'a>(d: &'a Deployment, name: &str, source: IpAddr, healthy: &dyn Fn(&str) -> bool) -> Answer<'a> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let client_region = client_region(d, source);
    let edges = |r: &'a Region| -> Vec<&'a Edge> { r.edges.iter().filter(|e| healthy(&e.id)).collect() };
    let edges = if name == d.domain {
        let order = std::iter::once(client_region).chain(d.fallback(client_region));
        let nearest = order.filter_map(|id| d.region(id)).map(edges).find(|e| !e.is_empty());
        // No healthy edge anywhere: like Route 53, answer as if all were healthy rather than nothing.
        nearest.unwrap_or_else(|| d.region(client_region).map(|r| r.edges.iter().collect()).unwrap_or_default())
    } else if let Some(r) = d.regions.iter().find(|r| r.dns_name == name) {
        let up = edges(r);
        if up.is_empty() {
            r.edges.iter().collect()
        } else {
            up
        }
    } else if name.ends_with(&format!(".{}", d.domain)) {
        return Answer::NoSuchName;
    } else {
        return Answer::NotOurs;
    };
    Answer::Edges { client_region, edges }
}

/// The region `source` belongs to; an address in no region's `clients` counts as the home region's (or
/// the first region's with edges).
pub fn client_region(d: &Deployment, source: IpAddr) -> &str {
    if let Some(r) = d.region_of(source) {
        return &r.id;
    }
    let home = d.home_region.as_deref().and_then(|h| d.region(h));
    home.or_else(|| d.regions.iter().find(|r| !r.edges.is_empty())).map_or("", |r| r.id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::path::Path;

    fn local() -> Deployment {
        Deployment::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/regions/local")).unwrap()
    }

    fn ids(a: Answer<'_>) -> (String, Vec<String>) {
        match a {
            Answer::Edges { client_region, edges } => {
                (client_region.to_string(), edges.iter().map(|e| e.id.clone()).collect())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_domain_is_the_nearest_region_with_a_healthy_edge() {
        let d = local();
        let all = |_: &str| true;
        let from = |ip: &str| ip.parse::<IpAddr>().unwrap();
        assert_eq!(ids(answer(&d, "im.tern.test.", from("127.0.1.50"), &all)).1, ["eu-west-1"]);
        assert_eq!(ids(answer(&d, "IM.tern.test", from("127.0.2.50"), &all)).1, ["us-east-1"]);
        assert_eq!(
            ids(answer(&d, "im.tern.test", from("127.0.3.50"), &all)),
            ("ap-southeast".into(), vec!["ap-southeast-1".into()])
        );
        // ap-southeast down: its clients go to eu-west (160 ms) before us-east (217 ms).
        let down: HashSet<&str> = ["ap-southeast-1"].into();
        let up = |id: &str| !down.contains(id);
        assert_eq!(ids(answer(&d, "im.tern.test", from("127.0.3.50"), &up)).1, ["eu-west-1"]);
        // Its own name still gives its edge: every edge of a region down means all of them are answered.
        assert_eq!(ids(answer(&d, "ap-southeast.im.tern.test", from("127.0.1.9"), &up)).1, ["ap-southeast-1"]);
        let none = |_: &str| false;
        assert_eq!(ids(answer(&d, "im.tern.test", from("127.0.3.50"), &none)).1, ["ap-southeast-1"]);
    }

    #[test]
    fn unknown_clients_count_as_the_home_region_and_other_names_are_refused() {
        let d = local();
        let all = |_: &str| true;
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(ids(answer(&d, "im.tern.test", outside, &all)), ("eu-west".into(), vec!["eu-west-1".into()]));
        assert_eq!(ids(answer(&d, "us-east.im.tern.test", outside, &all)).1, ["us-east-1"]);
        assert_eq!(answer(&d, "nope.im.tern.test", outside, &all), Answer::NoSuchName);
        assert_eq!(answer(&d, "example.com", outside, &all), Answer::NotOurs);
        assert_eq!(answer(&d, "xim.tern.test", outside, &all), Answer::NotOurs);
    }
}

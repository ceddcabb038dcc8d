output "public_ips" {
  description = "Elastic IPs by region id: `core` by voter id, `edges` by edge id."
  value = {
    "eu-west" = {
      core  = module.core_eu_west.public_ips
      edges = module.edges_eu_west.public_ips
    }
    "us-east" = {
      core  = module.core_us_east.public_ips
      edges = module.edges_us_east.public_ips
    }
    "ap-southeast" = {
      core  = module.core_ap_southeast.public_ips
      edges = module.edges_ap_southeast.public_ips
    }
  }
}

output "domain" {
  description = "The name clients resolve first (latency-routed to the nearest region with a healthy edge)."
  value       = module.dns.domain
}

output "region_names" {
  description = "Each region's own DNS name, by region id: the names in the clients' fallback list."
  value       = module.dns.region_names
}

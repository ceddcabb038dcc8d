output "health_check_ids" {
  description = "Route 53 health check id of each edge, by edge id."
  value       = { for id, check in aws_route53_health_check.edge : id => check.id }
}

output "region_names" {
  description = "Each region's own DNS name (its healthy edges), by region id: the clients' fallback names."
  value       = { for region_id, r in var.regions : region_id => r.dns_name if length(r.edges) > 0 }
  depends_on  = [aws_route53_record.region]
}

output "domain" {
  description = "The name clients resolve first: latency-routed to the nearest region with a healthy edge."
  value       = var.domain
  depends_on  = [aws_route53_record.domain]
}

locals {
  edges = merge([for region_id, r in var.regions : {
    for e in r.edges : e.id => { name = e.name, region = region_id }
  }]...)

  voters = merge([for region_id, r in var.regions : {
    for v in r.voters : tostring(v.id) => { name = v.name, region = region_id }
  }]...)

  # A region without edges has nothing to answer clients with.
  serving = { for region_id, r in var.regions : region_id => r if length(r.edges) > 0 }

  # Every voter's and edge's name, with the map its address is in (voter_ips, edge_ips); keyed by
  # kind too, since a voter and an edge may share an id.
  machines = merge(
    { for id, v in local.voters : "voter ${id}" => { kind = "voter", id = id, name = v.name, ips = var.voter_ips } },
    { for id, e in local.edges : "edge ${id}" => { kind = "edge", id = id, name = e.name, ips = var.edge_ips } },
  )
}

# --- Each machine's own name ------------------------------------------------------------------

# Edges and the other voters dial the voters by these names (the rendered configs' peers and
# core_addr), so they carry no health check: raft and the links handle a voter that is down. An
# edge's name is what it advertises to its clients (and what its wss certificate must cover).
resource "aws_route53_record" "machine" {
  # checkov:skip=CKV2_AWS_23: the address is a voter's or an edge's Elastic IP, allocated by the core-nodes or edge-region module and kept for as long as the machine exists; the check cannot follow an address passed in through voter_ips or edge_ips
  for_each = local.machines

  zone_id = var.zone_id
  name    = each.value.name
  type    = "A"
  ttl     = var.ttl
  records = [each.value.ips[each.value.id]]

  lifecycle {
    precondition {
      condition     = contains(keys(each.value.ips), each.value.id)
      error_message = "${each.value.kind}_ips has no address for ${each.value.kind} ${each.value.id}."
    }
  }
}

# --- Health ---------------------------------------------------------------------------------

resource "aws_route53_health_check" "edge" {
  for_each = local.edges

  type = "HTTP"
  # Probe the address itself: resolving the name would depend on the records this check guards.
  # The name only goes into the Host header.
  ip_address        = var.edge_ips[each.key]
  fqdn              = each.value.name
  port              = var.health_port
  resource_path     = var.health_path
  request_interval  = var.health_check_interval
  failure_threshold = var.failure_threshold
  regions           = var.health_check_regions

  tags = merge(var.tags, {
    Name          = "tern edge ${each.key}"
    "tern:region" = each.value.region
  })
}

# --- Each region's name: its healthy edges --------------------------------------------------

# Clients walk their fallback list by these names when `domain` fails them, so each one answers
# with its own region's edges, whichever of them pass their health check.
resource "aws_route53_record" "region" {
  for_each = local.edges

  zone_id         = var.zone_id
  name            = var.regions[each.value.region].dns_name
  type            = "A"
  ttl             = var.ttl
  records         = [var.edge_ips[each.key]]
  set_identifier  = each.key
  health_check_id = aws_route53_health_check.edge[each.key].id

  weighted_routing_policy {
    weight = 1
  }
}

# --- The domain: the nearest region that still has a healthy edge ---------------------------

# evaluate_target_health makes a region whose weighted set has no healthy edge left drop out, and
# Route 53 answers with the next nearest one.
resource "aws_route53_record" "domain" {
  for_each = local.serving

  zone_id        = var.zone_id
  name           = var.domain
  type           = "A"
  set_identifier = each.key

  latency_routing_policy {
    region = each.value.cloud_region
  }

  alias {
    name                   = each.value.dns_name
    zone_id                = var.zone_id
    evaluate_target_health = true
  }

  # An alias can only point at records that already exist.
  depends_on = [aws_route53_record.region]
}

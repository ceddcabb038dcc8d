variable "zone_id" {
  description = "Route 53 public hosted zone holding domain, the regions' dns_names and the voters' and edges' names."
  type        = string

  validation {
    condition     = can(regex("^Z[A-Z0-9]{1,32}$", var.zone_id))
    error_message = "zone_id must be a Route 53 hosted zone id (Z0123456789ABC)."
  }
}

variable "domain" {
  description = "The name clients resolve (`domain` in deployment.toml): answered with the nearest region that has a healthy edge."
  type        = string

  validation {
    condition     = can(regex("^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", var.domain))
    error_message = "domain must be a DNS name."
  }
}

variable "regions" {
  description = "Every region of the deployment, as in terraform.tfvars.json: cloud region, the region's own DNS name, its voters and edges."
  type = map(object({
    cloud_region = string
    dns_name     = string
    edges = list(object({
      id   = string
      name = string
    }))
    voters = list(object({
      id   = number
      name = string
    }))
  }))

  validation {
    condition     = length([for r in values(var.regions) : r if length(r.edges) > 0]) > 0
    error_message = "At least one region needs edges."
  }

  validation {
    # Names, not addresses: each one becomes an A record. The last label starting with a letter
    # also tells a name from an IPv4 address.
    condition = alltrue(flatten([for r in values(var.regions) : [
      for name in concat([r.dns_name], [for e in r.edges : e.name], [for v in r.voters : v.name]) :
      can(regex("^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", name))
    ]]))
    error_message = "Every dns_name and every edge's and voter's name must be a DNS name (not an IP address)."
  }

  validation {
    # One latency record per cloud region: Route 53 measures latency to cloud regions, not to ids.
    condition = (
      alltrue([for r in values(var.regions) : length(r.edges) == 0 || length(r.cloud_region) > 0]) &&
      length(distinct([for r in values(var.regions) : r.cloud_region if length(r.edges) > 0])) ==
      length([for r in values(var.regions) : r if length(r.edges) > 0])
    )
    error_message = "Every region with edges needs a cloud_region of its own."
  }
}

variable "edge_ips" {
  description = "Public IPv4 address of every edge, by edge id (the edge-region modules' public_ips, merged)."
  type        = map(string)

  validation {
    condition     = alltrue([for ip in values(var.edge_ips) : can(cidrnetmask("${ip}/32"))])
    error_message = "edge_ips must hold IPv4 addresses."
  }
}

variable "voter_ips" {
  description = "Public IPv4 address of every voter, by voter id as a string (the core-nodes modules' public_ips, merged)."
  type        = map(string)

  validation {
    condition     = alltrue([for ip in values(var.voter_ips) : can(cidrnetmask("${ip}/32"))])
    error_message = "voter_ips must hold IPv4 addresses."
  }
}

variable "health_port" {
  description = "Port of the edges' HTTP listener serving the health path (ports.edge_http)."
  type        = number

  validation {
    condition     = var.health_port >= 1 && var.health_port <= 65535 && floor(var.health_port) == var.health_port
    error_message = "health_port must be a port number from 1 to 65535."
  }
}

variable "health_path" {
  description = "Path Route 53 requests on each edge; the edge answers 200 while it is up and linked to the core."
  type        = string
  default     = "/healthz"

  validation {
    condition     = startswith(var.health_path, "/") && length(var.health_path) <= 255
    error_message = "health_path must start with '/' and be at most 255 characters."
  }
}

variable "ttl" {
  description = "TTL of every record, seconds: short, so a region that drops out stops being answered soon."
  type        = number
  default     = 60

  validation {
    condition     = var.ttl >= 0 && var.ttl <= 86400 && floor(var.ttl) == var.ttl
    error_message = "ttl must be a whole number of seconds from 0 to 86400."
  }
}

variable "health_check_interval" {
  description = "Seconds between one health checker's requests: 10 (fast, billed higher) or 30."
  type        = number
  default     = 10

  validation {
    condition     = contains([10, 30], var.health_check_interval)
    error_message = "health_check_interval must be 10 or 30."
  }
}

variable "failure_threshold" {
  description = "Consecutive failures (or successes) that turn an edge unhealthy (or healthy again)."
  type        = number
  default     = 3

  validation {
    condition     = var.failure_threshold >= 1 && var.failure_threshold <= 10 && floor(var.failure_threshold) == var.failure_threshold
    error_message = "failure_threshold must be a whole number from 1 to 10."
  }
}

variable "health_check_regions" {
  description = "Route 53 health-checker regions to probe from (at least 3, e.g. us-east-1, eu-west-1, ap-southeast-1); null for Route 53's default set."
  type        = list(string)
  default     = null

  validation {
    condition     = var.health_check_regions == null || try(length(var.health_check_regions) >= 3, false)
    error_message = "health_check_regions must name at least 3 regions, or be null."
  }
}

variable "tags" {
  description = "Tags added to the health checks."
  type        = map(string)
  default     = {}
}

# --- What `tern deploy render` writes to terraform.tfvars.json ---------------------------------

variable "deployment" {
  description = "The deployment's name (`name` in deployment.toml); prefixes resource names and SSM paths."
  type        = string
}

variable "domain" {
  description = "The name clients resolve; latency-routed to the nearest region with a healthy edge."
  type        = string
}

variable "home_region" {
  description = "Region whose voter leads the raft slots while it is up; already in the rendered configs, checked here only."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "eu-west", "us-east", "ap-southeast"], var.home_region)
    error_message = "home_region must be one of the regions this example builds (eu-west, us-east, ap-southeast), or empty."
  }
}

variable "ports" {
  description = "The deployment's ports (the same on every machine; 0 turns an edge listener off)."
  type = object({
    core_http = number
    core_link = number
    core_raft = number
    edge_tcp  = number
    edge_ws   = number
    edge_wss  = number
    edge_http = number
  })
}

variable "raft" {
  description = "Raft timings derived from the round trips; already in the rendered configs, declared so the tfvars file loads cleanly."
  type = object({
    heartbeat_ms    = number
    election_min_ms = number
    election_max_ms = number
  })
}

variable "regions" {
  description = "Every region: its cloud region, its own DNS name, its voters and edges. This example builds exactly eu-west, us-east and ap-southeast."
  type = map(object({
    cloud_region = string
    dns_name     = string
    voters = list(object({
      id   = number
      name = string
    }))
    edges = list(object({
      id   = string
      name = string
    }))
  }))

  validation {
    condition     = toset(keys(var.regions)) == toset(["eu-west", "us-east", "ap-southeast"])
    error_message = "This example builds the regions eu-west, us-east and ap-southeast (one module block each); a different set needs its own composition."
  }
}

# --- Where the rendering, the certificates and the release are ---------------------------------

variable "rendered_dir" {
  description = "Output directory of `tern deploy render` (core/node-<id>.toml, edge/<id>.toml), relative to the working directory."
  type        = string
  default     = "../../../rendered"
}

variable "cert_dir" {
  description = "Directory of `tern certs init` and `tern certs issue` (ca.pem, node-<id>.pem/.key, edge-<id>.pem/.key), relative to the working directory; ca.key is never read."
  type        = string
  default     = "../../../certs"
}

variable "artifact_url" {
  description = "HTTPS URL of the release tarball tern-<version>-x86_64-linux.tar.gz."
  type        = string
}

variable "artifact_sha256" {
  description = "SHA-256 of the release tarball (64 hex digits)."
  type        = string
}

# --- The site: DNS zone, networks, who may reach what --------------------------------------------

variable "zone_id" {
  description = "Route 53 public hosted zone for domain and every name under it."
  type        = string
}

variable "networks" {
  description = "VPC and public subnet to use in each region, by region id."
  type = map(object({
    vpc_id    = string
    subnet_id = string
  }))

  validation {
    condition     = alltrue([for r in ["eu-west", "us-east", "ap-southeast"] : contains(keys(var.networks), r)])
    error_message = "networks needs an entry for eu-west, us-east and ap-southeast."
  }
}

variable "api_cidrs" {
  description = "Business servers and operators allowed on the core HTTP API (core_http)."
  type        = list(string)
}

variable "admin_cidrs" {
  description = "Operators and monitoring allowed on the edges' HTTP port (/metrics) besides the health checkers."
  type        = list(string)
  default     = []
}

variable "health_check_cidrs" {
  description = "Route 53 health checkers' ranges (ROUTE53_HEALTHCHECKS in ip-ranges.json), allowed on edge_http."
  type        = list(string)
}

# --- Secrets: pass as TF_VAR_* environment variables, never in a committed file ------------------

variable "manager_token" {
  description = "Business API token (TERN_MANAGER_TOKEN) for every core node."
  type        = string
  sensitive   = true
}

variable "admin_token" {
  description = "Cluster administration token (TERN_ADMIN_TOKEN) for every core node; differs from manager_token."
  type        = string
  sensitive   = true
}

variable "tls_cert_pem" {
  description = "Public certificate chain for the edges' wss listener (needed when ports.edge_wss is not 0)."
  type        = string
  default     = null
  sensitive   = true
}

variable "tls_key_pem" {
  description = "Private key of tls_cert_pem."
  type        = string
  default     = null
  sensitive   = true
}

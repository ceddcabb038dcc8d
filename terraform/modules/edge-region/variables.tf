variable "deployment" {
  description = "The deployment's name (`name` in deployment.toml); prefixes every resource name and the SSM parameter path."
  type        = string

  validation {
    # IAM role names stop at 64 characters: deployment and region id share that budget.
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,27}$", var.deployment))
    error_message = "deployment must be 1-28 letters, digits, '.', '_' or '-', starting with a letter or digit."
  }
}

variable "region_id" {
  description = "The region's id in the deployment (its file name in deploy/regions/<name>/, e.g. `eu-west`)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,27}$", var.region_id))
    error_message = "region_id must be 1-28 letters, digits, '.', '_' or '-', starting with a letter or digit."
  }
}

variable "edges" {
  description = "This region's edges, as in terraform.tfvars.json: the edge id and the name clients are given."
  type = list(object({
    id   = string
    name = string
  }))

  validation {
    condition     = length(var.edges) > 0
    error_message = "edges must hold at least one edge."
  }

  validation {
    condition     = alltrue([for e in var.edges : can(regex("^[A-Za-z0-9._-]{1,64}$", e.id)) && length(e.name) > 0])
    error_message = "Every edge needs an id of 1-64 letters, digits, '.', '_' or '-', and a name."
  }

  validation {
    condition     = length(distinct([for e in var.edges : e.id])) == length(var.edges)
    error_message = "Edge ids must be unique."
  }
}

variable "ports" {
  description = "The deployment's ports, as in terraform.tfvars.json (the same on every machine; 0 turns an edge listener off)."
  type = object({
    core_http = number
    core_link = number
    core_raft = number
    edge_tcp  = number
    edge_ws   = number
    edge_wss  = number
    edge_http = number
  })

  validation {
    condition     = alltrue([for p in values(var.ports) : p >= 0 && p <= 65535 && floor(p) == p])
    error_message = "Every port must be a whole number from 0 to 65535."
  }

  validation {
    condition = (
      var.ports.edge_http > 0 &&
      anytrue([for p in [var.ports.edge_tcp, var.ports.edge_ws, var.ports.edge_wss] : p > 0]) &&
      length(distinct([for p in [var.ports.edge_tcp, var.ports.edge_ws, var.ports.edge_wss, var.ports.edge_http] : p if p > 0])) ==
      length([for p in [var.ports.edge_tcp, var.ports.edge_ws, var.ports.edge_wss, var.ports.edge_http] : p if p > 0])
    )
    error_message = "edge_http and at least one client port must be set, and the edge ports must differ."
  }
}

variable "configs" {
  description = "Each edge's rendered config (`tern deploy render` → edge/<id>.toml), by edge id."
  type        = map(string)

  validation {
    condition     = alltrue([for text in values(var.configs) : length(trimspace(text)) > 0])
    error_message = "A rendered config is empty."
  }
}

variable "cert_dir" {
  description = "Local directory written by `tern certs init` and `tern certs issue`: ca.pem and edge-<id>.pem/.key for every edge here (ca.key is never read)."
  type        = string

  validation {
    condition     = length(trimspace(var.cert_dir)) > 0
    error_message = "cert_dir must name a directory."
  }
}

variable "tls_cert_pem" {
  description = "Public certificate chain (PEM, leaf first) for the wss listener, covering the edges' names; required when ports.edge_wss is not 0."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.tls_cert_pem == null || can(regex("-----BEGIN CERTIFICATE-----", var.tls_cert_pem))
    error_message = "tls_cert_pem must be a PEM certificate chain."
  }
}

variable "tls_key_pem" {
  description = "Private key (PEM) of tls_cert_pem; required when ports.edge_wss is not 0."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.tls_key_pem == null || can(regex("-----BEGIN [A-Z ]*PRIVATE KEY-----", var.tls_key_pem))
    error_message = "tls_key_pem must be a PEM private key."
  }
}

variable "artifact_url" {
  description = "HTTPS URL of the release tarball tern-<version>-x86_64-linux.tar.gz (the `tern` binary at its root)."
  type        = string

  validation {
    # The URL is pasted into a shell script: no spaces, quotes that could close it, or `$`.
    condition     = can(regex("^https://[A-Za-z0-9._~:/?#@!&'()*+,;=%\\[\\]-]+$", var.artifact_url))
    error_message = "artifact_url must be an https:// URL without spaces, double quotes, backslashes or '$'."
  }
}

variable "artifact_sha256" {
  description = "SHA-256 of the release tarball, 64 lowercase hex digits; the boot script refuses a download that does not match."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.artifact_sha256))
    error_message = "artifact_sha256 must be 64 lowercase hex digits."
  }
}

variable "instance_type" {
  description = "EC2 instance type for the edges; x86_64 only (the AMI and the release artifact are x86_64)."
  type        = string
  default     = "c7i.large"

  validation {
    condition     = can(regex("^[a-z0-9-]+\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like c7i.large."
  }
}

variable "vpc_id" {
  description = "VPC of the edges' security group."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_id" {
  description = "Public subnet (routed to an internet gateway) in vpc_id for the edges."
  type        = string

  validation {
    condition     = can(regex("^subnet-[0-9a-f]+$", var.subnet_id))
    error_message = "subnet_id must look like subnet-0123abcd."
  }
}

variable "health_check_cidrs" {
  description = "Route 53 health checkers' ranges (the ROUTE53_HEALTHCHECKS service in https://ip-ranges.amazonaws.com/ip-ranges.json): allowed on edge_http."
  type        = list(string)

  validation {
    condition     = length(var.health_check_cidrs) > 0
    error_message = "health_check_cidrs must not be empty: without them every edge looks down to Route 53."
  }

  validation {
    condition     = alltrue([for c in var.health_check_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "health_check_cidrs must be CIDR blocks, and not the whole internet."
  }
}

variable "admin_cidrs" {
  description = "Operators' and monitoring networks (Prometheus scraping /metrics): also allowed on edge_http."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "admin_cidrs must be CIDR blocks, and not the whole internet."
  }
}

variable "root_volume_gb" {
  description = "Size of each edge's encrypted gp3 root volume, GiB."
  type        = number
  default     = 30

  validation {
    condition     = var.root_volume_gb >= 8 && floor(var.root_volume_gb) == var.root_volume_gb
    error_message = "root_volume_gb must be a whole number of at least 8 (the AMI's own size)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

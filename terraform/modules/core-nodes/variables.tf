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

variable "voters" {
  description = "This region's core voters, as in terraform.tfvars.json: the raft node id and the name other nodes and edges dial."
  type = list(object({
    id   = number
    name = string
  }))

  validation {
    condition     = length(var.voters) > 0
    error_message = "voters must hold at least one voter (a region without voters needs no core-nodes module)."
  }

  validation {
    condition     = alltrue([for v in var.voters : v.id >= 1 && floor(v.id) == v.id && length(v.name) > 0])
    error_message = "Every voter needs a whole, non-zero id and a name."
  }

  validation {
    condition     = length(distinct([for v in var.voters : v.id])) == length(var.voters)
    error_message = "Voter ids must be unique."
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
      alltrue([for p in [var.ports.core_http, var.ports.core_link, var.ports.core_raft] : p > 0]) &&
      length(distinct([var.ports.core_http, var.ports.core_link, var.ports.core_raft])) == 3
    )
    error_message = "core_http, core_link and core_raft must be set and differ."
  }
}

variable "configs" {
  description = "Each voter's rendered config (`tern deploy render` → core/node-<id>.toml), by voter id as a string."
  type        = map(string)

  validation {
    condition     = alltrue([for text in values(var.configs) : length(trimspace(text)) > 0])
    error_message = "A rendered config is empty."
  }
}

variable "cert_dir" {
  description = "Local directory written by `tern certs init` and `tern certs issue`: ca.pem and node-<id>.pem/.key for every voter here (ca.key is never read)."
  type        = string

  validation {
    condition     = length(trimspace(var.cert_dir)) > 0
    error_message = "cert_dir must name a directory."
  }
}

variable "manager_token" {
  description = "The business token (TERN_MANAGER_TOKEN) the core's HTTP API asks for; stored as an SSM SecureString."
  type        = string
  sensitive   = true

  validation {
    # The token lands in a systemd EnvironmentFile, which has its own quoting rules.
    condition     = can(regex("^[A-Za-z0-9._~+/=-]{16,}$", var.manager_token))
    error_message = "manager_token must be at least 16 characters of letters, digits and ._~+/=-."
  }
}

variable "admin_token" {
  description = "The operators' token for /cluster/* (TERN_ADMIN_TOKEN); must differ from manager_token. Stored as an SSM SecureString."
  type        = string
  sensitive   = true

  validation {
    condition     = can(regex("^[A-Za-z0-9._~+/=-]{16,}$", var.admin_token))
    error_message = "admin_token must be at least 16 characters of letters, digits and ._~+/=-."
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
  description = "EC2 instance type for the voters; x86_64 only (the AMI and the release artifact are x86_64)."
  type        = string
  default     = "c7i.large"

  validation {
    condition     = can(regex("^[a-z0-9-]+\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like c7i.large."
  }
}

variable "vpc_id" {
  description = "VPC of the voters' security group."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_id" {
  description = "Public subnet (routed to an internet gateway) in vpc_id for the voters; their data volumes are created in its availability zone."
  type        = string

  validation {
    condition     = can(regex("^subnet-[0-9a-f]+$", var.subnet_id))
    error_message = "subnet_id must look like subnet-0123abcd."
  }
}

variable "peer_cidrs" {
  description = "Where the other core nodes and the edges connect from (their public IPs as /32s): allowed on core_raft and core_link."
  type        = list(string)

  validation {
    condition     = length(var.peer_cidrs) > 0
    error_message = "peer_cidrs must not be empty."
  }

  validation {
    condition     = alltrue([for c in var.peer_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "peer_cidrs must be CIDR blocks, and not the whole internet."
  }
}

variable "api_cidrs" {
  description = "Where the business servers and operators call the core's HTTP API from: allowed on core_http."
  type        = list(string)

  validation {
    condition     = length(var.api_cidrs) > 0
    error_message = "api_cidrs must not be empty."
  }

  validation {
    condition     = alltrue([for c in var.api_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "api_cidrs must be CIDR blocks, and not the whole internet."
  }
}

variable "root_volume_gb" {
  description = "Size of each voter's encrypted gp3 root volume, GiB."
  type        = number
  default     = 50

  validation {
    condition     = var.root_volume_gb >= 8 && floor(var.root_volume_gb) == var.root_volume_gb
    error_message = "root_volume_gb must be a whole number of at least 8 (the AMI's own size)."
  }
}

variable "data_volume_gb" {
  description = "Size of each voter's encrypted gp3 data volume, mounted at /var/lib/tern (RocksDB), GiB."
  type        = number
  default     = 100

  validation {
    condition     = var.data_volume_gb >= 1 && var.data_volume_gb <= 16384 && floor(var.data_volume_gb) == var.data_volume_gb
    error_message = "data_volume_gb must be a whole number from 1 to 16384."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

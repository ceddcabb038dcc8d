variable "name" {
  description = "Name of the security group (and its Name tag)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,255}$", var.name))
    error_message = "name: letters, digits, '.', '_' and '-', at most 255 characters."
  }
}

variable "description" {
  description = "Description of the security group."
  type        = string
}

variable "vpc_id" {
  description = "VPC the security group belongs to."
  type        = string
}

variable "rules" {
  description = "Inbound TCP rules by name: the port, the source networks (IPv4 and IPv6 CIDRs, mixed) and a description. A rule with no source is left out."
  type = map(object({
    port        = number
    cidrs       = list(string)
    description = string
  }))

  validation {
    condition     = alltrue([for r in values(var.rules) : r.port > 0 && r.port < 65536])
    error_message = "rules: every port must be 1-65535."
  }

  validation {
    condition     = alltrue(flatten([for r in values(var.rules) : [for c in r.cidrs : can(cidrhost(c, 0))]]))
    error_message = "rules: every source must be a CIDR block such as 203.0.113.0/24 or 2001:db8::/32."
  }
}

variable "egress_description" {
  description = "Description of the rule that lets the machines reach anywhere (other regions' nodes, the release artifact, AWS APIs)."
  type        = string
}

variable "tags" {
  description = "Tags for the security group."
  type        = map(string)
  default     = {}
}

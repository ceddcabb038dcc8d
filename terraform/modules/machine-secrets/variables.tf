variable "name" {
  description = "Name of the IAM role and its instance profile, and of the KMS alias (alias/<name>, dots turned into dashes); also the key's Name tag."
  type        = string

  validation {
    # The IAM role name is the shortest limit of the three.
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", var.name))
    error_message = "name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."
  }
}

variable "description" {
  description = "Description of the IAM role: whose machines assume it."
  type        = string
}

variable "key_description" {
  description = "Description of the KMS key: what it encrypts (these parameters, and the volumes the caller encrypts with kms_key_arn)."
  type        = string
}

variable "parameter_path" {
  description = "SSM path every parameter is created under, without a trailing slash (e.g. `/tern-prod/eu-west/core`); the role may read under it and nowhere else."
  type        = string

  validation {
    # The role's policy allows parameter<parameter_path>/*: a trailing slash would make that //*,
    # which matches none of the parameters.
    condition     = can(regex("^(/[A-Za-z0-9_.-]+)+$", var.parameter_path))
    error_message = "parameter_path must look like /a/b: segments of letters, digits, '_', '.' or '-', no trailing slash."
  }
}

variable "parameters" {
  description = "The SecureString parameters, by name under parameter_path (e.g. `certs/ca.pem`): each one's description, value, and tier when not SSM's default (Standard). The values pass through Terraform's state; mark secret ones with sensitive()."
  type = map(object({
    description = string
    value       = string
    tier        = optional(string)
  }))

  validation {
    condition     = alltrue([for name in keys(var.parameters) : can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", name))])
    error_message = "Parameter names must be relative paths (certs/ca.pem) of letters, digits, '_', '.' and '-'."
  }

  validation {
    condition     = alltrue([for p in values(var.parameters) : p.value != null])
    error_message = "Every parameter needs a value."
  }

  validation {
    condition     = alltrue([for p in values(var.parameters) : contains(["Standard", "Advanced", "Intelligent-Tiering"], coalesce(p.tier, "Standard"))])
    error_message = "A parameter's tier must be Standard, Advanced or Intelligent-Tiering (or left out)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

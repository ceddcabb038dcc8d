locals {
  name = "${var.deployment}-${var.region_id}-core"

  # Everything secret this module stores lives under this path, mirroring the files on the machine
  # (certs/ca.pem, certs/node-<id>.pem, ...); the instance role may read nothing else.
  param_prefix = "/${var.deployment}/${var.region_id}/core"

  voters = { for v in var.voters : tostring(v.id) => v }

  tags = merge(var.tags, {
    "tern:deployment" = var.deployment
    "tern:region"     = var.region_id
    "tern:role"       = "core"
  })

  rules = {
    raft = {
      port        = var.ports.core_raft
      cidrs       = var.peer_cidrs
      description = "Tern raft between core nodes (mutual TLS, node certificates)"
    }
    link = {
      port        = var.ports.core_link
      cidrs       = var.peer_cidrs
      description = "Tern edge links (mutual TLS, edge certificates)"
    }
    http = {
      port        = var.ports.core_http
      cidrs       = var.api_cidrs
      description = "Tern business HTTP API (manager and admin tokens)"
    }
  }

}

data "aws_region" "current" {}

data "aws_subnet" "this" {
  id = var.subnet_id
}

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

# --- Secrets: certificates and tokens in SSM, a KMS key of this module's own, the instance role --

module "secrets" {
  source = "../machine-secrets"

  name            = local.name
  description     = "Tern core voters of ${var.deployment} in ${var.region_id}"
  key_description = "Tern ${var.deployment} ${var.region_id}: core node secrets in SSM and their data volumes"
  parameter_path  = local.param_prefix
  tags            = local.tags

  parameters = merge(
    {
      "certs/ca.pem"   = { description = "Tern cluster CA certificate", value = file("${var.cert_dir}/ca.pem") }
      "tokens/manager" = { description = "Tern business API token (TERN_MANAGER_TOKEN)", value = var.manager_token }
      "tokens/admin"   = { description = "Tern cluster administration token (TERN_ADMIN_TOKEN)", value = var.admin_token }
    },
    merge([for id in keys(local.voters) : {
      "certs/node-${id}.pem" = { description = "Tern core node ${id} certificate", value = file("${var.cert_dir}/node-${id}.pem") }
      "certs/node-${id}.key" = { description = "Tern core node ${id} private key", value = sensitive(file("${var.cert_dir}/node-${id}.key")) }
    }]...),
  )
}

# --- Network --------------------------------------------------------------------------------

module "firewall" {
  source = "../machine-firewall"

  name               = local.name
  description        = "Tern core voters of ${var.deployment} in ${var.region_id}"
  vpc_id             = var.vpc_id
  rules              = local.rules
  egress_description = "Peers in other regions, the release artifact, AWS APIs"
  tags               = local.tags
}

# Allocated apart from the instances, so that other modules can put these addresses in their own
# rules (and this one can take theirs) without a dependency cycle; the address also outlives any
# replacement of its instance.
resource "aws_eip" "voter" {
  for_each = local.voters

  domain = "vpc"
  tags   = merge(local.tags, { Name = "${local.name}-node-${each.key}", "tern:node-id" = each.key })
}

resource "aws_eip_association" "voter" {
  for_each = local.voters

  allocation_id = aws_eip.voter[each.key].allocation_id
  instance_id   = aws_instance.voter[each.key].id
}

# --- Voters ---------------------------------------------------------------------------------

resource "aws_ebs_volume" "data" {
  for_each = local.voters

  availability_zone = data.aws_subnet.this.availability_zone
  size              = var.data_volume_gb
  type              = "gp3"
  encrypted         = true
  kms_key_id        = module.secrets.kms_key_arn
  # The raft log and state machine: keep a snapshot if the volume is ever destroyed.
  final_snapshot = true

  tags = merge(local.tags, { Name = "${local.name}-node-${each.key}-data", "tern:node-id" = each.key })
}

resource "aws_instance" "voter" {
  for_each = local.voters

  ami                  = data.aws_ssm_parameter.al2023.insecure_value
  instance_type        = var.instance_type
  iam_instance_profile = module.secrets.instance_profile_name
  monitoring           = true
  ebs_optimized        = true

  # cloud-init acts on first boot only: a new config or release means a new instance (the data
  # volume and the address carry over).
  user_data_replace_on_change = true
  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    node_id         = each.key
    config          = try(var.configs[each.key], "")
    artifact_url    = var.artifact_url
    artifact_sha256 = var.artifact_sha256
    aws_region      = data.aws_region.current.name
    param_prefix    = local.param_prefix
    fetch_functions = module.secrets.fetch_functions
    data_volume_id  = aws_ebs_volume.data[each.key].id
  })

  subnet_id              = var.subnet_id
  vpc_security_group_ids = [module.firewall.security_group_id]

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gb
    encrypted             = true
    kms_key_id            = module.secrets.kms_key_arn
    delete_on_termination = true
    tags                  = merge(local.tags, { Name = "${local.name}-node-${each.key}-root" })
  }

  tags = merge(local.tags, { Name = "${local.name}-node-${each.key}", "tern:node-id" = each.key })

  lifecycle {
    # A newer AMI alone is no reason to replace a voter; it is picked up at the next replacement.
    ignore_changes = [ami]

    precondition {
      condition     = contains(keys(var.configs), each.key)
      error_message = "configs has no entry for voter ${each.key} (core/node-${each.key}.toml of the rendering)."
    }

    precondition {
      # The core refuses to start otherwise: the business token must not open /cluster/*.
      condition     = var.admin_token != var.manager_token
      error_message = "admin_token must differ from manager_token."
    }
  }
}

resource "aws_volume_attachment" "data" {
  for_each = local.voters

  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[each.key].id
  instance_id = aws_instance.voter[each.key].id
  # Let the node stop and the filesystem unmount cleanly before the volume moves to a new instance.
  stop_instance_before_detaching = true
}

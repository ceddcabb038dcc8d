locals {
  name = "${var.deployment}-${var.region_id}-edge"

  # Apart from the core's path, so an edge (the part facing the internet) cannot read the core
  # tokens or node keys; laid out like the files on the machine.
  param_prefix = "/${var.deployment}/${var.region_id}/edge"

  edges = { for e in var.edges : e.id => e }
  wss   = var.ports.edge_wss != 0

  tags = merge(var.tags, {
    "tern:deployment" = var.deployment
    "tern:region"     = var.region_id
    "tern:role"       = "edge"
  })

  listeners = {
    tcp = var.ports.edge_tcp
    ws  = var.ports.edge_ws
    wss = var.ports.edge_wss
  }

  # The client listeners are open to the whole internet on purpose: every session on them
  # authenticates with its user's token (docs/SECURITY.md). Nothing else here is public.
  client_rules = { for name, port in local.listeners : name => {
    port        = port
    cidrs       = ["0.0.0.0/0", "::/0"]
    description = "Tern client listener (${name}): public, every session authenticated by a user token"
  } if port != 0 }

  http_rules = {
    health = {
      port        = var.ports.edge_http
      cidrs       = var.health_check_cidrs
      description = "Tern edge /healthz for Route 53 health checkers"
    }
    admin = {
      port        = var.ports.edge_http
      cidrs       = var.admin_cidrs
      description = "Tern edge HTTP (/healthz, /metrics) for operators and monitoring"
    }
  }
}

data "aws_region" "current" {}

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

# --- Secrets: link certificates and the public TLS certificate in SSM, a KMS key, the role -----

module "secrets" {
  source = "../machine-secrets"

  name            = local.name
  description     = "Tern edges of ${var.deployment} in ${var.region_id}"
  key_description = "Tern ${var.deployment} ${var.region_id}: edge secrets in SSM and their volumes"
  parameter_path  = local.param_prefix
  tags            = local.tags

  parameters = merge(
    {
      "certs/ca.pem" = { description = "Tern cluster CA certificate", value = file("${var.cert_dir}/ca.pem") }
    },
    merge([for id in keys(local.edges) : {
      "certs/edge-${id}.pem" = { description = "Tern edge ${id} link certificate", value = file("${var.cert_dir}/edge-${id}.pem") }
      "certs/edge-${id}.key" = { description = "Tern edge ${id} link private key", value = sensitive(file("${var.cert_dir}/edge-${id}.key")) }
    }]...),
    local.wss ? {
      # A chain with intermediates can pass the 4 KB of a standard parameter.
      "tls/fullchain.pem" = { description = "Public certificate chain of the edges' wss listener", value = var.tls_cert_pem, tier = "Intelligent-Tiering" }
      "tls/privkey.pem"   = { description = "Private key of the edges' wss certificate", value = var.tls_key_pem }
    } : {},
  )
}

# --- Network --------------------------------------------------------------------------------

module "firewall" {
  source = "../machine-firewall"

  name               = local.name
  description        = "Tern edges of ${var.deployment} in ${var.region_id}"
  vpc_id             = var.vpc_id
  rules              = merge(local.client_rules, local.http_rules)
  egress_description = "Core links in every region, the release artifact, AWS APIs"
  tags               = local.tags
}

# Allocated apart from the instances, so that the core modules can allow these addresses on their
# link port without a dependency cycle; the address also outlives any replacement of its instance.
resource "aws_eip" "edge" {
  for_each = local.edges

  domain = "vpc"
  tags   = merge(local.tags, { Name = "${local.name}-${each.key}", "tern:edge-id" = each.key })
}

resource "aws_eip_association" "edge" {
  for_each = local.edges

  allocation_id = aws_eip.edge[each.key].allocation_id
  instance_id   = aws_instance.edge[each.key].id
}

# --- Edges ----------------------------------------------------------------------------------

resource "aws_instance" "edge" {
  for_each = local.edges

  ami                    = data.aws_ssm_parameter.al2023.insecure_value
  instance_type          = var.instance_type
  iam_instance_profile   = module.secrets.instance_profile_name
  subnet_id              = var.subnet_id
  vpc_security_group_ids = [module.firewall.security_group_id]
  monitoring             = true
  ebs_optimized          = true

  # cloud-init acts on first boot only: a new config or release means a new instance (the address
  # carries over; clients reconnect, Route 53 stops sending new ones while /healthz fails).
  user_data_replace_on_change = true
  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    edge_id         = each.key
    config          = try(var.configs[each.key], "")
    artifact_url    = var.artifact_url
    artifact_sha256 = var.artifact_sha256
    aws_region      = data.aws_region.current.name
    param_prefix    = local.param_prefix
    fetch_functions = module.secrets.fetch_functions
    wss             = local.wss
  })

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
    tags                  = merge(local.tags, { Name = "${local.name}-${each.key}-root" })
  }

  tags = merge(local.tags, { Name = "${local.name}-${each.key}", "tern:edge-id" = each.key })

  lifecycle {
    # A newer AMI alone is no reason to replace an edge; it is picked up at the next replacement.
    ignore_changes = [ami]

    precondition {
      condition     = contains(keys(var.configs), each.key)
      error_message = "configs has no entry for edge ${each.key} (edge/${each.key}.toml of the rendering)."
    }

    precondition {
      condition     = !local.wss || (var.tls_cert_pem != null && var.tls_key_pem != null)
      error_message = "ports.edge_wss is set: tls_cert_pem and tls_key_pem are required."
    }
  }
}

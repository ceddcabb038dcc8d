# Route 53 is a global service whose API lives in us-east-1.
provider "aws" {
  region = "us-east-1"
}

provider "aws" {
  alias  = "eu_west"
  region = var.regions["eu-west"].cloud_region
}

provider "aws" {
  alias  = "us_east"
  region = var.regions["us-east"].cloud_region
}

provider "aws" {
  alias  = "ap_southeast"
  region = var.regions["ap-southeast"].cloud_region
}

locals {
  tags = {
    "managed-by" = "terraform"
    "tern:stack" = "examples/three-regions"
  }

  core_configs = { for region_id, r in var.regions : region_id => {
    for v in r.voters : tostring(v.id) => file("${var.rendered_dir}/core/node-${v.id}.toml")
  } }

  edge_configs = { for region_id, r in var.regions : region_id => {
    for e in r.edges : e.id => file("${var.rendered_dir}/edge/${e.id}.toml")
  } }

  # Every machine's Elastic IP as a /32: voters dial each other's raft port and edges dial every
  # voter's link port over public addresses. The modules allocate these addresses apart from their
  # instances, so feeding them back into every core module's rules forms no cycle.
  peer_cidrs = [for ip in concat(
    values(module.core_eu_west.public_ips),
    values(module.core_us_east.public_ips),
    values(module.core_ap_southeast.public_ips),
    values(module.edges_eu_west.public_ips),
    values(module.edges_us_east.public_ips),
    values(module.edges_ap_southeast.public_ips),
  ) : "${ip}/32"]
}

# --- eu-west ----------------------------------------------------------------------------------

module "core_eu_west" {
  source    = "../../modules/core-nodes"
  providers = { aws = aws.eu_west }

  deployment      = var.deployment
  region_id       = "eu-west"
  voters          = var.regions["eu-west"].voters
  ports           = var.ports
  configs         = local.core_configs["eu-west"]
  cert_dir        = var.cert_dir
  manager_token   = var.manager_token
  admin_token     = var.admin_token
  artifact_url    = var.artifact_url
  artifact_sha256 = var.artifact_sha256
  vpc_id          = var.networks["eu-west"].vpc_id
  subnet_id       = var.networks["eu-west"].subnet_id
  peer_cidrs      = local.peer_cidrs
  api_cidrs       = var.api_cidrs
  tags            = local.tags
}

module "edges_eu_west" {
  source    = "../../modules/edge-region"
  providers = { aws = aws.eu_west }

  deployment         = var.deployment
  region_id          = "eu-west"
  edges              = var.regions["eu-west"].edges
  ports              = var.ports
  configs            = local.edge_configs["eu-west"]
  cert_dir           = var.cert_dir
  tls_cert_pem       = var.tls_cert_pem
  tls_key_pem        = var.tls_key_pem
  artifact_url       = var.artifact_url
  artifact_sha256    = var.artifact_sha256
  vpc_id             = var.networks["eu-west"].vpc_id
  subnet_id          = var.networks["eu-west"].subnet_id
  health_check_cidrs = var.health_check_cidrs
  admin_cidrs        = var.admin_cidrs
  tags               = local.tags
}

# --- us-east ----------------------------------------------------------------------------------

module "core_us_east" {
  source    = "../../modules/core-nodes"
  providers = { aws = aws.us_east }

  deployment      = var.deployment
  region_id       = "us-east"
  voters          = var.regions["us-east"].voters
  ports           = var.ports
  configs         = local.core_configs["us-east"]
  cert_dir        = var.cert_dir
  manager_token   = var.manager_token
  admin_token     = var.admin_token
  artifact_url    = var.artifact_url
  artifact_sha256 = var.artifact_sha256
  vpc_id          = var.networks["us-east"].vpc_id
  subnet_id       = var.networks["us-east"].subnet_id
  peer_cidrs      = local.peer_cidrs
  api_cidrs       = var.api_cidrs
  tags            = local.tags
}

module "edges_us_east" {
  source    = "../../modules/edge-region"
  providers = { aws = aws.us_east }

  deployment         = var.deployment
  region_id          = "us-east"
  edges              = var.regions["us-east"].edges
  ports              = var.ports
  configs            = local.edge_configs["us-east"]
  cert_dir           = var.cert_dir
  tls_cert_pem       = var.tls_cert_pem
  tls_key_pem        = var.tls_key_pem
  artifact_url       = var.artifact_url
  artifact_sha256    = var.artifact_sha256
  vpc_id             = var.networks["us-east"].vpc_id
  subnet_id          = var.networks["us-east"].subnet_id
  health_check_cidrs = var.health_check_cidrs
  admin_cidrs        = var.admin_cidrs
  tags               = local.tags
}

# --- ap-southeast -----------------------------------------------------------------------------

module "core_ap_southeast" {
  source    = "../../modules/core-nodes"
  providers = { aws = aws.ap_southeast }

  deployment      = var.deployment
  region_id       = "ap-southeast"
  voters          = var.regions["ap-southeast"].voters
  ports           = var.ports
  configs         = local.core_configs["ap-southeast"]
  cert_dir        = var.cert_dir
  manager_token   = var.manager_token
  admin_token     = var.admin_token
  artifact_url    = var.artifact_url
  artifact_sha256 = var.artifact_sha256
  vpc_id          = var.networks["ap-southeast"].vpc_id
  subnet_id       = var.networks["ap-southeast"].subnet_id
  peer_cidrs      = local.peer_cidrs
  api_cidrs       = var.api_cidrs
  tags            = local.tags
}

module "edges_ap_southeast" {
  source    = "../../modules/edge-region"
  providers = { aws = aws.ap_southeast }

  deployment         = var.deployment
  region_id          = "ap-southeast"
  edges              = var.regions["ap-southeast"].edges
  ports              = var.ports
  configs            = local.edge_configs["ap-southeast"]
  cert_dir           = var.cert_dir
  tls_cert_pem       = var.tls_cert_pem
  tls_key_pem        = var.tls_key_pem
  artifact_url       = var.artifact_url
  artifact_sha256    = var.artifact_sha256
  vpc_id             = var.networks["ap-southeast"].vpc_id
  subnet_id          = var.networks["ap-southeast"].subnet_id
  health_check_cidrs = var.health_check_cidrs
  admin_cidrs        = var.admin_cidrs
  tags               = local.tags
}

# --- DNS: every name, health checks, latency routing ------------------------------------------

module "dns" {
  source = "../../modules/dns"

  zone_id     = var.zone_id
  domain      = var.domain
  regions     = var.regions
  health_port = var.ports.edge_http

  edge_ips = merge(
    module.edges_eu_west.public_ips,
    module.edges_us_east.public_ips,
    module.edges_ap_southeast.public_ips,
  )

  voter_ips = merge(
    module.core_eu_west.public_ips,
    module.core_us_east.public_ips,
    module.core_ap_southeast.public_ips,
  )

  tags = local.tags
}

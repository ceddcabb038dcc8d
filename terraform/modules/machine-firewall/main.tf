locals {
  # Security group rules take IPv4 and IPv6 blocks in separate lists; a rule with no source is left out.
  ingress = { for name, rule in var.rules : name => merge(rule, {
    ipv4 = [for c in rule.cidrs : c if !strcontains(c, ":")]
    ipv6 = [for c in rule.cidrs : c if strcontains(c, ":")]
  }) if length(rule.cidrs) > 0 }
}

resource "aws_security_group" "this" {
  # checkov:skip=CKV2_AWS_5: attached by the caller, which puts security_group_id in its instances' vpc_security_group_ids (core-nodes, edge-region); checkov does not follow a module output into the calling module
  name        = var.name
  description = var.description
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = var.name })
}

resource "aws_security_group_rule" "ingress" {
  for_each = local.ingress

  type              = "ingress"
  security_group_id = aws_security_group.this.id
  description       = each.value.description
  protocol          = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  # An empty list is left out (null) rather than sent.
  cidr_blocks      = length(each.value.ipv4) > 0 ? each.value.ipv4 : null
  ipv6_cidr_blocks = length(each.value.ipv6) > 0 ? each.value.ipv6 : null
}

resource "aws_security_group_rule" "egress" {
  # checkov:skip=CKV_AWS_382: Tern machines dial core nodes in other regions on their public IPs, download the release artifact from wherever it is hosted and reach the regional SSM and KMS endpoints; there is no NAT or proxy to narrow this to
  type              = "egress"
  security_group_id = aws_security_group.this.id
  description       = var.egress_description
  protocol          = "-1"
  from_port         = 0
  to_port           = 0
  cidr_blocks       = ["0.0.0.0/0"]
  ipv6_cidr_blocks  = ["::/0"]
}

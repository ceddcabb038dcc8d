data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  arn_prefix = "arn:${data.aws_partition.current.partition}"
  account    = data.aws_caller_identity.current.account_id
}

# --- The key: encrypts the parameters, and whatever else the caller gives it (volumes) -----------

resource "aws_kms_key" "this" {
  description             = var.key_description
  enable_key_rotation     = true
  deletion_window_in_days = 30

  # The account statement is what lets IAM policies (the machines' role, the operators) use the key;
  # without it only this policy could grant access.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountIAMPolicies"
      Effect    = "Allow"
      Principal = { AWS = "${local.arn_prefix}:iam::${local.account}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${replace(var.name, ".", "-")}"
  target_key_id = aws_kms_key.this.key_id
}

# --- The parameters ---------------------------------------------------------------------------

resource "aws_ssm_parameter" "this" {
  for_each = var.parameters

  name        = "${var.parameter_path}/${each.key}"
  description = each.value.description
  type        = "SecureString"
  tier        = each.value.tier
  key_id      = aws_kms_key.this.arn
  value       = each.value.value
  tags        = var.tags
}

# --- Instance role: read these parameters, nothing else ----------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "secrets" {
  statement {
    sid       = "ReadOwnParameters"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = ["${local.arn_prefix}:ssm:${data.aws_region.current.name}:${local.account}:parameter${var.parameter_path}/*"]
  }

  statement {
    sid       = "DecryptThroughSSM"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.name
  description        = var.description
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "secrets" {
  name   = "read-tern-secrets"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.secrets.json
}

resource "aws_iam_instance_profile" "this" {
  name = var.name
  role = aws_iam_role.this.name
  tags = var.tags
}

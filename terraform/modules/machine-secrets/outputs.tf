output "kms_key_arn" {
  description = "ARN of the key encrypting the parameters: for the machines' EBS volumes too."
  value       = aws_kms_key.this.arn
}

output "instance_profile_name" {
  description = "Name of the instance profile of the role that reads the parameters (ssm:GetParameter(s) under parameter_path, kms:Decrypt through SSM)."
  value       = aws_iam_instance_profile.this.name
}

output "fetch_functions" {
  description = "Bash for a script on the machines that has set `region` (their AWS region) and `params` (parameter_path): `get PARAMETER` prints a parameter's value (TERN_SECRETS_TRIES tries, default 5, 5 s apart); `put PARAMETER FILE MODE OWNER` writes it to FILE, or keeps FILE if it exists and SSM cannot be read."
  value       = chomp(file("${path.module}/fetch-functions.sh"))
}

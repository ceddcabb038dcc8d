output "security_group_id" {
  description = "ID of the security group, for the machines' vpc_security_group_ids."
  value       = aws_security_group.this.id
}

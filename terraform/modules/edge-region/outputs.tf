output "instance_ids" {
  description = "EC2 instance id of each edge, by edge id."
  value       = { for id, instance in aws_instance.edge : id => instance.id }
}

output "public_ips" {
  description = "Elastic IP of each edge, by edge id: what its DNS name and health check point at."
  value       = { for id, eip in aws_eip.edge : id => eip.public_ip }
}

output "private_ips" {
  description = "Private IP of each edge, by edge id."
  value       = { for id, instance in aws_instance.edge : id => instance.private_ip }
}

output "security_group_id" {
  description = "Id of the edges' security group."
  value       = module.firewall.security_group_id
}

output "parameter_path" {
  description = "SSM Parameter Store path holding the edges' certificates and keys."
  value       = local.param_prefix
}

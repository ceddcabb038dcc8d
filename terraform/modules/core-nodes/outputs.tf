output "instance_ids" {
  description = "EC2 instance id of each voter, by voter id (as a string)."
  value       = { for id, instance in aws_instance.voter : id => instance.id }
}

output "public_ips" {
  description = "Elastic IP of each voter, by voter id (as a string): what its DNS name points at and what peers' rules allow."
  value       = { for id, eip in aws_eip.voter : id => eip.public_ip }
}

output "private_ips" {
  description = "Private IP of each voter, by voter id (as a string)."
  value       = { for id, instance in aws_instance.voter : id => instance.private_ip }
}

output "security_group_id" {
  description = "Id of the voters' security group."
  value       = module.firewall.security_group_id
}

output "parameter_path" {
  description = "SSM Parameter Store path holding the voters' certificates, keys and tokens."
  value       = local.param_prefix
}

output "function_name" {
  description = "The watchdog Lambda."
  value       = aws_lambda_function.watchdog.function_name
}

output "remediation_function_name" {
  description = "The remediation Lambda (null unless remediation_enabled)."
  value       = var.remediation_enabled ? aws_lambda_function.remediation[0].function_name : null
}

output "state_bucket" {
  description = "Bucket holding incidents, known-good revisions and the journal."
  value       = aws_s3_bucket.state.id
}

output "alerts_topic_arn" {
  description = "Where incident notifications and the alarms go."
  value       = local.topic_arn
}

output "role_arn" {
  description = "The watchdog's least-privilege role."
  value       = aws_iam_role.watchdog.arn
}

output "kill_switch_parameter" {
  description = "Set this SSM parameter to \"on\" to stop every remediation action at once."
  value       = aws_ssm_parameter.kill_switch.name
}

output "function_name" {
  description = "The watchdog Lambda."
  value       = aws_lambda_function.watchdog.function_name
}

output "state_bucket" {
  description = "Bucket holding incidents, known-good revisions and the journal."
  value       = aws_s3_bucket.state.id
}

output "alerts_topic_arn" {
  description = "Where incident notifications and the heartbeat alarm go."
  value       = local.topic_arn
}

output "role_arn" {
  description = "The watchdog's least-privilege role."
  value       = aws_iam_role.watchdog.arn
}

# The watchdog's own silence and blindness are alarms, one per account-region it sweeps ("home" is this one).

# No verified sweep for two periods (missing data = breaching): crashed, not scheduled, or blind.
resource "aws_cloudwatch_metric_alarm" "heartbeat" {
  for_each            = toset(local.sweeps)
  alarm_name          = "${var.name}-heartbeat-missing-${replace(each.key, "/", "-")}"
  alarm_description   = "deploy-guard has not completed a verified sweep of ${each.key}: incidents there may be going unreported."
  namespace           = "DeployGuard"
  metric_name         = "Heartbeat"
  dimensions          = { Shard = each.key }
  statistic           = "Sum"
  period              = var.heartbeat_period_seconds
  evaluation_periods  = 2
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [local.topic_arn]
  ok_actions          = [local.topic_arn]
}

# A sweep ran but could not verify something (throttled, access denied, unreachable): it sent no heartbeat.
resource "aws_cloudwatch_metric_alarm" "unverified" {
  for_each            = toset(local.sweeps)
  alarm_name          = "${var.name}-unverified-${replace(each.key, "/", "-")}"
  alarm_description   = "deploy-guard could not verify part of ${each.key}: see the function's log for what and why."
  namespace           = "DeployGuard"
  metric_name         = "Unverified"
  dimensions          = { Shard = each.key }
  statistic           = "Maximum"
  period              = var.heartbeat_period_seconds
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.topic_arn]
  ok_actions          = [local.topic_arn]
}

# An invocation failed (exit 3 raises; so does a crash): Lambda retries asynchronous invocations twice.
resource "aws_cloudwatch_metric_alarm" "errors" {
  for_each            = toset(local.functions)
  alarm_name          = "${each.key}-errors"
  alarm_description   = "The ${each.key} function failed an invocation: it could not verify, or it crashed."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.key }
  statistic           = "Sum"
  period              = var.heartbeat_period_seconds
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.topic_arn]
  ok_actions          = [local.topic_arn]
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition
  topic_arn = var.alarm_topic_arn != null ? var.alarm_topic_arn : aws_sns_topic.alerts[0].arn
  guard_toml = templatefile("${path.module}/guard.toml.tftpl", {
    clusters  = jsonencode(var.clusters)
    functions = var.functions == null ? "" : "functions = ${jsonencode(var.functions)}"
    state     = "s3://${aws_s3_bucket.state.id}/watch"
    topic_arn = local.topic_arn
    slack     = var.slack_webhook_url != ""
  })
}

# State: open incidents, known-good revisions, journal. Conditional writes (If-None-Match / If-Match) make
# two concurrent invocations unable to both act on one incident.
resource "aws_s3_bucket" "state" {
  bucket_prefix = "${var.name}-state-"
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_sns_topic" "alerts" {
  count = var.alarm_topic_arn == null ? 1 : 0
  name  = "${var.name}-alerts"
}

data "archive_file" "package" {
  type        = "zip"
  source_dir  = var.package_dir
  output_path = "${path.module}/.build/${var.name}.zip"
  excludes    = ["guard.toml"]
}

resource "aws_lambda_layer_version" "config" {
  layer_name       = "${var.name}-config"
  filename         = data.archive_file.config.output_path
  source_code_hash = data.archive_file.config.output_base64sha256
}

data "archive_file" "config" {
  type        = "zip"
  output_path = "${path.module}/.build/${var.name}-config.zip"
  source {
    content  = local.guard_toml
    filename = "guard.toml"
  }
}

resource "aws_lambda_function" "watchdog" {
  function_name    = var.name
  role             = aws_iam_role.watchdog.arn
  runtime          = "python3.11"
  handler          = "guard.lambda_handler.handler"
  filename         = data.archive_file.package.output_path
  source_code_hash = data.archive_file.package.output_base64sha256
  layers           = [aws_lambda_layer_version.config.arn] # guard.toml, read from /opt
  timeout          = 120
  memory_size      = 512
  # One sweep at a time per shard is enforced by the state store's conditional writes, not by concurrency.
  environment {
    variables = merge(
      { AWS_MAX_ATTEMPTS = "5" },
      var.slack_webhook_url != "" ? { SLACK_WEBHOOK_URL = var.slack_webhook_url } : {},
    )
  }
}

resource "aws_cloudwatch_log_group" "watchdog" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = 30
}

# Scheduled full sweep (and fan-out to the shards).
resource "aws_cloudwatch_event_rule" "schedule" {
  name                = "${var.name}-sweep"
  schedule_expression = var.schedule_expression
}

resource "aws_cloudwatch_event_target" "schedule" {
  rule  = aws_cloudwatch_event_rule.schedule.name
  arn   = aws_lambda_function.watchdog.arn
  input = length(var.shards) == 0 ? null : jsonencode({ "detail-type" = "Scheduled Event", shards = var.shards })
}

# Event-driven: a stopped task is examined within seconds of ECS reporting it.
resource "aws_cloudwatch_event_rule" "task_stopped" {
  name = "${var.name}-task-stopped"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail        = { lastStatus = ["STOPPED"] }
  })
}

resource "aws_cloudwatch_event_target" "task_stopped" {
  rule = aws_cloudwatch_event_rule.task_stopped.name
  arn  = aws_lambda_function.watchdog.arn
}

resource "aws_lambda_permission" "events" {
  for_each      = { schedule = aws_cloudwatch_event_rule.schedule.arn, task_stopped = aws_cloudwatch_event_rule.task_stopped.arn }
  statement_id  = "AllowEventBridge-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.watchdog.function_name
  principal     = "events.amazonaws.com"
  source_arn    = each.value
}

# The watchdog's own silence is an alarm: no heartbeat for two periods (missing data = breaching).
resource "aws_cloudwatch_metric_alarm" "heartbeat" {
  alarm_name          = "${var.name}-heartbeat-missing"
  alarm_description   = "deploy-guard has not completed a sweep: incidents may be going unreported."
  namespace           = "DeployGuard"
  metric_name         = "Heartbeat"
  statistic           = "Sum"
  period              = var.heartbeat_period_seconds
  evaluation_periods  = 2
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [local.topic_arn]
  ok_actions          = [local.topic_arn]
}

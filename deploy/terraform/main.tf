data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account     = data.aws_caller_identity.current.account_id
  region      = data.aws_region.current.name
  partition   = data.aws_partition.current.partition
  topic_arn   = var.alarm_topic_arn != null ? var.alarm_topic_arn : aws_sns_topic.alerts[0].arn
  remediation = var.remediation_enabled ? "${var.name}-remediate" : null
  functions   = concat([var.name], var.remediation_enabled ? [local.remediation] : [])
  # One heartbeat (and one Unverified count) per account-region a sweep covers: "home" is this one.
  sweeps = concat(length(var.shards) == 0 || var.sweep_home ? ["home"] : [], [for s in var.shards : "${s.account}/${s.region}"])
  guard_toml = templatefile("${path.module}/guard.toml.tftpl", {
    clusters    = jsonencode(var.clusters)
    functions   = var.functions == null ? "" : "functions = ${jsonencode(var.functions)}"
    state       = "s3://${aws_s3_bucket.state.id}/watch"
    topic_arn   = local.topic_arn
    slack       = var.slack_webhook_url != ""
    mode        = var.remediation_mode
    kill_switch = aws_ssm_parameter.kill_switch.name
    allow       = var.remediation_allow
  })
  schedule_input = {
    "detail-type"        = "Scheduled Event"
    shards               = var.shards
    sweep_home           = var.sweep_home
    remediation_function = local.remediation
  }
  task_stopped = {
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail        = { lastStatus = ["STOPPED"] }
  }
  # Only the watched clusters' tasks (the handler checks again: an event sent by hand is filtered too).
  cluster_arns = [for c in var.clusters : "arn:${local.partition}:ecs:${local.region}:${local.account}:cluster/${c}"]
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

# The kill switch every remediation action checks first: set it to "on" to stop the agent at once.
resource "aws_ssm_parameter" "kill_switch" {
  name  = "/${var.name}/kill-switch"
  type  = "String"
  value = "off"
  lifecycle {
    ignore_changes = [value] # flipped by people, never reset by an apply
  }
}

# The configuration both functions read at start (no zip tooling needed to ship it).
resource "aws_ssm_parameter" "config" {
  for_each = toset(local.functions)
  name     = "/${each.key}/guard.toml"
  type     = "String"
  value    = local.guard_toml
}

resource "aws_cloudwatch_log_group" "function" {
  for_each          = toset(local.functions)
  name              = "/aws/lambda/${each.key}"
  retention_in_days = 30
}

resource "aws_lambda_function" "watchdog" {
  function_name    = var.name
  role             = aws_iam_role.watchdog.arn
  runtime          = var.python_runtime
  architectures    = [var.architecture]
  handler          = "guard.lambda_handler.handler"
  filename         = var.package_zip
  source_code_hash = filebase64sha256(var.package_zip)
  timeout          = 120
  memory_size      = 512
  # One sweep at a time per shard is enforced by the state store's conditional writes, not by concurrency.
  environment {
    variables = merge(
      { AWS_MAX_ATTEMPTS = "5" },
      var.slack_webhook_url != "" ? { SLACK_WEBHOOK_URL = var.slack_webhook_url } : {},
    )
  }
  depends_on = [aws_cloudwatch_log_group.function, aws_ssm_parameter.config]
}

# Scheduled full sweep (and fan-out to the shards).
resource "aws_cloudwatch_event_rule" "schedule" {
  name                = "${var.name}-sweep"
  schedule_expression = var.schedule_expression
}

resource "aws_cloudwatch_event_target" "schedule" {
  rule  = aws_cloudwatch_event_rule.schedule.name
  arn   = aws_lambda_function.watchdog.arn
  input = jsonencode(local.schedule_input)
}

# Event-driven: a stopped task of a watched cluster is examined within seconds of ECS reporting it.
resource "aws_cloudwatch_event_rule" "task_stopped" {
  name = "${var.name}-task-stopped"
  event_pattern = jsonencode(length(var.clusters) == 0 ? local.task_stopped : merge(local.task_stopped, {
    detail = { lastStatus = ["STOPPED"], clusterArn = local.cluster_arns }
  }))
}

resource "aws_cloudwatch_event_target" "task_stopped" {
  rule = aws_cloudwatch_event_rule.task_stopped.name
  arn  = aws_lambda_function.watchdog.arn
  dynamic "input_transformer" {
    for_each = var.remediation_enabled ? [1] : []
    content {
      input_paths    = { detail = "$.detail" }
      input_template = "{\"detail-type\": \"ECS Task State Change\", \"detail\": <detail>, \"remediation_function\": \"${local.remediation}\"}"
    }
  }
}

resource "aws_lambda_permission" "events" {
  for_each      = { schedule = aws_cloudwatch_event_rule.schedule.arn, task_stopped = aws_cloudwatch_event_rule.task_stopped.arn }
  statement_id  = "AllowEventBridge-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.watchdog.function_name
  principal     = "events.amazonaws.com"
  source_arn    = each.value
}

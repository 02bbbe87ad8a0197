# Least privilege for the watchdog: read ECS/ECR/Lambda, write only its own state, metrics and topic, start only
# itself (shards) and the remediation function.
# tests/integration/test_deploy_module.py checks every API a sweep calls is listed here.
data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "watchdog" {
  name_prefix        = "${var.name}-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "watchdog" {
  statement {
    sid = "ReadEcs"
    actions = [
      "ecs:ListClusters",
      "ecs:ListServices",
      "ecs:DescribeServices",
      "ecs:ListTasks",
      "ecs:DescribeTasks",
      "ecs:DescribeTaskDefinition",
    ]
    resources = ["*"]
  }
  statement {
    sid = "ReadImages"
    actions = [
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
      "ecr:GetLifecyclePolicy",
      "ecr:DescribeImages",
      "ecr:StartLifecyclePolicyPreview",
      "ecr:GetLifecyclePolicyPreview",
    ]
    resources = ["*"]
  }
  statement {
    sid = "ReadLambda"
    actions = [
      "lambda:ListFunctions",
      "lambda:GetFunction",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "ReadRoles"
    actions   = ["iam:GetRole", "sts:GetCallerIdentity"]
    resources = ["*"]
  }
  statement {
    sid       = "ReadReferences"
    actions   = ["secretsmanager:DescribeSecret", "kms:DescribeKey"]
    resources = ["*"]
  }
  statement {
    sid       = "Heartbeat"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["DeployGuard"]
    }
  }
  statement {
    sid       = "Notify"
    actions   = ["sns:Publish"]
    resources = [local.topic_arn]
  }
  statement {
    sid       = "State"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.state.arn}/*"]
  }
  statement {
    sid       = "StateList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state.arn]
  }
  statement {
    sid       = "FanOut"
    actions   = ["lambda:InvokeFunction"]
    resources = [for f in local.functions : "arn:${local.partition}:lambda:${local.region}:${local.account}:function:${f}"]
  }
  statement {
    sid       = "Config"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.config[var.name].arn]
  }
  dynamic "statement" {
    for_each = length(var.shards) == 0 ? [] : [1]
    content {
      sid       = "Shards"
      actions   = ["sts:AssumeRole"]
      resources = [for s in var.shards : s.role_arn]
    }
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[var.name].arn}:*"]
  }
}

resource "aws_iam_role_policy" "watchdog" {
  role   = aws_iam_role.watchdog.id
  policy = data.aws_iam_policy_document.watchdog.json
}

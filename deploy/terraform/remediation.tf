# The agent in production, off by default: started by the watchdog for each incident it opens or worsens. It
# shares the state bucket (incidents, known-good records, journal) and the kill switch. Its role is the one
# `guard iam-policy --role remediate` prints for this scope; tests/integration/test_deploy_module.py applies
# the module and compares the two statement by statement.

locals {
  allowed_services  = [for a in var.remediation_allow : trimprefix(a.resource, "ecs:") if startswith(a.resource, "ecs:") && length(setintersection(a.actions, ["ecs_rollback", "redeploy"])) > 0]
  allowed_functions = [for a in var.remediation_allow : trimprefix(a.resource, "lambda:") if startswith(a.resource, "lambda:") && length(setintersection(a.actions, ["lambda_rollback", "lambda_image_rollback"])) > 0]
  function_arns     = [for f in local.allowed_functions : "arn:${local.partition}:lambda:${local.region}:${local.account}:function:${f}"]
  protected_repos   = [for a in var.remediation_allow : trimprefix(a.resource, "ecr:") if startswith(a.resource, "ecr:") && contains(a.actions, "protect_image")]
}

resource "aws_iam_role" "remediation" {
  count              = var.remediation_enabled ? 1 : 0
  name_prefix        = "${var.name}-remediate-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "remediation" {
  statement {
    sid       = "KillSwitch"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.kill_switch.arn]
  }
  statement {
    sid       = "Notify"
    actions   = ["sns:Publish"]
    resources = [local.topic_arn]
  }
  statement {
    sid       = "ReadEcs"
    actions   = ["ecs:DescribeServices", "ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }
  statement {
    sid       = "ReadImages"
    actions   = ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetLifecyclePolicy"]
    resources = ["*"]
  }
  dynamic "statement" {
    for_each = length(local.protected_repos) == 0 ? [] : [1]
    content {
      sid       = "ProtectImages"
      actions   = ["ecr:PutImage"]
      resources = [for r in local.protected_repos : "arn:${local.partition}:ecr:${local.region}:${local.account}:repository/${r}"]
    }
  }
  dynamic "statement" {
    for_each = length(local.allowed_services) == 0 ? [] : [1]
    content {
      sid       = "RollbackServices"
      actions   = ["ecs:UpdateService"]
      resources = [for s in local.allowed_services : "arn:${local.partition}:ecs:${local.region}:${local.account}:service/${s}"]
    }
  }
  dynamic "statement" {
    for_each = length(local.allowed_functions) == 0 ? [] : [1]
    content {
      sid = "RollbackFunctions"
      actions = [
        "lambda:GetAlias",
        "lambda:GetFunction",
        "lambda:GetFunctionConfiguration",
        "lambda:ListAliases",
        "lambda:ListVersionsByFunction",
        "lambda:UpdateAlias",
        "lambda:UpdateFunctionCode",
      ]
      resources = concat(local.function_arns, [for arn in local.function_arns : "${arn}:*"])
    }
  }
  statement {
    sid       = "StateList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["watch/*"]
    }
  }
  statement {
    sid       = "StateObjects"
    actions   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.state.arn}/watch/*"]
  }
  statement {
    sid       = "Config"
    actions   = ["ssm:GetParameter"]
    resources = [for k, p in aws_ssm_parameter.config : p.arn if k != var.name]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for k, g in aws_cloudwatch_log_group.function : "${g.arn}:*" if k != var.name]
  }
}

resource "aws_iam_role_policy" "remediation" {
  count  = var.remediation_enabled ? 1 : 0
  role   = aws_iam_role.remediation[0].id
  policy = data.aws_iam_policy_document.remediation.json
}

resource "aws_lambda_function" "remediation" {
  count            = var.remediation_enabled ? 1 : 0
  function_name    = local.remediation
  role             = aws_iam_role.remediation[0].arn
  runtime          = var.python_runtime
  architectures    = [var.architecture]
  handler          = "guard.lambda_handler.remediate_handler"
  filename         = coalesce(var.remediation_package_zip, var.package_zip)
  source_code_hash = filebase64sha256(coalesce(var.remediation_package_zip, var.package_zip))
  timeout          = 900 # an action waits for its postcondition (the service steady again)
  memory_size      = 512
  environment {
    variables = merge(
      { AWS_MAX_ATTEMPTS = "5" },
      var.slack_webhook_url != "" ? { SLACK_WEBHOOK_URL = var.slack_webhook_url } : {},
    )
  }
  depends_on = [aws_cloudwatch_log_group.function, aws_ssm_parameter.config]
  lifecycle {
    precondition {
      condition     = var.remediation_mode != "act" || length(var.remediation_allow) > 0
      error_message = "remediation_mode = \"act\" needs a remediation_allow list: the agent acts only on what it names."
    }
  }
}

# Remediation runs are long and must not overlap on one incident (the journal's claim enforces it too):
# the watchdog's asynchronous invoke is retried by Lambda on failure, at most twice.
resource "aws_lambda_function_event_invoke_config" "remediation" {
  count                        = var.remediation_enabled ? 1 : 0
  function_name                = aws_lambda_function.remediation[0].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 3600
}

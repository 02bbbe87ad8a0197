variable "name" {
  description = "Name prefix for every resource (and the watchdog function's name)."
  type        = string
  default     = "deploy-guard"
}

variable "package_zip" {
  description = "The watchdog's Lambda zip, as `make lambda-package` builds it (build/lambda-watchdog.zip)."
  type        = string
}

variable "python_runtime" {
  description = "The functions' Lambda runtime: the Python the package was built for (make lambda-package PYTHON_VERSION=...)."
  type        = string
  default     = "python3.11"
}

variable "architecture" {
  description = "The functions' architecture: the one the package was built for (make lambda-package ARCH=...)."
  type        = string
  default     = "x86_64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "clusters" {
  description = "ECS clusters to sweep; empty means every cluster in the region. Task events of other clusters are filtered out."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "functions" {
  description = "Lambda functions to watch; null means every image-based function."
  type        = list(string)
  default     = null
}

variable "schedule_expression" {
  description = "How often the full sweep runs."
  type        = string
  default     = "rate(1 minute)"
}

variable "shards" {
  description = "Other account-regions to sweep, each through a role this function may assume (fan-out: one invocation per shard)."
  type = list(object({
    account  = string
    region   = string
    role_arn = string
  }))
  default  = []
  nullable = false
}

variable "sweep_home" {
  description = "Whether the schedule also sweeps this account-region when shards are configured."
  type        = bool
  default     = true
  nullable    = false
}

variable "alarm_topic_arn" {
  description = "SNS topic for incident notifications and the alarms; created when null."
  type        = string
  default     = null
}

variable "slack_webhook_url" {
  description = "Slack incoming webhook for incident notifications (stored in the function's environment as SLACK_WEBHOOK_URL); empty to skip."
  type        = string
  default     = ""
  sensitive   = true
}

variable "heartbeat_period_seconds" {
  description = "A heartbeat alarm fires when its shard reported no verified sweep for two periods."
  type        = number
  default     = 300
}

variable "remediation_enabled" {
  description = "Deploy the remediation function: the watchdog starts it for every incident it opens or worsens."
  type        = bool
  default     = false
  nullable    = false
}

variable "remediation_package_zip" {
  description = "The remediation function's zip (make lambda-package builds build/lambda-remediation.zip, with the anthropic SDK); null reuses package_zip (playbook planner only)."
  type        = string
  default     = null
}

variable "remediation_mode" {
  description = "observe (plan and report), propose or act (act within the allowlist)."
  type        = string
  default     = "observe"
  nullable    = false
  validation {
    condition     = contains(["observe", "propose", "act"], var.remediation_mode)
    error_message = "remediation_mode must be observe, propose or act."
  }
}

variable "remediation_allow" {
  description = "The allowlist: resources (ecs:CLUSTER/SERVICE, lambda:FUNCTION, ecr:REPOSITORY; * patterns allowed) and the action kinds allowed on each."
  type = list(object({
    resource = string
    actions  = list(string)
  }))
  default  = []
  nullable = false
}

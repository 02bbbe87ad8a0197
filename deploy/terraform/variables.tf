variable "name" {
  description = "Name prefix for every resource."
  type        = string
  default     = "deploy-guard"
}

variable "package_dir" {
  description = "Directory holding deploy-guard and its dependencies (`make lambda-package` builds build/lambda)."
  type        = string
}

variable "clusters" {
  description = "ECS clusters to sweep; empty means every cluster in the region."
  type        = list(string)
  default     = []
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
  default = []
}

variable "alarm_topic_arn" {
  description = "SNS topic for incident notifications and the heartbeat alarm; created when null."
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
  description = "The heartbeat alarm fires when no sweep reported for two periods."
  type        = number
  default     = 300
}

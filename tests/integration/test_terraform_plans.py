"""The gate on plans made by real terraform and the real hashicorp/aws provider against the sandbox.

One workspace per module (init once): task definitions with sidecars from other registries, a service, an
image Lambda, a child module, a replace action and values known only after apply; gated as `terraform show
-json` output and as the binary plan file. Skips, saying why, without terraform or the provider mirror.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from guard.sandbox.aws import AwsSandbox
from guard.sandbox.scenarios import Scenario
from tests.support import terraform
from tests.support.guardrun import GuardRun, Outcome

pytestmark = pytest.mark.skipif(terraform.skip_reason() is not None, reason=str(terraform.skip_reason()))

MAIN = """
variable "web_tag" { type = string }
variable "full" { type = bool }
variable "registry" { type = string }
variable "lambda_role" { type = string }

resource "aws_ecs_task_definition" "web" {
  family                   = "web"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = "256"
  memory                   = "512"
  runtime_platform {
    cpu_architecture        = "X86_64"
    operating_system_family = "LINUX"
  }
  container_definitions = jsonencode([
    { name = "web", image = "${var.registry}/api:${var.web_tag}", essential = true, memory = 384 },
    { name = "datadog-agent", image = "public.ecr.aws/datadog/agent:7", essential = false, memory = 64 },
    { name = "envoy", image = "envoyproxy/envoy:v1.31.0", essential = false, memory = 64 },
  ])
}

resource "aws_ecs_cluster" "main" {
  count = var.full ? 1 : 0
  name  = "main"
}

resource "aws_ecs_service" "web" {
  count           = var.full ? 1 : 0
  name            = "web"
  cluster         = aws_ecs_cluster.main[0].id
  task_definition = aws_ecs_task_definition.web.arn
  desired_count   = 2
}

resource "aws_ecr_repository" "fresh" {
  count = var.full ? 1 : 0
  name  = "fresh"
}

resource "aws_ecs_task_definition" "fresh" {
  count  = var.full ? 1 : 0
  family = "fresh"
  container_definitions = jsonencode([
    { name = "fresh", image = "${aws_ecr_repository.fresh[0].repository_url}:v1", essential = true, memory = 256 },
  ])
}

resource "aws_lambda_function" "thumbs" {
  count         = var.full ? 1 : 0
  function_name = "thumbs"
  package_type  = "Image"
  image_uri     = "${var.registry}/api:v1"
  architectures = ["arm64"]
  role          = var.lambda_role
}

module "worker" {
  count    = var.full ? 1 : 0
  source   = "./modules/worker"
  registry = var.registry
}
"""

WORKER = """
variable "registry" { type = string }

resource "aws_ecs_task_definition" "this" {
  family = "worker"
  container_definitions = jsonencode([
    { name = "worker", image = "${var.registry}/api:never-pushed", essential = true, memory = 256 },
    { name = "log_router", image = "11111111111.dkr.ecr.us-east-1.amazonaws.com/aws-for-fluent-bit:stable",
      essential = true, memory = 64, firelensConfiguration = { type = "fluentbit" } },
  ])
}
"""


def _seed(aws: Scenario) -> tuple[str, str]:
    """The images (api:v1, api:v2, both amd64) and the Lambda role; the same content, digests and ARN each time."""
    registry = aws.repository("api").rsplit("/", 1)[0]
    for tag in ("v1", "v2"):
        aws.push_image("api", tag)
    return registry, aws.role("thumbs")


@pytest.fixture(scope="module")
def plans(aws_sandbox: AwsSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Apply web@v1, then plan web@v2 (a replace) plus everything else; the binary plan and its JSON."""
    aws_sandbox.reset()
    registry, role = _seed(Scenario(aws_sandbox))
    ws = terraform.workspace(tmp_path_factory.mktemp("tf"), aws_sandbox)
    ws.write("main.tf", MAIN)
    ws.write("modules/worker/main.tf", WORKER)
    ws.init()
    common = {"registry": registry, "lambda_role": role}
    ws.apply(web_tag="v1", full=False, **common)
    binary = ws.plan(web_tag="v2", full=True, **common)
    text = ws.show_json(binary)
    (ws.path / "plan.json").write_text(text)
    yield {"binary": binary, "json": ws.path / "plan.json", "doc": json.loads(text), "workspace": ws}


def _summary(out: Outcome) -> list[tuple[str, str, str, str]]:
    return sorted((f["check_id"], f["severity"], f["target"], f["message"]) for f in out.doc["findings"]
                  if f["check_id"] in ("IMG001", "IMG002"))


def test_the_plan_has_every_shape(plans: dict[str, Any]) -> None:
    changes = {rc["address"]: rc for rc in plans["doc"]["resource_changes"]}
    assert plans["doc"]["format_version"].startswith("1.")
    assert changes["aws_ecs_task_definition.web"]["change"]["actions"] == ["delete", "create"]  # replace
    assert changes["module.worker[0].aws_ecs_task_definition.this"]["module_address"] == "module.worker[0]"
    assert changes["aws_ecs_task_definition.fresh[0]"]["change"]["after_unknown"]["container_definitions"] is True
    assert changes["aws_ecs_service.web[0]"]["change"]["actions"] == ["create"]
    assert changes["aws_lambda_function.thumbs[0]"]["change"]["after"]["package_type"] == "Image"


@pytest.mark.parametrize("form", ["json", "binary"])
def test_gate_on_real_plan(plans: dict[str, Any], aws: Scenario, guard: GuardRun,
                           monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    _seed(aws)  # the sandbox was reset for this test
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", plans["workspace"].environ["TF_CLI_CONFIG_FILE"])
    out = guard("--plan", str(plans[form]))
    assert out.code == 1, out.stdout + out.stderr
    arm = "module.worker[0].aws_ecs_task_definition.this"
    assert _summary(out) == sorted([
        ("IMG001", "error", arm, "container log_router: image 11111111111.dkr.ecr.us-east-1.amazonaws.com/"
         "aws-for-fluent-bit:stable can never be pulled: account '11111111111' is not a 12-digit AWS account ID"),
        ("IMG001", "error", arm, "container worker: image api:never-pushed does not exist in account "
         "123456789012 (us-east-1)"),
        ("IMG001", "info", "aws_ecs_task_definition.web", "container datadog-agent: "
         "public.ecr.aws/datadog/agent:7 is outside ECR; its existence is not verified"),
        ("IMG001", "info", "aws_ecs_task_definition.web", "container envoy: envoyproxy/envoy:v1.31.0 is outside "
         "ECR; its existence is not verified"),
        ("IMG002", "error", "aws_lambda_function.thumbs[0]", "container thumbs: image api:v1 is built for "
         "linux/amd64 but runs on linux/arm64"),
    ]), out.stdout
    [unknown] = out.findings("TFP001")
    assert unknown["target"] == "aws_ecs_task_definition.fresh[0]" and "container_definitions" in unknown["message"]
    # the replaced task definition's new image (v2) exists: no IMG001 error names it
    assert not any("api:v2" in f["message"] for f in out.findings("IMG001"))


"""TFP001 and the Terraform plan path end to end: child modules, unknowns, every image verified."""

from __future__ import annotations

import json
from pathlib import Path

from guard.sandbox.plans import (
    PlannedLambda,
    PlannedTaskDefinition,
    lambda_change,
    plan_document,
    task_definition_change,
)
from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun


def _plan(tmp_path: Path, *changes: dict[str, object]) -> str:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_document(list(changes))))
    return str(path)


def test_child_modules_and_unknown_image(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    api = aws.repository("shop/api")
    fn = aws.repository("shop/thumbs")
    aws.push_image("shop/api", "abc123")
    aws.push_image("shop/thumbs", "abc123")
    plan = _plan(
        tmp_path,
        task_definition_change(PlannedTaskDefinition("api", [("web", f"{api}:abc123")], module="module.api")),
        task_definition_change(PlannedTaskDefinition("worker", [("w", f"{api}:missing")],
                                                     module="module.svc.module.task")),
        lambda_change(PlannedLambda("thumbs", None, "arn:aws:iam::123456789012:role/x", module="module.fn")),
        lambda_change(PlannedLambda("thumbs2", f"{fn}:abc123", "arn:aws:iam::123456789012:role/x")),
    )
    out = guard("--plan", plan)
    assert out.code == 1
    names = [t["name"] for t in out.doc["targets"]]
    assert names == ["module.api.aws_ecs_task_definition.api", "module.svc.module.task.aws_ecs_task_definition.worker",
                     "module.fn.aws_lambda_function.thumbs", "aws_lambda_function.thumbs2"]
    [missing] = out.findings("IMG001")
    assert missing["target"] == "module.svc.module.task.aws_ecs_task_definition.worker"
    [unknown] = out.findings("TFP001")
    assert unknown["target"] == "module.fn.aws_lambda_function.thumbs" and unknown["severity"] == "warning"
    assert unknown["evidence"]["unknown"] == ["image_uri"]


def test_unknown_alone_is_a_warning_not_a_pass_at_warning_level(aws: Scenario, guard: GuardRun,
                                                                 tmp_path: Path) -> None:
    plan = _plan(tmp_path, lambda_change(PlannedLambda("f", None, aws.role("fn", "lambda.amazonaws.com"))))
    assert guard("--plan", plan).code == 0
    assert guard("--plan", plan, "--fail-on", "warning").code == 1

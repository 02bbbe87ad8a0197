"""The Terraform module: formatted, and its role grants every API a sweep calls (and nothing that writes ECS)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import Sweep, steady_service

MODULE = Path(__file__).parents[2] / "deploy" / "terraform"
IAM_PREFIX = {"ecs": "ecs", "ecr": "ecr", "lambda": "lambda", "cloudwatch": "cloudwatch", "s3": "s3", "sns": "sns",
              "iam": "iam", "sts": "sts"}


def _granted() -> set[str]:
    return set(re.findall(r'"([a-z0-9-]+:[A-Za-z*]+)"', (MODULE / "iam.tf").read_text()))


def test_module_is_formatted() -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")
    proc = subprocess.run(["terraform", "fmt", "-check", "-recursive", str(MODULE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_role_covers_every_api_a_sweep_calls(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    aws.lambda_function("fn", f"{repo}:v1")
    aws.delete_image("shop/api", tag="v1")
    sim.restart_tasks("prod", "api")
    sim.tick()
    report = sweep(heartbeat=True)
    called = {f"{IAM_PREFIX[k.split(':')[0]]}:{k.split(':')[1]}" for k in report.stats["by_api"]
              if k.split(":")[1] != "LayerDownload"}
    assert {"ecs:DescribeTasks", "lambda:GetFunction", "cloudwatch:PutMetricData"} <= called
    assert called <= _granted(), called - _granted()


def test_role_cannot_change_ecs_or_lambda() -> None:
    granted = _granted()
    assert not {a for a in granted if a.startswith(("ecs:Update", "ecs:Delete", "ecs:Create", "lambda:Update",
                                                     "lambda:Delete", "iam:")) and a != "iam:GetRole"}

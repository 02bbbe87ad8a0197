"""Every Terraform plan format_version the gate reads: 0.1 (0.12-0.15), 0.2 (1.0), 1.x (1.1+ and OpenTofu)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.models import Architecture, InputError, TargetKind
from guard.plan.terraform import SUPPORTED_FORMATS, load_plan_file, load_plan_json

PLANS = Path(__file__).resolve().parent.parent / "fixtures" / "plans"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.mark.parametrize("name", ["plan_format_0_1.json", "plan_format_0_2.json", "plan_format_opentofu_1_2.json"])
def test_each_format_yields_the_same_targets(name: str) -> None:
    plan = load_plan_file(PLANS / name)
    by_name = {t.name: t for t in plan.targets}
    web = by_name["aws_ecs_task_definition.web"]
    assert web.kind is TargetKind.TASK_DEFINITION
    assert [c.image.uri for c in web.containers if c.image] == [
        f"{ECR}/shop/web:3f2c1a9", "906394416424.dkr.ecr.eu-west-1.amazonaws.com/aws-for-fluent-bit:stable"]
    assert web.execution_role == "arn:aws:iam::123456789012:role/web-execution"
    assert web.log_groups == ("/ecs/web",)
    fn = by_name["module.images.aws_lambda_function.thumbnails"]
    assert fn.kind is TargetKind.LAMBDA and fn.architecture is Architecture.AMD64
    assert fn.images[0].uri == f"{ECR}/shop/thumbnails:3f2c1a9"


def test_runtime_platform_is_read_where_the_format_has_it() -> None:
    assert {t.name: t for t in load_plan_file(PLANS / "plan_format_0_2.json").targets}[
        "aws_ecs_task_definition.web"].architecture is Architecture.ARM64


@pytest.mark.parametrize("version", ["0.1", "0.2", "1.0", "1.2", "1.10"])
def test_supported_versions(version: str) -> None:
    assert load_plan_json(f'{{"format_version": "{version}", "resource_changes": []}}', "p").targets == ()


@pytest.mark.parametrize("version", ["2.0", "0.3", "0.0", "3", "v1.2", ""])
def test_unknown_versions_name_what_is_supported(version: str) -> None:
    with pytest.raises(InputError) as e:
        load_plan_json(f'{{"format_version": "{version}", "resource_changes": []}}', "p")
    assert str(e.value) == f"p: unsupported plan format_version {version!r}; deploy-guard reads {SUPPORTED_FORMATS}"
    assert "0.1 (Terraform 0.12-0.15)" in str(e.value) and "OpenTofu" in str(e.value)

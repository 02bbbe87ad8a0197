"""References that can never resolve: malformed ECR hosts, placeholders and templates; digest printing."""

from __future__ import annotations

import json

import pytest

from guard.models import ImageRef, InputError, account_problem
from guard.plan.taskdef import load_task_definition
from guard.plan.terraform import load_plan_json

DIGEST = "sha256:" + "c" * 64


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("11111111111.dkr.ecr.us-east-1.amazonaws.com/fluent-bit:latest",
         "account '11111111111' is not a 12-digit AWS account ID"),
        ("XXXXXXXXXXXX.dkr.ecr.us-east-1.amazonaws.com/app:1", "account 'XXXXXXXXXXXX' is not a 12-digit"),
        ("aws_account_id.dkr.ecr.us-west-2.amazonaws.com/app:1", "account 'aws_account_id' is not a 12-digit"),
        ("123456789012.dkr.ecr.region-code.amazonaws.com/app:1", "region 'region-code' is not an AWS region"),
        ("123456789012.dkr.ecr.us-east-1a.amazonaws.com/app:1", "region 'us-east-1a' is not an AWS region"),
        ("<IMAGE1_NAME>", "'<IMAGE1_NAME>' is an unrendered template placeholder"),
        ("${REPOSITORY_URL}:${TAG}", "'${REPOSITORY_URL}' is an unrendered template placeholder"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:{{ .Tag }}", "'{{ .Tag }}' is an unrendered"),
    ],
)
def test_unresolvable_references_carry_the_reason(uri: str, why: str) -> None:
    ref = ImageRef.parse(uri)
    assert ref.problem is not None and ref.problem.startswith(why)
    assert not ref.is_ecr and not ref.mutable_tag


@pytest.mark.parametrize("uri", ["123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
                                 "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/app:1",
                                 "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app:1",
                                 "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable", "nginx:1.27"])
def test_valid_references_have_no_problem(uri: str) -> None:
    assert ImageRef.parse(uri).problem is None


def test_digest_prints_with_an_at_sign() -> None:
    assert ImageRef.parse(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/app@{DIGEST}").display == f"app@{DIGEST}"
    assert ImageRef.parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1").display == "app:v1"


def test_placeholder_role_accounts() -> None:
    assert account_problem("arn:aws:iam::aws_account_id:role/ecsTaskExecutionRole") == (
        "account 'aws_account_id' is not a 12-digit AWS account ID")
    assert account_problem("arn:aws:iam::<ACCOUNT_ID>:role/r") == "'<ACCOUNT_ID>' is an unrendered template placeholder"
    assert account_problem("arn:aws:iam::123456789012:role/r") is None


def test_a_task_definition_template_is_an_input_error() -> None:
    doc = {"family": "web", "containerDefinitions": [{"name": "web", "image": "<IMAGE1_NAME>"}]}
    with pytest.raises(InputError, match=r"container 'web': image '<IMAGE1_NAME>' is a template: .* render it"):
        load_task_definition(json.dumps(doc), "taskdef.json")


def test_a_template_inside_a_plan_is_kept_for_the_finding() -> None:
    defs = json.dumps([{"name": "web", "image": "${var.image}"}])
    plan = {"format_version": "1.2", "resource_changes": [{
        "address": "aws_ecs_task_definition.web", "mode": "managed", "type": "aws_ecs_task_definition",
        "change": {"actions": ["create"], "after": {"container_definitions": defs}, "after_unknown": {}}}]}
    [target] = load_plan_json(json.dumps(plan), "p.json").targets
    assert target.images[0].problem == "'${var.image}' is an unrendered template placeholder"

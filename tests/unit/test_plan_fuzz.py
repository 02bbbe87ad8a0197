"""Property tests: whatever JSON or text arrives, the plan loaders return a DeployPlan or raise InputError."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.models import DeployPlan, InputError
from guard.plan.taskdef import load_task_definition
from guard.plan.terraform import load_plan_json

Loader = Callable[[str, str], DeployPlan]
LOADERS = pytest.mark.parametrize("load", [load_plan_json, load_task_definition], ids=["plan", "taskdef"])
FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
# Values drawn from the vocabulary the loaders look for, so near-misses reach the deep code paths.
words = st.sampled_from([
    "create", "update", "delete", "no-op", "read", "data", "managed", "Image", "Zip", "x86_64", "arm64",
    "ARM64", "X86_64", "awslogs", "tcp", "web", "nginx:1.25", "public.ecr.aws/datadog/agent:7", "1.2",
    "aws_ecs_task_definition", "aws_lambda_function", "[]", '[{"name":"web","image":"nginx"}]',
])
near_values = st.recursive(
    scalars | words,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(words | st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def _returns_plan_or_input_error(load: Loader, text: str) -> None:
    try:
        result = load(text, "x")
    except InputError:
        return
    assert isinstance(result, DeployPlan)


@LOADERS
@FUZZ
@given(value=json_values)
def test_any_json_value(load: Loader, value: Any) -> None:
    _returns_plan_or_input_error(load, json.dumps(value))


@LOADERS
@FUZZ
@given(text=st.text())
def test_any_text(load: Loader, text: str) -> None:
    _returns_plan_or_input_error(load, text)


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a well-formed value, sometimes garbage in its place."""
    return st.integers(0, 5).flatmap(lambda n: near_values if n == 0 else good)


names = st.sampled_from(["web", "datadog-agent", "app"])
images = st.sampled_from(["nginx:1.25", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web:1.8.0",
                          "public.ecr.aws/datadog/agent:7", "ghcr.io/acme/x@sha256:" + "ab" * 32, "Bad:Image"])
roles = st.sampled_from([None, "", "arn:aws:iam::123456789012:role/x"])
container = st.fixed_dictionaries(
    {"name": mostly(names), "image": mostly(images)},
    optional={
        "essential": mostly(st.booleans()),
        "environment": mostly(st.lists(st.fixed_dictionaries({"name": mostly(names)}), max_size=2)),
        "secrets": mostly(st.lists(st.fixed_dictionaries({"name": mostly(names), "valueFrom": mostly(roles)}),
                                   max_size=2)),
        "portMappings": mostly(st.lists(st.fixed_dictionaries({}, optional={
            "containerPort": mostly(st.integers(-1, 70000)),
            "containerPortRange": mostly(st.just("9000-9010")),
            "protocol": mostly(st.sampled_from(["tcp", "UDP"])),
        }), max_size=2)),
        "healthCheck": mostly(st.fixed_dictionaries({}, optional={"command": mostly(st.lists(names, max_size=2))})),
        "logConfiguration": mostly(st.fixed_dictionaries({}, optional={
            "logDriver": mostly(st.sampled_from(["awslogs", "json-file"])),
            "options": mostly(st.dictionaries(st.sampled_from(["awslogs-group", "x"]), mostly(names))),
        })),
    },
)
architectures = st.lists(st.sampled_from(["x86_64", "arm64", "ARM64"]), max_size=2)
task_definition_after = st.fixed_dictionaries({}, optional={
    "container_definitions": mostly(st.lists(container, max_size=2).map(json.dumps)),
    "runtime_platform": mostly(st.lists(st.fixed_dictionaries({}, optional={
        "cpu_architecture": mostly(st.sampled_from(["ARM64", "X86_64", "MIPS"]))}), max_size=1)),
    "execution_role_arn": mostly(roles),
    "task_role_arn": mostly(roles),
})
lambda_after = st.fixed_dictionaries({"package_type": mostly(st.sampled_from(["Image", "Zip"]))}, optional={
    "image_uri": mostly(images),
    "architectures": mostly(architectures),
    "role": mostly(roles),
    "function_name": mostly(names),
    "environment": mostly(st.lists(st.fixed_dictionaries({}, optional={
        "variables": mostly(st.dictionaries(names, st.text(max_size=3), max_size=2))}), max_size=1)),
})
after_unknown = st.dictionaries(
    st.sampled_from(["container_definitions", "runtime_platform", "execution_role_arn", "task_role_arn",
                     "image_uri", "role", "architectures", "environment", "function_name"]),
    mostly(st.booleans()),
)
resource_change = st.fixed_dictionaries(
    {
        "address": mostly(st.sampled_from(["aws_ecs_task_definition.web", "module.a.aws_lambda_function.f"])),
        "type": st.sampled_from(["aws_ecs_task_definition", "aws_lambda_function"]),
        "change": mostly(st.fixed_dictionaries(
            {
                "actions": mostly(st.sampled_from([["create"], ["update"], ["delete", "create"], ["delete"]])),
                "after": mostly(task_definition_after | lambda_after),
            },
            optional={"after_unknown": mostly(after_unknown)},
        )),
    },
    optional={"mode": mostly(st.sampled_from(["managed", "data"]))},
)


@FUZZ
@given(changes=st.lists(resource_change | near_values, max_size=4))
def test_plans_with_random_resource_changes(changes: list[Any]) -> None:
    doc = {"format_version": "1.2", "resource_changes": changes}
    _returns_plan_or_input_error(load_plan_json, json.dumps(doc))


@FUZZ
@given(
    defs=st.lists(container, max_size=3),
    extra=st.dictionaries(st.sampled_from(["family", "runtimePlatform", "executionRoleArn", "taskRoleArn",
                                           "taskDefinitionArn"]), near_values),
    wrapped=st.booleans(),
)
def test_task_definitions_with_random_containers(defs: list[Any], extra: dict[str, Any], wrapped: bool) -> None:
    td = {"containerDefinitions": defs, **extra}
    _returns_plan_or_input_error(load_task_definition, json.dumps({"taskDefinition": td} if wrapped else td))

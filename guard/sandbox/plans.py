"""Writes `terraform show -json` documents for sandbox deploys (no provider can be downloaded offline)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TERRAFORM_VERSION = "1.11.4"


@dataclass(frozen=True)
class PlannedTaskDefinition:
    """An `aws_ecs_task_definition` change; `module` is e.g. `module.api` or ``."""

    family: str
    containers: Sequence[tuple[str, str]]
    module: str = ""
    arch: str = "X86_64"
    execution_role: str | None = None
    environment: Sequence[tuple[str, str]] = ()
    log_group: str | None = None
    actions: Sequence[str] = ("update",)


@dataclass(frozen=True)
class PlannedLambda:
    """An image-package `aws_lambda_function` change."""

    name: str
    image_uri: str | None
    role: str
    module: str = ""
    arch: str = "x86_64"
    actions: Sequence[str] = ("update",)
    environment: dict[str, str] = field(default_factory=dict)


def _address(module: str, kind: str, name: str) -> str:
    return f"{module}.{kind}.{name}" if module else f"{kind}.{name}"


def _change(module: str, kind: str, name: str, actions: Sequence[str], after: dict[str, Any],
            unknown: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": _address(module, kind, name), "mode": "managed", "type": kind, "name": name,
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": {"actions": list(actions), "before": None if "create" in actions else {}, "after": after,
                   "after_unknown": unknown, "before_sensitive": False, "after_sensitive": {}},
    }
    if module:
        out["module_address"] = module
    return out


def task_definition_change(td: PlannedTaskDefinition, region: str = "us-east-1") -> dict[str, Any]:
    """One resource_changes entry with container_definitions as the JSON string Terraform emits."""
    defs = []
    for name, image in td.containers:
        d: dict[str, Any] = {"name": name, "image": image, "essential": True, "memory": 256,
                             "environment": [{"name": k, "value": v} for k, v in td.environment],
                             "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}]}
        if td.log_group:
            d["logConfiguration"] = {"logDriver": "awslogs", "options": {
                "awslogs-group": td.log_group, "awslogs-region": region, "awslogs-stream-prefix": td.family}}
        defs.append(d)
    after = {"family": td.family, "container_definitions": json.dumps(defs, separators=(",", ":")),
             "cpu": "256", "memory": "512", "network_mode": "awsvpc", "requires_compatibilities": ["FARGATE"],
             "runtime_platform": [{"cpu_architecture": td.arch, "operating_system_family": "LINUX"}],
             "execution_role_arn": td.execution_role, "task_role_arn": None, "tags": None}
    unknown = {"arn": True, "arn_without_revision": True, "id": True, "revision": True,
               "runtime_platform": [{}], "tags_all": True}
    return _change(td.module, "aws_ecs_task_definition", td.family.replace("-", "_"), td.actions, after, unknown)


def lambda_change(fn: PlannedLambda) -> dict[str, Any]:
    """One resource_changes entry for an image function; image_uri None means known after apply."""
    after: dict[str, Any] = {"function_name": fn.name, "package_type": "Image", "role": fn.role,
                             "architectures": [fn.arch],
                             "environment": [{"variables": fn.environment}] if fn.environment else []}
    unknown: dict[str, Any] = {"arn": True, "last_modified": True, "version": True, "qualified_arn": True}
    if fn.image_uri is None:
        unknown["image_uri"] = True
    else:
        after["image_uri"] = fn.image_uri
    return _change(fn.module, "aws_lambda_function", fn.name.replace("-", "_"), fn.actions, after, unknown)


def plan_document(changes: Sequence[dict[str, Any]], variables: dict[str, str] | None = None) -> dict[str, Any]:
    """A whole plan: format_version 1.2, variables, resource_changes."""
    return {
        "format_version": "1.2",
        "terraform_version": TERRAFORM_VERSION,
        "variables": {k: {"value": v} for k, v in (variables or {}).items()},
        "planned_values": {"root_module": {}},
        "resource_changes": list(changes),
        "configuration": {"provider_config": {"aws": {
            "name": "aws", "full_name": "registry.terraform.io/hashicorp/aws"}}},
        "timestamp": "2026-11-23T03:14:00Z",
        "applyable": True,
        "complete": True,
        "errored": False,
    }

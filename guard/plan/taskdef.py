"""ECS task definitions (registered, described, or rendered by the render action) -> Target."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from guard.models import Architecture, Container, DeployPlan, ImageRef, InputError, Target, TargetKind

_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+):")


def parse_json_document(text: str, source: str) -> Any:
    """Parse JSON text; a syntax error becomes an InputError with its line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{source}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except (ValueError, RecursionError) as e:  # integers over Python's digit limit, absurd nesting
        raise InputError(f"{source}: not valid JSON: {e}") from None


def describe(value: Any) -> str:
    """Name a JSON value's type for an error message ("a list", "null", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def expect_object(value: Any, what: str) -> Mapping[str, Any]:
    """Return `value` if it is a JSON object, else raise InputError naming `what`."""
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be an object, not {describe(value)}")
    return value


def expect_list(value: Any, what: str) -> list[Any] | tuple[Any, ...]:
    """Return `value` if it is a JSON list, else raise InputError naming `what`."""
    if not isinstance(value, list | tuple):
        raise InputError(f"{what} must be a list, not {describe(value)}")
    return value


def expect_str(value: Any, what: str) -> str:
    """Return `value` if it is a non-empty string, else raise InputError naming `what`."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{what} must be a non-empty string, not {describe(value)}")
    return value


def optional_str(value: Any, what: str) -> str | None:
    """Return `value` if it is a non-empty string, None for null or "", else raise InputError."""
    if value is None or value == "":
        return None
    return expect_str(value, what)


def optional_str_list(value: Any, what: str) -> tuple[str, ...] | None:
    """Return a list of strings as a tuple, None for null, else raise InputError."""
    if value is None:
        return None
    items = expect_list(value, what)
    return tuple(expect_str(item, f"{what}[{i}]") for i, item in enumerate(items))


def region_from_arn(value: Any) -> str | None:
    """The region of an AWS ARN (`arn:aws:ecs:eu-west-1:...`), or None."""
    m = _ARN_REGION.match(value) if isinstance(value, str) else None
    return m.group("region") if m else None


def parse_cpu_architecture(value: Any, what: str) -> tuple[Architecture, bool]:
    """(architecture, declared) for an ECS cpuArchitecture; absent means ECS's default X86_64."""
    if value is None:
        return Architecture.AMD64, False
    raw = expect_str(value, what)
    arch = Architecture.parse(raw)
    if arch is None:
        raise InputError(f"{what}: unknown CPU architecture {raw!r} (expected X86_64 or ARM64)")
    return arch, True


def parse_image(uri: str, at: str, *, templates: bool) -> ImageRef:
    """Parse an image URI; an unrendered template is an input error unless `templates` (then a finding)."""
    try:
        image = ImageRef.parse(uri)
    except InputError as e:
        raise InputError(f"{at}: {e}") from None
    if image.is_template and not templates:
        raise InputError(f"{at}: image {uri!r} is a template: {image.problem}; render it (e.g. with "
                         "aws-actions/amazon-ecs-render-task-definition) and gate the rendered file")
    return image


def containers_from_definitions(
    defs: Any, *, where: str, field: str = "containerDefinitions", overrides: Mapping[str, str] | None = None,
    templates: bool = False,
) -> tuple[tuple[Container, ...], tuple[str, ...]]:
    """Containers and awslogs log groups of an ECS `containerDefinitions` list (camelCase keys)."""
    items = expect_list(defs, f"{where}: {field}")
    if not items:
        raise InputError(f"{where}: {field} is empty")
    overrides = overrides or {}
    containers: list[Container] = []
    log_groups: set[str] = set()
    for i, raw in enumerate(items):
        cd = expect_object(raw, f"{where}: {field}[{i}]")
        name = expect_str(cd.get("name"), f"{where}: {field}[{i}].name")
        if any(c.name == name for c in containers):
            raise InputError(f"{where}: two containers are named {name!r}")
        at = f"{where}: container {name!r}"
        uri = expect_str(overrides.get(name, cd.get("image")), f"{at}: image")
        image = parse_image(uri, at, templates=templates)
        essential = cd.get("essential")
        if essential is not None and not isinstance(essential, bool):
            raise InputError(f"{at}: essential must be true or false, not {describe(essential)}")
        containers.append(Container(
            name=name,
            image=image,
            essential=essential is not False,
            environment=tuple(sorted(_names(cd.get("environment"), f"{at}: environment"))),
            secrets=_secrets(cd.get("secrets"), f"{at}: secrets"),
            ports=_ports(cd.get("portMappings"), f"{at}: portMappings"),
            health_check=_health_check(cd.get("healthCheck"), f"{at}: healthCheck"),
        ))
        group = _awslogs_group(cd.get("logConfiguration"), f"{at}: logConfiguration")
        if group:
            log_groups.add(group)
    unmatched = sorted(set(overrides) - {c.name for c in containers})
    if unmatched:
        available = ", ".join(c.name for c in containers)
        raise InputError(f"{where}: no container named {', '.join(map(repr, unmatched))} "
                         f"(containers: {available})")
    return tuple(containers), tuple(sorted(log_groups))


def _entries(value: Any, what: str) -> list[Mapping[str, Any]]:
    """A list of objects, or [] for null."""
    if value is None:
        return []
    return [expect_object(item, f"{what}[{i}]") for i, item in enumerate(expect_list(value, what))]


def _names(value: Any, what: str) -> list[str]:
    return [expect_str(e.get("name"), f"{what}[{i}].name") for i, e in enumerate(_entries(value, what))]


def _secrets(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    pairs = [(expect_str(e.get("name"), f"{what}[{i}].name"),
              expect_str(e.get("valueFrom"), f"{what}[{i}].valueFrom"))
             for i, e in enumerate(_entries(value, what))]
    return tuple(sorted(pairs))


def _ports(value: Any, what: str) -> tuple[str, ...]:
    ports: set[str] = set()
    for i, e in enumerate(_entries(value, what)):
        protocol = (optional_str(e.get("protocol"), f"{what}[{i}].protocol") or "tcp").lower()
        port = e.get("containerPort")
        if port is None and e.get("containerPortRange") is not None:
            ports.add(f"{expect_str(e['containerPortRange'], f'{what}[{i}].containerPortRange')}/{protocol}")
            continue
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise InputError(f"{what}[{i}].containerPort must be a port number, not {port!r:.40}")
        ports.add(f"{port}/{protocol}")
    return tuple(sorted(ports))


def _health_check(value: Any, what: str) -> str | None:
    if value is None:
        return None
    command = optional_str_list(expect_object(value, what).get("command"), f"{what}.command")
    if not command:
        raise InputError(f"{what}.command must be a non-empty list of strings")
    return " ".join(command)


def _awslogs_group(value: Any, what: str) -> str | None:
    if value is None:
        return None
    config = expect_object(value, what)
    if config.get("logDriver") != "awslogs" or config.get("options") is None:
        return None
    options = expect_object(config["options"], f"{what}.options")
    return optional_str(options.get("awslogs-group"), f"{what}.options.awslogs-group")


def _task_definition_body(doc: Any) -> Mapping[str, Any] | None:
    """The task definition itself, unwrapping describe-task-definition's `{"taskDefinition": ...}`."""
    if not isinstance(doc, Mapping):
        return None
    if isinstance(doc.get("containerDefinitions"), list | tuple):
        return doc
    inner = doc.get("taskDefinition")
    if isinstance(inner, Mapping) and isinstance(inner.get("containerDefinitions"), list | tuple):
        return inner
    return None


def target_from_task_definition(
    td: Mapping[str, Any],
    *,
    name: str,
    source: str,
    kind: TargetKind = TargetKind.TASK_DEFINITION,
    overrides: Mapping[str, str] | None = None,
    region: str | None = None,
) -> Target:
    """Build a Target from an ECS task definition (camelCase, optionally wrapped in `taskDefinition`)."""
    where = f"{source}: {name}"
    body = _task_definition_body(td)
    if body is None:
        raise InputError(f"{where}: not an ECS task definition (no containerDefinitions)")
    containers, log_groups = containers_from_definitions(
        body["containerDefinitions"], where=where, overrides=overrides
    )
    platform = body.get("runtimePlatform")
    cpu = None if platform is None else expect_object(platform, f"{where}: runtimePlatform").get("cpuArchitecture")
    architecture, declared = parse_cpu_architecture(cpu, f"{where}: runtimePlatform.cpuArchitecture")
    return Target(
        kind=kind,
        name=name,
        source=source,
        containers=containers,
        architecture=architecture,
        architecture_declared=declared,
        execution_role=optional_str(body.get("executionRoleArn"), f"{where}: executionRoleArn"),
        task_role=optional_str(body.get("taskRoleArn"), f"{where}: taskRoleArn"),
        log_groups=log_groups,
        region=region or region_from_arn(body.get("taskDefinitionArn")),
    )


def load_task_definition(text: str, source: str) -> DeployPlan:
    """Parse task definition JSON (registered, described or rendered) into a one-target plan."""
    body = _task_definition_body(parse_json_document(text, source))
    if body is None:
        raise InputError(f"{source}: not an ECS task definition (no containerDefinitions)")
    family = optional_str(body.get("family"), f"{source}: family")
    name = family or PurePath(source).name
    return DeployPlan((target_from_task_definition(body, name=name, source=source),))

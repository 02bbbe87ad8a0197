"""Terraform plans (`terraform show -json` output, or a binary plan file) -> DeployPlan."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform, TerraformCommandError

from guard.models import Container, DeployPlan, InputError, Target, TargetKind
from guard.plan import MAX_INPUT_BYTES
from guard.plan.lambda_ import target_from_lambda
from guard.plan.taskdef import (
    containers_from_definitions,
    describe,
    expect_list,
    expect_object,
    expect_str,
    optional_str,
    optional_str_list,
    parse_cpu_architecture,
    parse_json_document,
)

# Lines hashicorp/setup-terraform's wrapper prints around the command's own stdout.
_WRAPPER_PREFIXES = ("[command]", "::debug::", "::set-output", "::group::", "::endgroup::")
_TASK_DEFINITION = "aws_ecs_task_definition"
_LAMBDA_FUNCTION = "aws_lambda_function"
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)*")
# The plan formats read: same resource_changes structure in all of them.
SUPPORTED_FORMATS = "0.1 (Terraform 0.12-0.15), 0.2 (Terraform 1.0) and 1.x (Terraform 1.1+, OpenTofu)"


def load_plan_file(path: Path) -> DeployPlan:
    """Load a plan file: `terraform show -json` output, or a binary plan converted with terraform."""
    try:
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise InputError(f"{path}: larger than {MAX_INPUT_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if data.startswith(b"PK\x03\x04"):
        return load_plan_json(_show_binary_plan(path), str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (bad byte at offset {e.start}); "
                         "pass `terraform show -json <plan>` output") from None
    return load_plan_json(text, str(path))


def _show_binary_plan(path: Path) -> str:
    """`terraform show -json` of a binary plan, run in the plan's directory."""
    binary = shutil.which("terraform")
    if binary is None:
        raise InputError(f"{path} is a binary plan file; converting it needs the terraform binary on PATH "
                         "(or pass `terraform show -json <plan>` output instead)")
    try:
        tf = Terraform(working_dir=str(path.parent), terraform_bin_path=binary)
        _, out, _ = tf.cmd("show", str(path.resolve()), json=IsFlagged, no_color=IsFlagged, raise_on_error=True)
    except TerraformCommandError as e:
        raise InputError(f"{path}: `terraform show -json` failed (exit {e.returncode}):\n"
                         f"{_error_tail(e.err or e.out or '')}") from None
    except (OSError, ValueError) as e:  # terraform vanished, or a garbled terraform.tfstate next to the plan
        raise InputError(f"{path}: could not run `terraform show -json`: {e}") from None
    return str(out)


def _error_tail(stderr: str, limit: int = 12) -> str:
    """The last lines of terraform's stderr, starting at its last `Error:` line when there is one."""
    lines = [line.strip(" │╷╵") for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    starts = [i for i, line in enumerate(lines) if line.startswith("Error:")]
    return "\n".join(lines[starts[-1] : starts[-1] + limit] if starts else lines[-limit:])


def load_plan_json(text: str, source: str) -> DeployPlan:
    """Parse `terraform show -json` output (setup-terraform wrapper lines allowed) into a DeployPlan."""
    # Blank the wrapper's lines rather than drop them, so JSON errors keep the file's line numbers.
    lines = text.removeprefix("\ufeff").split("\n")
    unwrapped = "\n".join("" if line.startswith(_WRAPPER_PREFIXES) else line for line in lines)
    plan = _check_plan(parse_json_document(unwrapped, source), source)
    changes = plan.get("resource_changes")
    items = () if changes is None else expect_list(changes, f"{source}: resource_changes")
    targets = [_target(raw, f"{source}: resource_changes[{i}]", source) for i, raw in enumerate(items)]
    return DeployPlan(tuple(t for t in targets if t is not None))


def _check_plan(doc: Any, source: str) -> Mapping[str, Any]:
    """The plan object, after refusing states, other JSON and unsupported format versions."""
    if not isinstance(doc, Mapping):
        raise InputError(f"{source}: not a Terraform plan: expected a JSON object, not {describe(doc)}")
    if "format_version" not in doc:
        raise InputError(f"{source}: not a Terraform plan: no format_version "
                         "(expected `terraform show -json <planfile>` output)")
    if "resource_changes" not in doc and "planned_values" not in doc:
        if "values" in doc:
            raise InputError(f"{source}: this is a Terraform state, not a plan; "
                             "run `terraform show -json <planfile>` on a saved plan")
        raise InputError(f"{source}: not a Terraform plan: no resource_changes or planned_values")
    version = doc["format_version"]
    m = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if m is None or not (m.group(1) == "1" or (m.group(1), m.group(2)) in (("0", "1"), ("0", "2"))):
        raise InputError(f"{source}: unsupported plan format_version {version!r:.40}; deploy-guard reads "
                         f"{SUPPORTED_FORMATS}")
    return doc


def _target(raw: Any, at: str, source: str) -> Target | None:
    """The Target a resource change deploys, or None for other types, data sources and non-deploys."""
    rc = expect_object(raw, at)
    kind = rc.get("type")
    if kind not in (_TASK_DEFINITION, _LAMBDA_FUNCTION) or rc.get("mode") == "data":
        return None
    address = expect_str(rc.get("address"), f"{at}.address")
    where = f"{source}: {address}"
    change = expect_object(rc.get("change"), f"{where}: change")
    actions = expect_list(change.get("actions"), f"{where}: change.actions")
    if "create" not in actions and "update" not in actions:
        return None
    after = expect_object(change.get("after"), f"{where}: change.after")
    after_unknown = change.get("after_unknown")
    unknowns = {} if after_unknown is None else expect_object(after_unknown, f"{where}: change.after_unknown")
    if kind == _TASK_DEFINITION:
        return _task_definition(address, after, unknowns, source)
    return _lambda_function(address, after, unknowns, source)


def _at(tree: Any, *path: str | int) -> Any:
    """The after_unknown node at `path`; True when it, or a parent, is wholly unknown."""
    node = tree
    for step in path:
        if node is True:
            return True
        if isinstance(step, int):
            node = node[step] if isinstance(node, list) and step < len(node) else None
        else:
            node = node.get(step) if isinstance(node, Mapping) else None
    return node


def _first_block(value: Any, what: str) -> Mapping[str, Any]:
    """The single object of a Terraform nested block list (`[{...}]`), or {} when absent."""
    if value is None:
        return {}
    items = expect_list(value, what)
    return expect_object(items[0], f"{what}[0]") if items else {}


def _task_definition(address: str, after: Mapping[str, Any], unknowns: Mapping[str, Any],
                     source: str) -> Target:
    """An aws_ecs_task_definition: snake_case attributes, camelCase container_definitions JSON."""
    where = f"{source}: {address}"
    unknown: list[str] = []
    containers: tuple[Container, ...] = ()
    log_groups: tuple[str, ...] = ()
    if _at(unknowns, "container_definitions") is True or after.get("container_definitions") is None:
        unknown.append("container_definitions")
    else:
        text = expect_str(after["container_definitions"], f"{where}: container_definitions")
        defs = parse_json_document(text, f"{where}: container_definitions")
        containers, log_groups = containers_from_definitions(defs, where=where, field="container_definitions",
                                                          templates=True)
    architecture, declared = None, False
    if _at(unknowns, "runtime_platform", 0, "cpu_architecture") is True:
        unknown.append("runtime_platform")
    else:
        platform = _first_block(after.get("runtime_platform"), f"{where}: runtime_platform")
        architecture, declared = parse_cpu_architecture(
            platform.get("cpu_architecture"), f"{where}: runtime_platform.cpu_architecture"
        )
    roles: dict[str, str | None] = {}
    for key in ("execution_role_arn", "task_role_arn"):
        if _at(unknowns, key) is True:
            unknown.append(key)
            roles[key] = None
        else:
            roles[key] = optional_str(after.get(key), f"{where}: {key}")
    return Target(
        kind=TargetKind.TASK_DEFINITION,
        name=address,
        source=source,
        containers=containers,
        architecture=architecture,
        architecture_declared=declared,
        execution_role=roles["execution_role_arn"],
        task_role=roles["task_role_arn"],
        log_groups=log_groups,
        unknown=tuple(unknown),
    )


def _lambda_function(address: str, after: Mapping[str, Any], unknowns: Mapping[str, Any],
                     source: str) -> Target | None:
    """An aws_lambda_function with package_type Image (zip functions are not ours: None)."""
    if after.get("package_type") != "Image":
        return None
    where = f"{source}: {address}"
    unknown: list[str] = []
    image_unknown = _at(unknowns, "image_uri") is True
    if image_unknown:
        unknown.append("image_uri")
    role = None
    if _at(unknowns, "role") is True:
        unknown.append("role")
    else:
        role = optional_str(after.get("role"), f"{where}: role")
    names: set[str] = set()
    unknown_variables = _at(unknowns, "environment", 0, "variables")
    if unknown_variables is True:
        unknown.append("environment")
    else:
        env = _first_block(after.get("environment"), f"{where}: environment")
        variables = env.get("variables")
        if variables is not None:
            names.update(expect_object(variables, f"{where}: environment[0].variables"))
        if isinstance(unknown_variables, Mapping):  # variables whose value is known only after apply
            names.update(unknown_variables)
    # `architectures` is optional and computed: unknown at create means "not set", i.e. Lambda's x86_64.
    architectures = None if _at(unknowns, "architectures") is True else optional_str_list(
        after.get("architectures"), f"{where}: architectures"
    )
    function_name = None if _at(unknowns, "function_name") is True else optional_str(
        after.get("function_name"), f"{where}: function_name"
    )
    return target_from_lambda(
        name=address,
        source=source,
        image_uri=None if image_unknown else optional_str(after.get("image_uri"), f"{where}: image_uri"),
        architectures=architectures,
        role=role,
        environment=tuple(names),
        image_unknown=image_unknown,
        unknown=unknown,
        function_name=function_name,
        templates=True,
    )

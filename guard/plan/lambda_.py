"""Lambda image functions (from a plan or from GetFunction output) -> Target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from guard.models import Architecture, Container, ImageRef, InputError, Target, TargetKind
from guard.plan.taskdef import (
    expect_object,
    expect_str,
    optional_str,
    optional_str_list,
    parse_image,
    region_from_arn,
)

_ARCHITECTURES = {"x86_64": Architecture.AMD64, "arm64": Architecture.ARM64}


def target_from_lambda(
    *,
    name: str,
    source: str,
    image_uri: str | None,
    architectures: Sequence[str] | None,
    role: str | None,
    environment: Sequence[str] = (),
    image_unknown: bool = False,
    unknown: Sequence[str] = (),
    region: str | None = None,
    function_name: str | None = None,
    templates: bool = False,
) -> Target:
    """Build a one-container Target for an image function; the container is named after the function."""
    where = f"{source}: {name}"
    architecture, declared = Architecture.AMD64, False
    if architectures:
        if len(architectures) != 1 or architectures[0] not in _ARCHITECTURES:
            raise InputError(f"{where}: architectures must be [\"x86_64\"] or [\"arm64\"], "
                             f"not {list(architectures)!r:.80}")
        architecture, declared = _ARCHITECTURES[architectures[0]], True
    image: ImageRef | None = None
    if not image_unknown:
        if image_uri is None:
            raise InputError(f"{where}: image function without an image URI")
        image = parse_image(image_uri, where, templates=templates)
    container = Container(
        name=function_name or name,
        image=image,
        image_unknown=image_unknown,
        environment=tuple(sorted(environment)),
    )
    return Target(
        kind=TargetKind.LAMBDA,
        name=name,
        source=source,
        containers=(container,),
        architecture=architecture,
        architecture_declared=declared,
        execution_role=role,
        region=region,
        unknown=tuple(unknown),
    )


def target_from_function_config(config: Mapping[str, Any], *, image_uri: str | None, source: str) -> Target:
    """Build a Target from GetFunction or GetFunctionConfiguration output; `image_uri` wins over the live one."""
    doc = expect_object(config, f"{source}: function")
    live_uri = None
    if "Configuration" in doc:
        code = doc.get("Code")
        if code is not None:
            live_uri = optional_str(expect_object(code, f"{source}: Code").get("ImageUri"), f"{source}: Code.ImageUri")
        doc = expect_object(doc["Configuration"], f"{source}: Configuration")
    name = expect_str(doc.get("FunctionName"), f"{source}: FunctionName")
    if doc.get("PackageType", "Zip") != "Image":
        raise InputError(f"function {name} is a zip function; deploy-guard verifies image functions only")
    env = doc.get("Environment")
    variables = None if env is None else expect_object(env, f"{source}: Environment").get("Variables")
    names = () if variables is None else tuple(expect_object(variables, f"{source}: Environment.Variables"))
    return target_from_lambda(
        name=name,
        source=source,
        image_uri=image_uri or live_uri,
        architectures=optional_str_list(doc.get("Architectures"), f"{source}: Architectures"),
        role=optional_str(doc.get("Role"), f"{source}: Role"),
        environment=names,
        region=region_from_arn(doc.get("FunctionArn")),
    )

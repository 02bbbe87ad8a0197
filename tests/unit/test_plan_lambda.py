"""guard.plan.lambda_: image functions from a plan, GetFunction output, or `--lambda FN --image-uri URI`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from guard.models import Architecture, Container, ImageRef, InputError, Target, TargetKind
from guard.plan.lambda_ import target_from_function_config, target_from_lambda

PLANS = Path(__file__).resolve().parent.parent / "fixtures" / "plans"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
ROLE = "arn:aws:iam::123456789012:role/shop-thumbnailer"


def _payload(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((PLANS / name).read_text())
    return doc


# ---- target_from_lambda

def test_defaults_to_x86_64_undeclared() -> None:
    target = target_from_lambda(name="fn", source="cli", image_uri="public.ecr.aws/acme/fn:1", architectures=None,
                                role=None)
    assert target == Target(
        kind=TargetKind.LAMBDA,
        name="fn",
        source="cli",
        containers=(Container(name="fn", image=ImageRef(uri="public.ecr.aws/acme/fn:1", registry="public.ecr.aws",
                                                        repository="acme/fn", tag="1")),),
        architecture=Architecture.AMD64,
        architecture_declared=False,
    )


def test_all_fields() -> None:
    target = target_from_lambda(name="module.media.aws_lambda_function.resizer", source="plan.json",
                                image_uri=f"{ECR}/shop/resizer:42", architectures=["arm64"], role=ROLE,
                                environment=["STAGE", "BUCKET"], unknown=["environment"], region="eu-west-1",
                                function_name="shop-resizer")
    (container,) = target.containers
    assert container.name == "shop-resizer"
    assert container.environment == ("BUCKET", "STAGE")
    assert (target.architecture, target.architecture_declared) == (Architecture.ARM64, True)
    assert (target.execution_role, target.region, target.unknown) == (ROLE, "eu-west-1", ("environment",))


def test_unknown_image() -> None:
    target = target_from_lambda(name="fn", source="plan.json", image_uri=None, architectures=["x86_64"], role=None,
                                image_unknown=True, unknown=["image_uri"])
    assert target.containers[0] == Container(name="fn", image=None, image_unknown=True)
    assert (target.images, target.unknown) == ((), ("image_uri",))


@pytest.mark.parametrize("architectures", [["X86_64"], ["amd64"], ["arm64", "x86_64"], ["riscv"]])
def test_lambda_architectures_are_strict(architectures: list[str]) -> None:
    with pytest.raises(InputError, match=r"^cli: fn: architectures must be \[\"x86_64\"\] or \[\"arm64\"\]"):
        target_from_lambda(name="fn", source="cli", image_uri="a/b:1", architectures=architectures, role=None)


def test_missing_image_uri() -> None:
    with pytest.raises(InputError, match=r"^cli: fn: image function without an image URI$"):
        target_from_lambda(name="fn", source="cli", image_uri=None, architectures=None, role=None)


def test_invalid_image_uri_names_the_function() -> None:
    with pytest.raises(InputError, match=r"^cli: fn: image 'a/b@sha256:1': digest must be sha256:<64 hex>"):
        target_from_lambda(name="fn", source="cli", image_uri="a/b@sha256:1", architectures=None, role=None)


# ---- target_from_function_config

def test_get_function_output_uses_the_live_image() -> None:
    target = target_from_function_config(_payload("lambda_get_function.json"), image_uri=None, source="live")
    assert target == Target(
        kind=TargetKind.LAMBDA,
        name="shop-thumbnailer",
        source="live",
        containers=(Container(
            name="shop-thumbnailer",
            image=ImageRef(uri=f"{ECR}/shop/thumbnailer:2024.05.3", registry=ECR, repository="shop/thumbnailer",
                           tag="2024.05.3", account="123456789012", region="eu-west-1"),
            environment=("BUCKET", "QUEUE_URL"),
        ),),
        architecture=Architecture.ARM64,
        architecture_declared=True,
        execution_role=ROLE,
        region="eu-west-1",
    )


def test_image_uri_option_wins_over_the_live_image() -> None:
    target = target_from_function_config(_payload("lambda_get_function.json"),
                                         image_uri=f"{ECR}/shop/thumbnailer:2024.06.1", source="live")
    assert [i.tag for i in target.images] == ["2024.06.1"]


def test_get_function_configuration_needs_the_image_uri_option() -> None:
    config = _payload("lambda_get_function_configuration.json")
    target = target_from_function_config(config, image_uri=f"{ECR}/shop/thumbnailer:7", source="live")
    assert [i.uri for i in target.images] == [f"{ECR}/shop/thumbnailer:7"]
    assert (target.architecture, target.architecture_declared) == (Architecture.AMD64, False)
    assert target.containers[0].environment == ()
    with pytest.raises(InputError, match=r"image function without an image URI"):
        target_from_function_config(config, image_uri=None, source="live")


def test_zip_function_is_refused() -> None:
    with pytest.raises(InputError) as e:
        target_from_function_config(_payload("lambda_get_function_zip.json"), image_uri="a/b:1", source="live")
    assert str(e.value) == "function shop-legacy-cron is a zip function; deploy-guard verifies image functions only"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"Configuration": []}, "live: Configuration must be an object, not a list"),
        ({"Configuration": {"PackageType": "Image"}}, "live: FunctionName must be a non-empty string, not null"),
        ({"FunctionName": "fn", "PackageType": "Image", "Architectures": "arm64"},
         "live: Architectures must be a list, not a string"),
        ({"FunctionName": "fn", "PackageType": "Image", "Environment": {"Variables": ["A"]}},
         "live: Environment.Variables must be an object, not a list"),
        ({"FunctionName": "fn", "PackageType": "Image", "Role": False}, "live: Role must be a non-empty string, "
                                                                         "not a boolean"),
        ({"Configuration": {"FunctionName": "fn", "PackageType": "Image"}, "Code": "x"},
         "live: Code must be an object, not a string"),
    ],
)
def test_wrong_types_are_input_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as e:
        target_from_function_config(config, image_uri="a/b:1", source="live")
    assert str(e.value) == message

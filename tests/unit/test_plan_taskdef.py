"""guard.plan.taskdef: ECS task definition JSON (registered, described, rendered) -> Target."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from guard.models import Architecture, Container, ImageRef, InputError, Target, TargetKind
from guard.plan.taskdef import load_task_definition, target_from_task_definition

TASKDEFS = Path(__file__).resolve().parent.parent / "fixtures" / "taskdefs"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
DIGEST = "sha256:4f9c2b1e7d3a8c6b5e0f1a2d3c4b5a6978e8f7d6c5b4a3928170f6e5d4c3b2a1"


def _text(name: str) -> str:
    return (TASKDEFS / name).read_text()


def _registered() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_text("task-definition.json"))
    return doc


def _error(td: Any, **kwargs: Any) -> str:
    with pytest.raises(InputError) as e:
        target_from_task_definition(td, name="shop-web", source="td.json", **kwargs)
    return str(e.value)


# ---- the three shapes

def test_registered_task_definition_file() -> None:
    (target,) = load_task_definition(_text("task-definition.json"), "task-definition.json").targets
    assert target.kind is TargetKind.TASK_DEFINITION
    assert (target.name, target.source) == ("shop-web", "task-definition.json")
    assert [c.name for c in target.containers] == ["web", "datadog-agent"]
    web, agent = target.containers
    assert web.image == ImageRef(uri=f"{ECR}/shop/web:1.8.0", registry=ECR, repository="shop/web", tag="1.8.0",
                                 account="123456789012", region="eu-west-1")
    assert (web.essential, agent.essential) == (True, False)
    assert web.environment == ("DD_AGENT_HOST", "LOG_LEVEL", "PORT")
    assert web.secrets == (
        ("DB_PASSWORD", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/web/db-AbCdEf"),
        ("STRIPE_KEY", "arn:aws:ssm:eu-west-1:123456789012:parameter/shop/web/stripe"),
    )
    assert (web.ports, agent.ports) == (("8080/tcp",), ("8125/udp", "8126/tcp"))
    assert web.health_check == "CMD-SHELL curl -f http://localhost:8080/health || exit 1"
    assert agent.image == ImageRef(uri="public.ecr.aws/datadog/agent:7.52.0", registry="public.ecr.aws",
                                   repository="datadog/agent", tag="7.52.0")
    assert (target.architecture, target.architecture_declared) == (Architecture.ARM64, True)
    assert target.execution_role == "arn:aws:iam::123456789012:role/shop-web-execution"
    assert target.task_role == "arn:aws:iam::123456789012:role/shop-web-task"
    assert target.log_groups == ("/ecs/shop/web",)
    assert (target.region, target.unknown) == (None, ())


def test_describe_task_definition_output() -> None:
    (target,) = load_task_definition(_text("describe-task-definition.json"), "described.json").targets
    assert target == Target(
        kind=TargetKind.TASK_DEFINITION,
        name="shop-api",
        source="described.json",
        containers=(Container(
            name="api",
            image=ImageRef(uri=f"{ECR}/shop/api@{DIGEST}", registry=ECR, repository="shop/api", digest=DIGEST,
                           account="123456789012", region="eu-west-1"),
            environment=("SPRING_PROFILES_ACTIVE",),
            ports=("9000/tcp", "9090/tcp"),
        ),),
        architecture=Architecture.AMD64,
        architecture_declared=False,
        execution_role="arn:aws:iam::123456789012:role/shop-api-execution",
        log_groups=("/ecs/shop/api",),
        region="eu-west-1",  # from taskDefinitionArn
    )


def test_render_task_definition_output() -> None:
    (target,) = load_task_definition(_text("rendered-task-definition.json"), "rendered.json").targets
    (image,) = target.images
    assert (image.uri, image.repository, image.tag, image.digest) == (
        f"{ECR}/shop/api:git-3f2a9c1", "shop/api", "git-3f2a9c1", None)
    assert (image.account, image.region) == ("123456789012", "eu-west-1")
    assert target.name == "shop-api"


def test_name_falls_back_to_the_file_name() -> None:
    td = _registered()
    del td["family"]
    (target,) = load_task_definition(json.dumps(td), "deploy/ecs/web.json").targets
    assert target.name == "web.json"


def test_explicit_kind_and_region() -> None:
    target = target_from_task_definition(_registered(), name="prod/web", source="service prod/web",
                                         kind=TargetKind.SERVICE, region="us-east-2")
    assert (target.kind, target.region) == (TargetKind.SERVICE, "us-east-2")


@pytest.mark.parametrize(("value", "expected"), [("X86_64", Architecture.AMD64), ("ARM64", Architecture.ARM64)])
def test_cpu_architecture(value: str, expected: Architecture) -> None:
    td = _registered()
    td["runtimePlatform"]["cpuArchitecture"] = value
    target = target_from_task_definition(td, name="w", source="s")
    assert (target.architecture, target.architecture_declared) == (expected, True)


def test_runtime_platform_without_cpu_architecture_defaults_to_x86() -> None:
    td = _registered()
    td["runtimePlatform"] = {"operatingSystemFamily": "LINUX"}
    target = target_from_task_definition(td, name="w", source="s")
    assert (target.architecture, target.architecture_declared) == (Architecture.AMD64, False)


# ---- --image NAME=URI overrides

def test_override_replaces_one_container_image() -> None:
    target = target_from_task_definition(_registered(), name="w", source="s",
                                         overrides={"web": f"{ECR}/shop/web@{DIGEST}"})
    assert [i.uri for i in target.images] == [f"{ECR}/shop/web@{DIGEST}", "public.ecr.aws/datadog/agent:7.52.0"]


def test_override_replaces_a_placeholder_image() -> None:
    td = _registered()
    td["containerDefinitions"][0]["image"] = "<IMAGE>"
    target = target_from_task_definition(td, name="w", source="s", overrides={"web": f"{ECR}/shop/web:2.0.0"})
    assert target.containers[0].image is not None
    assert target.containers[0].image.tag == "2.0.0"


def test_override_for_an_unknown_container_lists_the_names() -> None:
    assert _error(_registered(), overrides={"webb": "x/y:1"}) == (
        "td.json: shop-web: no container named 'webb' (containers: web, datadog-agent)")


def test_invalid_override_image_names_the_container() -> None:
    assert _error(_registered(), overrides={"web": "web:"}).startswith(
        "td.json: shop-web: container 'web': not an image reference: 'web:'")


# ---- bad input: always an InputError that says where

def test_invalid_image_names_container_and_source() -> None:
    td = _registered()
    td["containerDefinitions"][1]["image"] = "public.ecr.aws/datadog/Agent:7"
    assert _error(td) == ("td.json: shop-web: container 'datadog-agent': image 'public.ecr.aws/datadog/Agent:7': "
                          "invalid repository name 'datadog/Agent'")


def test_unknown_cpu_architecture() -> None:
    td = _registered()
    td["runtimePlatform"]["cpuArchitecture"] = "RISCV64"
    assert _error(td) == ("td.json: shop-web: runtimePlatform.cpuArchitecture: unknown CPU architecture "
                          "'RISCV64' (expected X86_64 or ARM64)")


def _set(path: str, value: Any) -> dict[str, Any]:
    """The registered fixture with the value at a dotted path (list indexes as digits) replaced."""
    td = copy.deepcopy(_registered())
    node: Any = td
    *parents, last = path.split(".")
    for step in parents:
        node = node[int(step)] if step.isdigit() else node[step]
    node[int(last) if last.isdigit() else last] = value
    return td


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("containerDefinitions", "web", "td.json: shop-web: not an ECS task definition (no containerDefinitions)"),
        ("containerDefinitions", [], "td.json: shop-web: containerDefinitions is empty"),
        ("containerDefinitions.0", "web", "td.json: shop-web: containerDefinitions[0] must be an object, "
                                          "not a string"),
        ("containerDefinitions.0.name", 7, "td.json: shop-web: containerDefinitions[0].name must be a "
                                           "non-empty string, not a number"),
        ("containerDefinitions.1.name", "web", "td.json: shop-web: two containers are named 'web'"),
        ("containerDefinitions.0.image", None, "td.json: shop-web: container 'web': image must be a non-empty "
                                               "string, not null"),
        ("containerDefinitions.0.essential", "yes", "td.json: shop-web: container 'web': essential must be true "
                                                    "or false, not a string"),
        ("containerDefinitions.0.environment", {"PORT": "80"}, "td.json: shop-web: container 'web': environment "
                                                               "must be a list, not an object"),
        ("containerDefinitions.0.environment.1", {"value": "x"}, "td.json: shop-web: container 'web': "
         "environment[1].name must be a non-empty string, not null"),
        ("containerDefinitions.0.secrets.0.valueFrom", ["arn"], "td.json: shop-web: container 'web': "
         "secrets[0].valueFrom must be a non-empty string, not a list"),
        ("containerDefinitions.0.portMappings.0.containerPort", "8080", "td.json: shop-web: container 'web': "
         "portMappings[0].containerPort must be a port number, not '8080'"),
        ("containerDefinitions.0.portMappings.0.containerPort", True, "td.json: shop-web: container 'web': "
         "portMappings[0].containerPort must be a port number, not True"),
        ("containerDefinitions.0.healthCheck.command", "curl", "td.json: shop-web: container 'web': "
         "healthCheck.command must be a list, not a string"),
        ("containerDefinitions.0.healthCheck.command", [], "td.json: shop-web: container 'web': "
         "healthCheck.command must be a non-empty list of strings"),
        ("containerDefinitions.0.logConfiguration.options", [], "td.json: shop-web: container 'web': "
         "logConfiguration.options must be an object, not a list"),
        ("runtimePlatform", "ARM64", "td.json: shop-web: runtimePlatform must be an object, not a string"),
        ("executionRoleArn", 12, "td.json: shop-web: executionRoleArn must be a non-empty string, not a number"),
    ],
)
def test_wrong_types_are_input_errors(path: str, value: Any, message: str) -> None:
    assert _error(_set(path, value)) == message


def test_port_ranges_and_default_protocol() -> None:
    td = _set("containerDefinitions.0.portMappings", [
        {"containerPort": 8080, "hostPort": 80},
        {"containerPortRange": "9000-9010", "protocol": "UDP"},
        {"containerPort": 8080, "hostPort": 8081, "protocol": "tcp"},
    ])
    target = target_from_task_definition(td, name="w", source="s")
    assert target.containers[0].ports == ("8080/tcp", "9000-9010/udp")


def test_non_awslogs_drivers_have_no_log_group() -> None:
    td = _set("containerDefinitions.0.logConfiguration", {"logDriver": "awsfirelens", "options": {"Name": "x"}})
    td["containerDefinitions"][1]["logConfiguration"]["options"]["awslogs-group"] = "/ecs/shop/datadog"
    assert target_from_task_definition(td, name="w", source="s").log_groups == ("/ecs/shop/datadog",)


@pytest.mark.parametrize("text", ["[]", '{"family": "web"}', '{"taskDefinition": {"family": "web"}}', '"x"'])
def test_not_a_task_definition(text: str) -> None:
    with pytest.raises(InputError) as e:
        load_task_definition(text, "td.json")
    assert str(e.value) == "td.json: not an ECS task definition (no containerDefinitions)"


def test_malformed_json_reports_line_and_column() -> None:
    with pytest.raises(InputError) as e:
        load_task_definition('{\n  "family": "web",\n  "containerDefinitions": [\n}', "td.json")
    assert str(e.value) == "td.json: not valid JSON: Expecting value at line 4 column 1"


def test_family_must_be_a_string() -> None:
    td = _set("family", ["web"])
    with pytest.raises(InputError, match=r"^td.json: family must be a non-empty string, not a list$"):
        load_task_definition(json.dumps(td), "td.json")

"""guard.plan.terraform: `terraform show -json` plans and binary plan files -> DeployPlan."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from guard.models import Architecture, Container, ImageRef, InputError, Target, TargetKind
from guard.plan.terraform import load_plan_file, load_plan_json

PLANS = Path(__file__).resolve().parent.parent / "fixtures" / "plans"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
DIGEST = "sha256:4f9c2b1e7d3a8c6b5e0f1a2d3c4b5a6978e8f7d6c5b4a3928170f6e5d4c3b2a1"


def _plan(name: str) -> list[Target]:
    return list(load_plan_json((PLANS / name).read_text(), name).targets)


def _by_name(name: str) -> dict[str, Target]:
    return {t.name: t for t in _plan(name)}


def _mutated_plan(name: str, address: str, **after: object) -> str:
    """A fixture plan with some `after` attributes of one resource change replaced."""
    doc = json.loads((PLANS / name).read_text())
    for rc in doc["resource_changes"]:
        if rc["address"] == address:
            rc["change"]["after"].update(after)
    return json.dumps(doc)


# ---- a realistic plan: root, child and nested modules, Lambda, and every change we skip

def test_mixed_plan_keeps_only_created_or_updated_task_definitions_and_image_functions() -> None:
    assert [t.name for t in _plan("plan_mixed.json")] == [
        "aws_ecs_task_definition.web",
        "module.api.aws_ecs_task_definition.this",
        "module.svc.module.task.aws_ecs_task_definition.main",
        "aws_lambda_function.thumbnailer",
    ]


def test_root_task_definition_with_a_sidecar() -> None:
    web = _by_name("plan_mixed.json")["aws_ecs_task_definition.web"]
    assert web == Target(
        kind=TargetKind.TASK_DEFINITION,
        name="aws_ecs_task_definition.web",
        source="plan_mixed.json",
        containers=(
            Container(
                name="web",
                image=ImageRef(uri=f"{ECR}/shop/web:1.8.0", registry=ECR, repository="shop/web", tag="1.8.0",
                               account="123456789012", region="eu-west-1"),
                environment=("DD_AGENT_HOST", "LOG_LEVEL", "PORT"),
                secrets=(
                    ("DB_PASSWORD", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/web/db-AbCdEf"),
                    ("STRIPE_KEY", "arn:aws:ssm:eu-west-1:123456789012:parameter/shop/web/stripe"),
                ),
                ports=("8080/tcp",),
                health_check="CMD-SHELL curl -f http://localhost:8080/health || exit 1",
            ),
            Container(
                name="datadog-agent",
                image=ImageRef(uri="public.ecr.aws/datadog/agent:7.52.0", registry="public.ecr.aws",
                               repository="datadog/agent", tag="7.52.0"),
                essential=False,
                environment=("DD_APM_ENABLED", "DD_SITE", "ECS_FARGATE"),
                secrets=(("DD_API_KEY", "arn:aws:ssm:eu-west-1:123456789012:parameter/shop/datadog/api-key"),),
                ports=("8125/udp", "8126/tcp"),
                health_check="CMD-SHELL agent health",
            ),
        ),
        architecture=Architecture.ARM64,
        architecture_declared=True,
        execution_role="arn:aws:iam::123456789012:role/shop-web-execution",
        task_role="arn:aws:iam::123456789012:role/shop-web-task",
        log_groups=("/ecs/shop/web",),
    )


def test_child_module_task_definition_pinned_by_digest() -> None:
    api = _by_name("plan_mixed.json")["module.api.aws_ecs_task_definition.this"]
    (container,) = api.containers
    assert container.image == ImageRef(uri=f"{ECR}/shop/api@{DIGEST}", registry=ECR, repository="shop/api",
                                       digest=DIGEST, account="123456789012", region="eu-west-1")
    assert container.ports == ("9000/tcp", "9090/tcp")
    assert (api.architecture, api.architecture_declared) == (Architecture.AMD64, True)
    assert api.execution_role == "arn:aws:iam::123456789012:role/shop-api-execution"
    assert api.task_role is None
    assert api.log_groups == ("/ecs/shop/api",)
    assert api.unknown == ()


def test_nested_module_task_definition_defaults() -> None:
    main = _by_name("plan_mixed.json")["module.svc.module.task.aws_ecs_task_definition.main"]
    assert main.containers == (
        Container(name="proxy", image=ImageRef(uri="nginx:1.25-alpine", registry="docker.io",
                                               repository="nginx", tag="1.25-alpine"), ports=("80/tcp",)),
    )
    # No runtime_platform: ECS runs X86_64, and the target says the plan did not declare it.
    assert (main.architecture, main.architecture_declared) == (Architecture.AMD64, False)
    assert (main.execution_role, main.task_role, main.log_groups, main.unknown) == (None, None, (), ())


def test_image_lambda_with_a_variable_known_only_after_apply() -> None:
    fn = _by_name("plan_mixed.json")["aws_lambda_function.thumbnailer"]
    assert fn == Target(
        kind=TargetKind.LAMBDA,
        name="aws_lambda_function.thumbnailer",
        source="plan_mixed.json",
        containers=(Container(
            name="shop-thumbnailer",
            image=ImageRef(uri=f"{ECR}/shop/thumbnailer:2024.06.1", registry=ECR, repository="shop/thumbnailer",
                           tag="2024.06.1", account="123456789012", region="eu-west-1"),
            environment=("BUCKET", "QUEUE_URL"),
        ),),
        architecture=Architecture.ARM64,
        architecture_declared=True,
        execution_role="arn:aws:iam::123456789012:role/shop-thumbnailer",
    )


# ---- replacements and updates

def test_replace_in_either_order_and_in_place_update_use_the_after_values() -> None:
    targets = _by_name("plan_replace.json")
    assert list(targets) == ["aws_ecs_task_definition.worker", "aws_ecs_task_definition.mailer",
                             "aws_lambda_function.resizer"]
    assert [i.uri for i in targets["aws_ecs_task_definition.worker"].images] == [f"{ECR}/shop/worker:1.1.0"]
    (mailer,) = targets["aws_ecs_task_definition.mailer"].images
    assert (mailer.registry, mailer.repository, mailer.tag, mailer.account) == (
        "ghcr.io", "acme/mailer", "v2.3.1", None)
    resizer = targets["aws_lambda_function.resizer"]
    assert [i.uri for i in resizer.images] == [f"{ECR}/shop/resizer:42"]
    assert (resizer.architecture, resizer.architecture_declared) == (Architecture.AMD64, True)


# ---- unknown values are listed, never dropped

def test_unknown_container_definitions_and_execution_role() -> None:
    app = _by_name("plan_unknown.json")["aws_ecs_task_definition.app"]
    assert app.containers == ()
    assert app.unknown == ("container_definitions", "execution_role_arn")
    assert app.execution_role is None
    assert app.task_role == "arn:aws:iam::123456789012:role/shop-app-task"
    assert (app.architecture, app.architecture_declared) == (Architecture.ARM64, True)


def test_unknown_cpu_architecture_is_not_assumed() -> None:
    gpu = _by_name("plan_unknown.json")["aws_ecs_task_definition.gpu"]
    assert (gpu.architecture, gpu.architecture_declared, gpu.unknown) == (None, False, ("runtime_platform",))
    assert [i.uri for i in gpu.images] == [f"{ECR}/shop/gpu:5.0.0"]


def test_unknown_lambda_image_and_role() -> None:
    fn = _by_name("plan_unknown.json")["module.media.aws_lambda_function.resizer"]
    assert fn.containers == (
        Container(name="shop-image-resizer", image=None, image_unknown=True, environment=("STAGE",)),
    )
    assert fn.unknown == ("image_uri", "role")
    assert fn.execution_role is None
    # architectures unset (so computed) -> Lambda's default, flagged as not declared.
    assert (fn.architecture, fn.architecture_declared) == (Architecture.AMD64, False)


def test_missing_container_definitions_counts_as_unknown() -> None:
    text = _mutated_plan("plan_replace.json", "aws_ecs_task_definition.worker", container_definitions=None)
    worker = load_plan_json(text, "p.json").targets[0]
    assert (worker.containers, worker.unknown) == ((), ("container_definitions",))


def test_wholly_unknown_lambda_environment_is_listed() -> None:
    doc = json.loads((PLANS / "plan_unknown.json").read_text())
    doc["resource_changes"][2]["change"]["after_unknown"]["environment"] = True
    fn = load_plan_json(json.dumps(doc), "p.json").targets[2]
    assert fn.unknown == ("image_uri", "role", "environment")
    assert fn.containers[0].environment == ()


# ---- setup-terraform's wrapper

@pytest.mark.parametrize("transform", [str, lambda t: "\ufeff" + t.replace("\n", "\r\n")], ids=["lf", "bom-crlf"])
def test_setup_terraform_wrapper_lines_are_ignored(transform: Callable[[str], str]) -> None:
    text = transform((PLANS / "plan_setup_terraform_wrapper.txt").read_text())
    (target,) = load_plan_json(text, "wrapped.txt").targets
    web = _by_name("plan_mixed.json")["aws_ecs_task_definition.web"]
    assert target.containers == web.containers[:1]
    assert target.execution_role == web.execution_role


def test_json_errors_keep_the_line_numbers_of_the_wrapped_output() -> None:
    text = "[command]/usr/bin/terraform-bin show -json tfplan\n{\n  \"format_version\": \"1.2\",\n}\n"
    with pytest.raises(InputError, match=r"^w.txt: not valid JSON: .* at line 4 column 1$"):
        load_plan_json(text, "w.txt")


# ---- inputs that are not plans

def test_state_is_refused() -> None:
    with pytest.raises(InputError, match=r"^state.json: this is a Terraform state, not a plan"):
        _plan("state.json")


def test_format_version_2_is_refused() -> None:
    with pytest.raises(InputError) as e:
        _plan("plan_format_v2.json")
    assert str(e.value) == ("plan_format_v2.json: unsupported plan format_version '2.0'; deploy-guard reads 0.1 "
                            "(Terraform 0.12-0.15), 0.2 (Terraform 1.0) and 1.x (Terraform 1.1+, OpenTofu)")


def test_malformed_json_reports_line_and_column() -> None:
    with pytest.raises(InputError) as e:
        _plan("plan_malformed.json")
    assert str(e.value) == ("plan_malformed.json: not valid JSON: Expecting property name enclosed in double "
                            "quotes at line 13 column 1")


def test_invalid_container_definitions_json_names_the_address() -> None:
    with pytest.raises(InputError) as e:
        _plan("plan_bad_container_definitions.json")
    assert str(e.value) == ("plan_bad_container_definitions.json: module.api.aws_ecs_task_definition.this: "
                            "container_definitions: not valid JSON: Expecting value at line 1 column 24")


def test_invalid_image_names_the_address_and_container() -> None:
    defs = json.dumps([{"name": "worker", "image": "Shop/Worker:1.0"}])
    text = _mutated_plan("plan_replace.json", "aws_ecs_task_definition.worker", container_definitions=defs)
    with pytest.raises(InputError, match=r"^p.json: aws_ecs_task_definition.worker: container 'worker': image "):
        load_plan_json(text, "p.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "x: not a Terraform plan: expected a JSON object, not a list"),
        ('{"resource_changes": []}', "x: not a Terraform plan: no format_version "
                                     "(expected `terraform show -json <planfile>` output)"),
        ('{"format_version": "1.0"}', "x: not a Terraform plan: no resource_changes or planned_values"),
        ('{"format_version": 1, "resource_changes": []}',
         "x: unsupported plan format_version 1; deploy-guard reads 0.1 (Terraform 0.12-0.15), 0.2 (Terraform "
         "1.0) and 1.x (Terraform 1.1+, OpenTofu)"),
        ('{"format_version": "1.2", "resource_changes": {}}', "x: resource_changes must be a list, not an object"),
        ('{"format_version": "1.2", "resource_changes": [7]}', "x: resource_changes[0] must be an object, "
                                                               "not a number"),
        ('{"format_version": "1.2", "resource_changes": [{"type": "aws_lambda_function"}]}',
         "x: resource_changes[0].address must be a non-empty string, not null"),
        ('{"format_version": "1.2", "resource_changes": [{"type": "aws_lambda_function", "address": "a.b",'
         ' "change": {"actions": ["create"], "after": null}}]}', "x: a.b: change.after must be an object, not null"),
        ("", "x: not valid JSON: Expecting value at line 1 column 1"),
    ],
)
def test_not_a_plan(text: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        load_plan_json(text, "x")
    assert str(e.value) == message


def test_plan_without_changes_has_no_targets() -> None:
    assert load_plan_json('{"format_version": "1.2", "planned_values": {}}', "x").targets == ()


# ---- plan files on disk

def test_load_plan_file_reads_json(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    shutil.copy(PLANS / "plan_replace.json", path)
    plan = load_plan_file(path)
    assert [t.source for t in plan.targets] == [str(path)] * 3


def test_missing_plan_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope.json: no such file$"):
        load_plan_file(tmp_path / "nope.json")


def test_plan_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r": cannot read: "):
        load_plan_file(tmp_path)


def test_plan_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(b'{"format_version": "1.2", "x": "\xff"}')
    with pytest.raises(InputError, match=r"not UTF-8 text \(bad byte at offset 32\)"):
        load_plan_file(path)


def test_binary_plan_without_terraform_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tfplan"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 60)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(InputError) as e:
        load_plan_file(path)
    assert str(e.value) == (f"{path} is a binary plan file; converting it needs the terraform binary on PATH "
                            "(or pass `terraform show -json <plan>` output instead)")


needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary on PATH")


@needs_terraform
def test_real_binary_plan_is_converted(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'resource "terraform_data" "build" {\n  input = "web:1.8.0"\n}\n\n'
        'output "image" {\n  value = terraform_data.build.output\n}\n'
    )
    env = {"PATH": os.environ["PATH"], "TF_IN_AUTOMATION": "1", "HOME": str(tmp_path),
           "TF_CLI_CONFIG_FILE": str(tmp_path / "none.tfrc")}
    for args in (["init", "-input=false"], ["plan", "-input=false", "-out=tfplan"]):
        subprocess.run(["terraform", *args], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    assert (tmp_path / "tfplan").read_bytes().startswith(b"PK\x03\x04")
    assert load_plan_file(tmp_path / "tfplan").targets == ()


@needs_terraform
@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")
def test_terraform_show_failure_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "tfplan"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError) as e:
        load_plan_file(path)
    assert str(e.value).startswith(f"{path}: `terraform show -json` failed (exit 1):\n"
                                   "Error: Failed to read the given file as a state or plan file\n")


@needs_terraform
def test_garbled_state_next_to_a_binary_plan(tmp_path: Path) -> None:
    (tmp_path / "terraform.tfstate").write_text("{not json")
    path = tmp_path / "tfplan"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match=r"could not run `terraform show -json`: "):
        load_plan_file(path)

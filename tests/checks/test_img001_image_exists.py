"""IMG001: image exists in ECR (pass, fail, unverified)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition

ACCOUNT = "123456789012"
OTHER = "222222222222"


def _taskdef(aws: Scenario, tmp_path: Path, *containers: tuple[str, str]) -> str:
    arn = aws.task_definition("api", list(containers))
    return export_task_definition(aws, arn, tmp_path / "td.json")


def test_existing_tag_and_digest_pass(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    digest = aws.push_image("api", "3f2c1a9")
    out = guard("--task-def", _taskdef(aws, tmp_path, ("web", f"{repo}:3f2c1a9"), ("sidecar", f"{repo}@{digest}")))
    assert out.code == 0, out.stdout + out.stderr
    assert out.findings("IMG001") == []
    assert out.doc["stats"]["api_calls"]["by_api"]["ecr:BatchGetImage"] == 1


def test_missing_tag_blocks_with_the_exact_reason(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    out = guard("--task-def", _taskdef(aws, tmp_path, ("web", f"{repo}:never-pushed")))
    assert out.code == 1
    [f] = out.findings("IMG001")
    assert f["severity"] == "error" and f["target"] == "api"
    assert "api:never-pushed does not exist" in f["message"]
    assert f["evidence"]["container"] == "web"


def test_missing_digest_and_deleted_image(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "old")
    aws.delete_image("api", tag="old")
    ghost = "sha256:" + "0" * 64
    out = guard("--task-def", _taskdef(aws, tmp_path, ("web", f"{repo}:old"), ("worker", f"{repo}@{ghost}")))
    assert out.code == 1
    assert sorted(f["evidence"]["container"] for f in out.findings("IMG001")) == ["web", "worker"]


def test_missing_repository(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    out = guard("--task-def", _taskdef(aws, tmp_path,
                                       ("web", f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/nope:1")))
    assert out.code == 1
    [f] = out.findings("IMG001")
    assert "repository nope does not exist" in f["message"]


def test_cross_account_uri_through_configured_role(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("shared/base", account=OTHER)
    aws.push_image("shared/base", "1.0", account=OTHER)
    td = _taskdef(aws, tmp_path, ("web", f"{repo}:1.0"), ("worker", f"{repo}:2.0"))
    (tmp_path / "guard.toml").write_text(f'[accounts]\n"{OTHER}" = "arn:aws:iam::{OTHER}:role/guard-read"\n')
    out = guard("--task-def", td)
    assert out.code == 1
    [f] = out.findings("IMG001")
    assert f["evidence"]["container"] == "worker" and f["evidence"]["account"] == OTHER
    assert out.doc["stats"]["api_calls"]["by_api"]["sts:AssumeRole"] == 1


def test_public_image_is_reported_not_verified(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    out = guard("--task-def", _taskdef(aws, tmp_path, ("web", f"{repo}:v1"),
                                       ("agent", "public.ecr.aws/datadog/agent:7")))
    assert out.code == 0
    [f] = out.findings("IMG001")
    assert f["severity"] == "info" and "outside ECR" in f["message"]


def test_images_deduplicated_and_batched(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    for i in range(3):
        aws.push_image("api", f"t{i}")
    paths = []
    for i in range(3):
        arn = aws.task_definition(f"svc{i}", [("web", f"{repo}:t{i}"), ("shared", f"{repo}:t0")])
        paths += ["--task-def", export_task_definition(aws, arn, tmp_path / f"td{i}.json")]
    out = guard(*paths)
    assert out.code == 0
    assert out.doc["stats"]["api_calls"]["by_api"]["ecr:BatchGetImage"] == 1


def test_unreachable_endpoint_fails_closed(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    repo = aws.repository("api")
    td = _taskdef(aws, tmp_path, ("web", f"{repo}:v1"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    out = guard("--task-def", td)
    assert out.code == 3
    [u] = out.unverified("IMG001")
    assert u["error_code"] == "Unreachable" and "endpoint unreachable" in u["reason"]
    assert out.findings("IMG001") == []
    assert guard("--task-def", td, "--allow-unverified").code == 0


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("11111111111.dkr.ecr.us-east-1.amazonaws.com/aws-for-fluent-bit:latest",
         "account '11111111111' is not a 12-digit AWS account ID"),
        ("XXXXXXXXXXXX.dkr.ecr.region-code.amazonaws.com/app:1",
         "account 'XXXXXXXXXXXX' is not a 12-digit AWS account ID; region 'region-code' is not an AWS region name"),
        ("aws_account_id.dkr.ecr.us-east-1.amazonaws.com/app:1",
         "account 'aws_account_id' is not a 12-digit AWS account ID"),
    ],
)
def test_malformed_and_placeholder_ecr_hosts_are_errors(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                                        image: str, why: str) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    out = guard("--task-def", _taskdef(aws, tmp_path, ("web", f"{repo}:v1"), ("log_router", image)))
    assert out.code == 1
    [f] = out.findings("IMG001")
    assert f["severity"] == "error" and f["evidence"]["container"] == "log_router"
    assert f["message"] == f"container log_router: image {image} can never be pulled: {why}"
    assert out.doc["stats"]["api_calls"]["by_api"]["ecr:BatchGetImage"] == 1  # only the real repository


def test_template_task_definition_is_an_input_error(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    td = tmp_path / "taskdef.json"
    td.write_text('{"family": "web", "containerDefinitions": [{"name": "web", "image": "<IMAGE1_NAME>"}]}')
    out = guard("--task-def", str(td))
    assert out.code == 2
    assert "image '<IMAGE1_NAME>' is a template" in out.stderr


def test_template_inside_a_plan_is_an_error_finding(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    defs = json.dumps([{"name": "web", "image": "${aws_ecr_repository.web.repository_url}:latest"}])
    plan = {"format_version": "1.2", "resource_changes": [{
        "address": "aws_ecs_task_definition.web", "mode": "managed", "type": "aws_ecs_task_definition",
        "change": {"actions": ["create"], "after": {"container_definitions": defs}, "after_unknown": {}}}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = guard("--plan", str(tmp_path / "plan.json"))
    assert out.code == 1
    [f] = out.findings("IMG001")
    assert "can never be pulled: '${aws_ecr_repository.web.repository_url}' is an unrendered template" in f["message"]


def test_deleted_digest_prints_repo_at_digest(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    ghost = "sha256:" + "0" * 64
    out = guard("--task-def", _taskdef(aws, tmp_path, ("web", f"{repo}@{ghost}")))
    [f] = out.findings("IMG001")
    assert f"image api@{ghost} does not exist" in f["message"]

"""REF001: referenced secrets and SSM parameters exist (values never read)."""

from __future__ import annotations

from pathlib import Path

from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition


def _td(aws: Scenario, tmp_path: Path, secrets: list[tuple[str, str]]) -> str:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    arn = aws.task_definition("api", [("web", f"{repo}:v1")], secrets=secrets)
    return export_task_definition(aws, arn, tmp_path / "td.json")


def test_existing_secret_and_parameter_pass(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    secret = aws.secret("prod/db")
    param = aws.parameter("/prod/api/key")
    out = guard("--task-def", _td(aws, tmp_path, [("DB", secret + ":password::"), ("KEY", param)]))
    assert out.code == 0, out.stdout
    calls = out.doc["stats"]["api_calls"]["by_api"]
    assert "secretsmanager:GetSecretValue" not in calls and "ssm:GetParameters" not in calls


def test_missing_secret_and_parameter_block(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    aws.secret("prod/db")
    missing_secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/gone-AbCdEf"
    out = guard("--task-def", _td(aws, tmp_path, [("DB", missing_secret), ("KEY", "/prod/api/missing")]))
    assert out.code == 1
    found = {f["evidence"]["variable"]: f["message"] for f in out.findings("REF001")}
    assert set(found) == {"DB", "KEY"}
    assert "secret" in found["DB"] and "SSM parameter" in found["KEY"]

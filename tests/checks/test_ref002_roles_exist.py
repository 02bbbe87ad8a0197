"""REF002: execution and task roles exist."""

from __future__ import annotations

from pathlib import Path

from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition


def test_deleted_execution_role_blocks(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    execution = aws.role("api-exec")
    task = aws.role("api-task")
    arn = aws.task_definition("api", [("web", f"{repo}:v1")], execution_role=execution, task_role=task)
    td = export_task_definition(aws, arn, tmp_path / "td.json")
    assert guard("--task-def", td).code == 0
    aws.delete_role("api-exec")
    out = guard("--task-def", td)
    assert out.code == 1
    [f] = out.findings("REF002")
    assert f["evidence"]["role"] == execution and "execution role" in f["message"]


def test_role_in_another_account_is_info(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    arn = aws.task_definition("api", [("web", f"{repo}:v1")],
                              task_role="arn:aws:iam::999999999999:role/elsewhere")
    out = guard("--task-def", export_task_definition(aws, arn, tmp_path / "td.json"))
    assert out.code == 0
    assert out.findings("REF002")[0]["severity"] == "info"


def test_placeholder_role_account_is_an_error_without_lookup(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    placeholder = "arn:aws:iam::aws_account_id:role/ecsTaskExecutionRole"
    arn = aws.task_definition("api", [("web", f"{repo}:v1")], execution_role=placeholder)
    out = guard("--task-def", export_task_definition(aws, arn, tmp_path / "td.json"))
    assert out.code == 1
    [f] = out.findings("REF002")
    assert f["severity"] == "error" and f["evidence"]["role"] == placeholder
    assert "can never resolve: account 'aws_account_id' is not a 12-digit AWS account ID" in f["message"]
    assert "iam:GetRole" not in out.doc["stats"]["api_calls"]["by_api"]

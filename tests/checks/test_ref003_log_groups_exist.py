"""REF003: awslogs groups exist."""

from __future__ import annotations

from pathlib import Path

from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition


def test_log_group(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    arn = aws.task_definition("api", [("web", f"{repo}:v1")], log_group="/ecs/api")
    td = export_task_definition(aws, arn, tmp_path / "td.json")
    out = guard("--task-def", td)
    [f] = out.findings("REF003")
    assert f["severity"] == "warning" and f["evidence"]["log_group"] == "/ecs/api"
    assert out.code == 0
    aws.log_group("/ecs/api")
    assert guard("--task-def", td).findings("REF003") == []

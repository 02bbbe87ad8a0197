"""IMG003: mutable tags are warned with the digest to pin to."""

from __future__ import annotations

from pathlib import Path

from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition


def test_latest_is_warned_with_pin(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    digest = aws.push_image("api", "latest")
    td = export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:latest")]), tmp_path / "t.json")
    out = guard("--task-def", td)
    assert out.code == 0
    [f] = out.findings("IMG003")
    assert f["severity"] == "warning" and f["evidence"]["pin_to"] == f"{repo}@{digest}"
    assert guard("--task-def", td, "--fail-on", "warning").code == 1


def test_commit_tag_and_digest_pass(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    digest = aws.push_image("api", "3f2c1a9")
    arn = aws.task_definition("api", [("web", f"{repo}:3f2c1a9"), ("w", f"{repo}@{digest}")])
    out = guard("--task-def", export_task_definition(aws, arn, tmp_path / "t.json"))
    assert out.findings("IMG003") == []


def test_severity_override_from_config(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "main")
    td = export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:main")]), tmp_path / "t.json")
    (tmp_path / "guard.toml").write_text('[severity]\nIMG003 = "error"\n')
    out = guard("--task-def", td)
    assert out.code == 1 and out.findings("IMG003")[0]["severity"] == "error"

"""Drive `guard check` end to end (click runner in-process, boto3 over HTTP to the sandbox)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.sandbox.scenarios import Scenario


@dataclass(frozen=True)
class Outcome:
    """What one `guard check` run printed and returned."""

    code: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> dict[str, Any]:
        """The JSON report."""
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed

    def findings(self, check_id: str) -> list[dict[str, Any]]:
        """Findings of one check."""
        return [f for f in self.doc["findings"] if f["check_id"] == check_id]

    def unverified(self, check_id: str) -> list[dict[str, Any]]:
        """Unverified outcomes of one check."""
        return [u for u in self.doc["unverified"] if u["check_id"] == check_id]


GuardRun = Callable[..., Outcome]


@pytest.fixture(name="guard")
def guard_fixture(aws: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GuardRun:
    """Run `guard [GLOBAL...] check ARGS --format json` in an empty directory, outside GitHub Actions."""
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_SHA", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str, fmt: str = "json", global_args: tuple[str, ...] = ()) -> Outcome:
        result = CliRunner().invoke(main, [*global_args, "check", *args, "--format", fmt])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return run


def export_task_definition(aws: Scenario, arn: str, path: Path) -> str:
    """Write a registered task definition as `aws ecs describe-task-definition` prints it."""
    doc = aws.client("ecs").describe_task_definition(taskDefinition=arn)
    doc.pop("ResponseMetadata", None)
    path.write_text(json.dumps(doc, default=str))
    return str(path)

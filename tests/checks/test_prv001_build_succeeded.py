"""PRV001: the build for the deployed commit succeeded (local GitHub server through PyGithub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.sandbox.github_server import GitHubSandbox
from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition

SHA = "3f2c1a9" + "0" * 33
REPO = "acme/shop"


@pytest.fixture
def td(aws: Scenario, tmp_path: Path) -> str:
    repo = aws.repository("api")
    aws.push_image("api", SHA[:7])
    return export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:{SHA[:7]}")]),
                                  tmp_path / "td.json")


def test_successful_build_passes(github: GitHubSandbox, guard: GuardRun, td: str) -> None:
    github.add_run(REPO, head_sha=SHA, conclusion="success")
    out = guard("--task-def", td, "--sha", SHA, "--repository", REPO)
    assert out.code == 0 and out.findings("PRV001") == []
    assert out.doc["stats"]["api_calls"]["by_api"]["github:ListWorkflowRuns"] == 1


def test_cancelled_build_blocks_naming_the_run(github: GitHubSandbox, guard: GuardRun, td: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = github.add_run(REPO, head_sha=SHA, conclusion="cancelled")
    monkeypatch.setenv("GITHUB_SHA", SHA)
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    out = guard("--task-def", td)
    assert out.code == 1
    [f] = out.findings("PRV001")
    assert f["evidence"]["run_id"] == run_id and f["evidence"]["state"] == "cancelled"
    assert f"build run {run_id}" in f["message"] and "concluded cancelled" in f["message"]
    assert f["evidence"]["url"].endswith(f"/actions/runs/{run_id}")


def test_running_build_blocks_but_own_run_is_ignored(github: GitHubSandbox, guard: GuardRun, td: str,
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    github.add_run(REPO, head_sha=SHA, conclusion="success")
    own = github.add_run(REPO, head_sha=SHA, workflow="deploy.yml", name="deploy", status="in_progress",
                         conclusion=None)
    monkeypatch.setenv("GITHUB_RUN_ID", str(own))
    assert guard("--task-def", td, "--sha", SHA, "--repository", REPO).code == 0
    monkeypatch.delenv("GITHUB_RUN_ID")
    out = guard("--task-def", td, "--sha", SHA, "--repository", REPO)  # unnamed and running: may be unrelated
    assert out.code == 0 and "is still running" in out.findings("PRV001")[0]["message"]
    assert out.findings("PRV001")[0]["severity"] == "warning"
    (tmp_path / "guard.toml").write_text('build_workflows = ["build.yml", "deploy.yml"]\n')
    out = guard("--task-def", td, "--sha", SHA, "--repository", REPO)  # named as a build: it must finish
    assert out.code == 1 and "is still running" in out.findings("PRV001")[0]["message"]


def test_configured_workflow_must_have_run(github: GitHubSandbox, guard: GuardRun, td: str,
                                           tmp_path: Path) -> None:
    github.add_run(REPO, head_sha=SHA, workflow="lint.yml", name="lint", conclusion="failure")
    (tmp_path / "guard.toml").write_text('build_workflows = ["build.yml"]\n')
    out = guard("--task-def", td, "--sha", SHA, "--repository", REPO)
    assert out.code == 1
    [f] = out.findings("PRV001")
    assert "no run of workflow build.yml" in f["message"]


def test_rerun_that_succeeded_passes(github: GitHubSandbox, guard: GuardRun, td: str) -> None:
    run_id = github.add_run(REPO, head_sha=SHA, conclusion="cancelled")
    github.complete_run(REPO, run_id, "success")
    assert guard("--task-def", td, "--sha", SHA, "--repository", REPO).code == 0


def test_github_unreachable_or_denied_fails_closed(github: GitHubSandbox, guard: GuardRun, td: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    github.add_run(REPO, head_sha=SHA)
    monkeypatch.setenv("GITHUB_TOKEN", "wrong-token")
    out = guard("--task-def", td, "--sha", SHA, "--repository", REPO)
    assert out.code == 3 and out.unverified("PRV001")[0]["error_code"] in ("AccessDenied", "401")
    assert "wrong-token" not in out.stdout
    monkeypatch.delenv("GITHUB_TOKEN")
    out = guard("--task-def", td, "--sha", SHA, "--repository", REPO)
    assert out.code == 3 and "GITHUB_TOKEN" in out.unverified("PRV001")[0]["reason"]

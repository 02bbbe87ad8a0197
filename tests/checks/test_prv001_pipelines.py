"""PRV001 on real pipeline layouts: build and deploy jobs in one run, several build workflows, reruns,
payloads without `name`/`path`, and skipped, neutral, running and stale runs (local GitHub server, PyGithub)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from guard.sandbox.github_server import GitHubSandbox
from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, Outcome, export_task_definition

SHA = "9b1e0c4" + "0" * 33
REPO = "acme/shop"
GuardRunWithConfig = Callable[[str], Outcome]


@pytest.fixture
def td(aws: Scenario, tmp_path: Path) -> str:
    repo = aws.repository("api")
    aws.push_image("api", SHA[:7])
    return export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:{SHA[:7]}")]),
                                  tmp_path / "td.json")


@pytest.fixture
def check(guard: GuardRun, td: str, tmp_path: Path) -> GuardRunWithConfig:
    def run(config: str = "") -> Outcome:
        (tmp_path / "guard.toml").write_text(config)
        return guard("--task-def", td, "--sha", SHA, "--repository", REPO)
    return run



def _one_run_pipeline(github: GitHubSandbox, monkeypatch: pytest.MonkeyPatch, build: str | None,
                      jobs: tuple[str, ...] = ("test", "build", "deploy")) -> int:
    """The common layout: one run whose build job(s) finished and whose deploy job is running the gate."""
    run = github.add_run(REPO, head_sha=SHA, workflow="ci.yml", name="ci", status="in_progress", conclusion=None,
                         jobs=jobs)
    for job in jobs[:-1]:
        github.set_job(REPO, run, job, "completed", build if job.startswith("build") else "success")
    monkeypatch.setenv("GITHUB_RUN_ID", str(run))
    return run


def test_build_and_deploy_jobs_of_one_run_pass(github: GitHubSandbox, check: GuardRunWithConfig,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    run = _one_run_pipeline(github, monkeypatch, "success")
    out = check("")
    assert out.code == 0 and out.findings("PRV001") == [], out.stdout
    assert out.doc["stats"]["api_calls"]["by_api"]["github:ListJobsForWorkflowRun"] == 1
    assert check('build_jobs = ["build"]\n').findings("PRV001") == []
    assert check('build_workflows = ["ci.yml"]\nbuild_jobs = ["build"]\n').findings("PRV001") == []
    assert any(r.path == f"/repos/{REPO}/actions/runs/{run}/jobs" for r in github.requests)


def test_failed_build_job_in_the_same_run_blocks(github: GitHubSandbox, check: GuardRunWithConfig,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = _one_run_pipeline(github, monkeypatch, "cancelled")  # the deploy job runs with `if: always()`
    out = check("")
    assert out.code == 1
    [f] = out.findings("PRV001")
    assert f["evidence"] == {"run_id": run, "job": "build", "state": "cancelled", "sha": SHA,
                             "url": github.jobs(REPO, run)[1]["html_url"]}
    assert f"job build of the current run {run} concluded cancelled" in f["message"]


def test_named_build_job_must_succeed_not_be_skipped(github: GitHubSandbox, check: GuardRunWithConfig,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _one_run_pipeline(github, monkeypatch, "skipped")
    assert check("").code == 0  # an unnamed skipped job is not a failed build
    out = check('build_jobs = ["build"]\n')
    assert out.code == 1 and "build job build of run" in out.findings("PRV001")[0]["message"]
    assert out.findings("PRV001")[0]["evidence"]["state"] == "skipped"
    out = check('build_jobs = ["package"]\n')
    assert out.code == 1 and "no job package in the current run" in out.findings("PRV001")[0]["message"]


def test_matrix_build_with_one_cancelled_leg_blocks(github: GitHubSandbox, check: GuardRunWithConfig,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run = _one_run_pipeline(github, monkeypatch, "success", jobs=("build (amd64)", "build (arm64)", "deploy"))
    github.set_job(REPO, run, "build (arm64)", "completed", "cancelled")
    out = check('build_jobs = ["build"]\n')
    assert out.code == 1
    [f] = out.findings("PRV001")
    assert f["evidence"]["job"] == "build (arm64)" and f["evidence"]["state"] == "cancelled"


def test_legacy_payloads_cancelled_build_next_to_a_success_blocks(github: GitHubSandbox, check: GuardRunWithConfig
                                                                  ) -> None:
    cancelled = github.add_run(REPO, head_sha=SHA, workflow="build-api.yml", name="build api",
                               conclusion="cancelled", legacy=True)
    github.add_run(REPO, head_sha=SHA, workflow="lint.yml", name="lint", conclusion="success", legacy=True)
    assert "name" not in github.run(REPO, cancelled)
    out = check("")
    assert out.code == 1
    [f] = out.findings("PRV001")
    assert f["evidence"]["run_id"] == cancelled and f["evidence"]["workflow"] == ".github/workflows/build-api.yml"
    out = check('build_workflows = ["build-api.yml"]\n')  # names resolved through the workflow itself
    assert out.code == 1 and out.findings("PRV001")[0]["evidence"]["run_id"] == cancelled
    assert check('build_workflows = ["lint.yml"]\n').code == 0


def test_several_build_workflows_each_must_succeed(github: GitHubSandbox, check: GuardRunWithConfig) -> None:
    config = 'build_workflows = ["build-api.yml", "build-worker.yml"]\n'
    github.add_run(REPO, head_sha=SHA, workflow="build-api.yml", name="api", conclusion="success")
    worker = github.add_run(REPO, head_sha=SHA, workflow="build-worker.yml", name="worker", conclusion="failure")
    out = check(config)
    assert out.code == 1 and [f["evidence"]["run_id"] for f in out.findings("PRV001")] == [worker]
    github.complete_run(REPO, worker, "success")  # the rerun that succeeded
    assert check(config).code == 0


def test_rerun_in_progress_of_a_named_build_blocks(github: GitHubSandbox, check: GuardRunWithConfig) -> None:
    from github import Auth, Github

    run = github.add_run(REPO, head_sha=SHA, conclusion="failure")
    client = Github(base_url=github.api_url, auth=Auth.Token("sandbox-token"), seconds_between_requests=0,
                    seconds_between_writes=0, retry=None)
    assert client.get_repo(REPO).get_workflow_run(run).rerun()
    out = check('build_workflows = ["build.yml"]\n')
    assert out.code == 1
    [f] = out.findings("PRV001")
    assert "attempt 2" in f["message"] and "is still running" in f["message"]


@pytest.mark.parametrize(("state", "unnamed", "named"), [
    ("skipped", None, "error"), ("neutral", None, "error"), ("stale", "warning", "error"),
    ("in_progress", "warning", "error"), ("queued", "warning", "error"), ("timed_out", "error", "error"),
    ("action_required", "error", "error")])
def test_states_of_other_workflows(github: GitHubSandbox, check: GuardRunWithConfig, state: str,
                                   unnamed: str | None, named: str) -> None:
    github.add_run(REPO, head_sha=SHA, workflow="build.yml", name="build", conclusion="success")
    pending = state in ("in_progress", "queued")
    github.add_run(REPO, head_sha=SHA, workflow="codeql.yml", name="codeql", status=state if pending else "completed",
                   conclusion=None if pending else state)
    out = check("")
    assert [f["severity"] for f in out.findings("PRV001")] == ([unnamed] if unnamed else [])
    assert out.code == (1 if unnamed == "error" else 0)
    out = check('build_workflows = ["build.yml", "codeql.yml"]\n')
    assert [f["severity"] for f in out.findings("PRV001")] == [named] and out.code == 1

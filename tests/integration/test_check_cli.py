"""`guard check` input handling: every bad input gets a clear message, exit 2 or 3, and no action."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plans"


@pytest.mark.parametrize(("args", "needle"), [
    ((), "nothing to check"),
    (("--plan", str(FIXTURES / "plan_malformed.json")), "not valid JSON"),
    (("--plan", str(FIXTURES / "state.json")), "state"),
    (("--plan", str(FIXTURES / "plan_format_v2.json")), "format_version"),
    (("--plan", "/nonexistent/plan.json"), "no such file"),
    (("--task-def", str(FIXTURES / "plan_mixed.json")), "not an ECS task definition"),
    (("--image", "web=x"), "needs --service"),
    (("--service", "no-slash"), "CLUSTER/SERVICE"),
    (("--service", "prod/ghost"), "no such service"),
    (("--lambda", "ghost"), "no such function"),
    (("--lambda", "a", "--lambda", "b", "--image-uri", "x"), "one --image-uri per --lambda"),
    (("--bogus-flag",), "No such option"),
])
def test_bad_input_exits_2_with_a_clear_message(aws: Scenario, guard: GuardRun, args: tuple[str, ...],
                                                 needle: str) -> None:
    aws.cluster("prod")
    out = guard(*args)
    assert out.code == 2, (out.stdout, out.stderr)
    assert needle in out.stderr
    assert out.stdout == ""
    assert "Traceback" not in out.stderr


def test_image_override_for_unknown_container(aws: Scenario, guard: GuardRun) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    aws.cluster("prod")
    aws.service("prod", "api", aws.task_definition("api", [("web", f"{repo}:v1")]))
    out = guard("--service", "prod/api", "--image", "nope=x")
    assert out.code == 2 and "no such container" in out.stderr


def test_live_service_with_new_image(aws: Scenario, guard: GuardRun) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    aws.cluster("prod")
    aws.service("prod", "api", aws.task_definition("api", [("web", f"{repo}:v1"), ("log", f"{repo}:v1")]))
    assert guard("--service", "prod/api").code == 0
    out = guard("--service", "prod/api", "--image", f"web={repo}:v2")
    assert out.code == 1
    [f] = out.findings("IMG001")
    assert f["target"] == "prod/api" and f["evidence"]["container"] == "web"


def test_no_credentials_fails_closed(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    repo = aws.repository("api")
    td = export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:v1")]), tmp_path / "td.json")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    out = guard("--task-def", td)
    assert out.code == 3
    assert all(u["error_code"] == "NoCredentials" for u in out.doc["unverified"])
    assert "no AWS credentials" in out.doc["unverified"][0]["reason"]


def test_table_output_and_github_summary(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    repo = aws.repository("api")
    td = export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:gone")]), tmp_path / "td.json")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = guard("--task-def", td, fmt="table")
    assert out.code == 1
    assert "BLOCKED" in out.stdout and "api:gone does not exist" in out.stdout
    assert "::error title=IMG001 api::container web: image api:gone does not exist" in out.stdout
    text = summary.read_text()
    assert text.startswith("## deploy-guard: BLOCKED") and "| error | IMG001 | `api` |" in text


def test_json_contract_shape(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    td = export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:v1")]), tmp_path / "td.json")
    doc = guard("--task-def", td).doc
    assert set(doc) == {"version", "findings", "unverified", "targets", "summary", "stats", "exit_code"}
    assert doc["version"] == 1 and doc["exit_code"] == 0
    assert set(doc["stats"]) == {"api_calls", "duration_s"}
    for f in doc["findings"]:
        assert {"check_id", "severity", "target", "message"} <= set(f)


def test_console_script_runs(aws: Scenario, tmp_path: Path) -> None:
    repo = aws.repository("api")
    td = export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:v9")]), tmp_path / "td.json")
    guard_bin = Path(sys.executable).with_name("guard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    proc = subprocess.run([str(guard_bin), "check", "--task-def", td, "--format", "json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["findings"][0]["check_id"] == "IMG001"

"""Golden JSON reports: `guard check --format json` and `guard watch --once --format json` for fixed scenarios.

Each scenario is built in the sandbox, run through the CLI and compared, after normalisation, with
tests/golden/<name>.json; any change of the JSON contract (keys, findings, messages, exit codes, API call
counts) shows up as a diff here and in review. Only what legitimately varies between runs is normalised:
`stats.duration_s`, wall-clock timestamps, the sandbox's random local ports and random AWS request IDs.

After an intended change of the contract, rewrite the snapshots and review the diff:

    .venv/bin/python -m tests.golden.regen
"""

from __future__ import annotations

import difflib
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.sandbox.aws import AwsSandbox
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.faults import FaultProxy, operation
from guard.sandbox.plans import PlannedTaskDefinition, plan_document, task_definition_change
from guard.sandbox.scenarios import Scenario
from tests.golden import GOLDEN_DIR, REGEN_ENV
from tests.support.guardrun import GuardRun, export_task_definition
from tests.support.watchrun import steady_service

REGEN_COMMAND = ".venv/bin/python -m tests.golden.regen"
_LOCAL_URL = re.compile(r"http://127\.0\.0\.1:\d+")
_REQUEST_ID = re.compile(r"\brequest [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_WATCH_STAMPS = ("first_seen", "last_seen")
Normalise = Callable[[dict[str, Any]], dict[str, Any]]


def _normalise(value: Any) -> Any:
    """Replace the sandbox's random local ports and request IDs inside every string of the report."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str):
        return _REQUEST_ID.sub("request <request-id>", _LOCAL_URL.sub("http://127.0.0.1:<port>", value))
    return value


def normalise_check(doc: dict[str, Any]) -> dict[str, Any]:
    """A `guard check` report without its run time."""
    out: dict[str, Any] = _normalise(doc)
    out["stats"]["duration_s"] = "<duration>"
    return out


def normalise_watch(doc: dict[str, Any]) -> dict[str, Any]:
    """A `guard watch` report without its run time and the wall-clock stamps of the sweep and its incidents."""
    out: dict[str, Any] = _normalise(doc)
    out["stats"]["duration_s"] = "<duration>"
    out["swept_at"] = "<timestamp>"
    for incident in (*out["incidents"], *out["resolved"]):
        for key in _WATCH_STAMPS:
            incident[key] = "<timestamp>"
    return out


def assert_golden(name: str, code: int, stdout: str, normalise: Normalise) -> None:
    """Compare the normalised report with tests/golden/<name>.json (or rewrite it in regeneration mode)."""
    doc = json.loads(stdout)
    assert doc["exit_code"] == code, (code, stdout)
    text = json.dumps(normalise(doc), indent=2, sort_keys=True) + "\n"
    path = GOLDEN_DIR / f"{name}.json"
    if os.environ.get(REGEN_ENV) == "1":
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"no snapshot golden/{path.name}; create it with `{REGEN_COMMAND}`", pytrace=False)
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True), text.splitlines(keepends=True),
                                            f"golden/{path.name}", "this run"))
        pytest.fail(f"the JSON report differs from golden/{path.name}:\n{diff}\n"
                    f"If the change is intended, rewrite the snapshots with `{REGEN_COMMAND}` and review the diff.",
                    pytrace=False)


# -- guard check --------------------------------------------------------------------------------------


@pytest.fixture
def proxy(aws_sandbox: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The fault proxy in front of the sandbox, one attempt per call; the product's clients go through it."""
    with FaultProxy(aws_sandbox.endpoint_url) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        yield p


def test_check_clean_task_definition(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:v1")]), tmp_path / "td.json")
    out = guard("--task-def", "td.json")
    assert out.code == 0, out.stdout
    assert_golden("check_clean_task_definition", out.code, out.stdout, normalise_check)


def test_check_plan_with_missing_image_and_arch_mismatch(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1", arch="arm64")
    plan = plan_document([
        task_definition_change(PlannedTaskDefinition("api", [("web", f"{repo}:v1")], module="module.api")),
        task_definition_change(PlannedTaskDefinition("worker", [("jobs", f"{repo}:never-pushed")])),
    ])
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = guard("--plan", "plan.json")
    assert out.code == 1, out.stdout
    assert_golden("check_plan_missing_image_arch_mismatch", out.code, out.stdout, normalise_check)


def test_check_unverified_when_ecr_throttles(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                            proxy: FaultProxy) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:v1")]), tmp_path / "td.json")
    proxy.throttle(match=operation("BatchGetImage"))
    out = guard("--task-def", "td.json")
    assert out.code == 3, out.stdout
    assert_golden("check_unverified_throttled", out.code, out.stdout, normalise_check)


def test_check_unverified_when_aws_is_unreachable(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    export_task_definition(aws, aws.task_definition("api", [("web", f"{repo}:v1")]), tmp_path / "td.json")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    out = guard("--task-def", "td.json")
    assert out.code == 3, out.stdout
    assert_golden("check_unverified_unreachable", out.code, out.stdout, normalise_check)


# -- guard watch --------------------------------------------------------------------------------------


def _watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """`guard watch --once --format json` in `tmp_path`, without a heartbeat, on a fresh state directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "guard.toml").write_text("[notify]\nheartbeat = false\n")
    result = CliRunner().invoke(main, ["watch", "--once", "--format", "json", "--state", "state"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def test_watch_steady_service(aws: Scenario, sim: EcsSimulator, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    code, stdout = _watch(tmp_path, monkeypatch)
    assert code == 0, stdout
    assert_golden("watch_steady_service", code, stdout, normalise_watch)


def test_watch_service_whose_image_is_gone(aws: Scenario, sim: EcsSimulator, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    aws.delete_image("shop/api", tag="v1")
    code, stdout = _watch(tmp_path, monkeypatch)
    assert code == 1, stdout
    assert len(json.loads(stdout)["incidents"]) == 1
    assert_golden("watch_image_gone", code, stdout, normalise_watch)

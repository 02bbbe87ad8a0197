"""IMG004 and IMG101 settle "expires now" (and policies the evaluator cannot read) with ECR's lifecycle preview."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from guard.config import GuardConfig, WatchConfig
from guard.gateways.aws import AwsSettings
from guard.models import Cause, Severity
from guard.runtime import Runtime
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.lifecycle import put_lifecycle_policy
from guard.sandbox.scenarios import Scenario
from guard.watch import WatchReport, WatchScope
from tests.support.guardrun import GuardRun, Outcome, export_task_definition
from tests.support.watchrun import steady_service

UNTAGGED_KEEP_ONE = {"rulePriority": 1, "description": "keep one untagged image",
                     "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                     "action": {"type": "expire"}}
ARCHIVE_UNTAGGED = {"rulePriority": 1, "description": "archive all but one untagged image",
                    "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                    "action": {"type": "transition", "targetStorageClass": "archive"}}
START, GET = "ecr:StartLifecyclePolicyPreview", "ecr:GetLifecyclePolicyPreview"


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The CLI's sleeper, recorded instead of sleeping; one attempt per AWS call (moto's 500s are not retried)."""
    pauses: list[float] = []
    monkeypatch.setattr("time.sleep", pauses.append)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return pauses


def _untagged(aws: Scenario, n: int) -> str:
    arch, oci = [("amd64", False), ("arm64", False), ("amd64", True)][n]
    return aws.push_image("api", None, arch=arch, oci=oci)


def _doomed_now(aws: Scenario, policy: dict[str, Any]) -> tuple[str, str, str]:
    """Two untagged images (the older one is past the keep-one rule now) and a release: (older, newer, v1)."""
    aws.repository("api")
    older, newer = _untagged(aws, 0), _untagged(aws, 1)
    release = aws.push_image("api", "v1", arch="arm64", oci=True)
    put_lifecycle_policy(aws.sandbox, "api", {"rules": [policy]})
    return older, newer, release


def _check(aws: Scenario, guard: GuardRun, tmp_path: Path, *digests: str) -> Outcome:
    repo = aws.repository("api")
    arn = aws.task_definition("api", [(f"c{i}", f"{repo}@{d}") for i, d in enumerate(digests)])
    return guard("--task-def", export_task_definition(aws, arn, tmp_path / "td.json"))


def _calls(out: Outcome) -> dict[str, int]:
    calls: dict[str, int] = out.doc["stats"]["api_calls"]["by_api"]
    return calls


def _exists(aws: Scenario, digest: str) -> bool:
    found = aws.client("ecr").batch_get_image(repositoryName="api", imageIds=[{"imageDigest": digest}])
    return bool(found["images"])


def test_the_preview_confirms_an_expiry_now(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                             slept: list[float]) -> None:
    older, _, _ = _doomed_now(aws, UNTAGGED_KEEP_ONE)
    out = _check(aws, guard, tmp_path, older)
    assert out.code == 1, out.stdout + out.stderr
    [f] = out.findings("IMG004")
    assert f["severity"] == "error" and f["evidence"]["expired_now"] is True
    assert f["evidence"]["source"] == "preview" and "preview" not in {k for k in f["evidence"] if k != "source"}
    assert "expires on the policy's next run (ECR's lifecycle policy preview)" in f["message"]
    # One Start, then polls a second apart until COMPLETE (the first Get sees it IN_PROGRESS).
    assert _calls(out)[START] == 1 and _calls(out)[GET] == 2 and slept == [1.0, 1.0]
    assert _exists(aws, older)  # a check acts on nothing


def test_a_refused_policy_is_answered_by_the_preview(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                                     slept: list[float]) -> None:
    """Archive transitions are beyond the evaluator: the preview still says what the next run does."""
    older, newer, release = _doomed_now(aws, ARCHIVE_UNTAGGED)
    out = _check(aws, guard, tmp_path, older, newer, release)
    assert out.code == 1 and out.unverified("IMG004") == [], out.stdout
    found = {f["evidence"]["digest"]: f for f in out.findings("IMG004")}
    assert found[older]["severity"] == "error" and found[older]["evidence"]["source"] == "preview"
    assert found[older]["evidence"]["action"] == "archive" and found[older]["evidence"]["rule_priority"] == 1
    assert "is archived (then cannot be pulled) on the policy's next run" in found[older]["message"]
    assert 'rule 1 ("archive all but one untagged image")' in found[older]["message"]
    for kept in (newer, release):  # verified for the next run only: said, not failed
        assert found[kept]["severity"] == "info" and found[kept]["evidence"]["expired_now"] is False
        assert found[kept]["evidence"]["rule_priority"] is None  # no rule acts on it
        assert "later runs are not forecast" in found[kept]["message"]
        assert "the evaluator does not model this policy" in found[kept]["evidence"]["preview"]
    assert _calls(out)[START] == 1 and _calls(out)[GET] == 2


def test_preview_unavailable_falls_back_to_the_evaluator(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                                          slept: list[float]) -> None:
    aws.sandbox.fills.lifecycle_preview = False  # as moto answers: 500, not implemented
    older, _, _ = _doomed_now(aws, UNTAGGED_KEEP_ONE)
    out = _check(aws, guard, tmp_path, older)
    [f] = out.findings("IMG004")
    assert out.code == 1 and f["severity"] == "error" and f["evidence"]["source"] == "evaluator"
    assert f["evidence"]["preview"] == "StartLifecyclePolicyPreview: Unreachable"
    assert _calls(out)[START] == 1 and GET not in _calls(out) and slept == []


def test_a_refused_policy_without_a_preview_stays_unverified(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                                              slept: list[float]) -> None:
    aws.sandbox.fills.lifecycle_preview = False
    older, _, _ = _doomed_now(aws, ARCHIVE_UNTAGGED)
    out = _check(aws, guard, tmp_path, older)
    [u] = out.unverified("IMG004")
    assert out.code == 3 and out.findings("IMG004") == []
    assert "action.type must be expire" in u["reason"]
    assert "ECR's lifecycle policy preview: StartLifecyclePolicyPreview: Unreachable" in u["reason"]


def test_a_running_preview_of_another_policy_is_not_used(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                                         slept: list[float]) -> None:
    older, _, _ = _doomed_now(aws, UNTAGGED_KEEP_ONE)
    other = {"rules": [{**UNTAGGED_KEEP_ONE, "selection": {**UNTAGGED_KEEP_ONE["selection"], "countNumber": 5}}]}
    aws.client("ecr").start_lifecycle_policy_preview(  # someone trying a looser policy; it would keep `older`
        repositoryName="api", lifecyclePolicyText=json.dumps(other))
    out = _check(aws, guard, tmp_path, older)
    [f] = out.findings("IMG004")
    assert f["severity"] == "error" and f["evidence"]["source"] == "evaluator"
    assert f["evidence"]["preview"] == "the preview running on the repository is of another policy"
    assert _calls(out)[START] == 1 and _calls(out)[GET] == 1


def test_a_running_preview_of_the_policy_in_force_is_used(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                                          slept: list[float]) -> None:
    older, _, _ = _doomed_now(aws, UNTAGGED_KEEP_ONE)
    aws.client("ecr").start_lifecycle_policy_preview(repositoryName="api")
    out = _check(aws, guard, tmp_path, older)
    [f] = out.findings("IMG004")
    assert f["evidence"]["source"] == "preview" and _calls(out)[GET] == 2


def test_a_preview_past_the_wait_falls_back_and_nothing_is_done(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                                                 slept: list[float]) -> None:
    (tmp_path / "guard.toml").write_text("[watch]\nlifecycle_preview_gate_seconds = 1\n")
    older, _, _ = _doomed_now(aws, UNTAGGED_KEEP_ONE)
    out = _check(aws, guard, tmp_path, older)
    [f] = out.findings("IMG004")
    assert f["evidence"]["source"] == "evaluator" and f["evidence"]["preview"] == "no complete preview within 1s"
    assert out.code == 1 and slept == [1.0] and _calls(out)[GET] == 1
    assert _exists(aws, older)


def test_a_zero_preview_wait_is_a_usage_error(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    (tmp_path / "guard.toml").write_text("[watch]\nlifecycle_preview_watch_seconds = 0\n")
    aws.repository("api")
    out = _check(aws, guard, tmp_path, aws.push_image("api", "v1"))
    assert out.code == 2 and "watch.lifecycle_preview_watch_seconds must be a positive integer" in out.stderr


def test_no_expiry_now_asks_no_preview(aws: Scenario, guard: GuardRun, tmp_path: Path, slept: list[float]) -> None:
    _, newer, release = _doomed_now(aws, UNTAGGED_KEEP_ONE)
    out = _check(aws, guard, tmp_path, newer, release)
    assert {f["evidence"]["source"] for f in out.findings("IMG004")} == {"evaluator"}
    assert START not in _calls(out) and GET not in _calls(out) and slept == []


# -- the watchdog ----------------------------------------------------------------------------------------------
def _sweep(tmp_path: Path, clock: Any, pauses: list[float], **watch: Any) -> WatchReport:
    runtime = Runtime(GuardConfig(watch=WatchConfig(**watch)), state=str(tmp_path / "state"),
                      settings=AwsSettings(max_attempts=1), clock=clock, wait=pauses.append)
    return runtime.watchdog(heartbeat=False).sweep(WatchScope())


def test_a_sweep_confirms_an_expiry_now_with_the_preview(aws: Scenario, sim: EcsSimulator, tmp_path: Path) -> None:
    older, _, _ = _doomed_now(aws, UNTAGGED_KEEP_ONE)
    steady_service(aws, sim, "api", f"{aws.repository('api')}@{older}")
    pauses: list[float] = []
    report = _sweep(tmp_path, sim.now, pauses)
    [inc] = [i for i in report.incidents if i.cause is Cause.IMAGE_EXPIRY]
    assert inc.severity is Severity.ERROR and inc.signals[0].evidence["source"] == "preview"
    assert report.stats["by_api"][START] == 1 and report.stats["by_api"][GET] == 2 and pauses == [1.0, 1.0]


def test_a_sweep_takes_aws_answer_over_the_evaluator(aws: Scenario, sim: EcsSimulator, tmp_path: Path) -> None:
    """The watchdog's clock says the release is 31 days old; AWS's (now) says it was pushed today: AWS wins."""
    aws.repository("api")
    aws.push_image("api", "v1")
    put_lifecycle_policy(aws.sandbox, "api", {"rules": [
        {"rulePriority": 1, "description": "releases live 30 days",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "sinceImagePushed",
                       "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}]})
    steady_service(aws, sim, "api", f"{aws.repository('api')}:v1")
    pushed = aws.client("ecr").describe_images(repositoryName="api")["imageDetails"][0]["imagePushedAt"]
    pauses: list[float] = []
    report = _sweep(tmp_path, lambda: pushed + timedelta(days=31), pauses)
    assert [i for i in report.incidents if i.cause is Cause.IMAGE_EXPIRY] == []
    assert report.stats["by_api"][GET] == 2 and report.exit_code == 0
    aws.sandbox.fills.lifecycle_preview = False  # without the preview, the evaluator's answer stands
    [inc] = [i for i in _sweep(tmp_path, lambda: pushed + timedelta(days=31), pauses).incidents
             if i.cause is Cause.IMAGE_EXPIRY]
    assert inc.severity is Severity.ERROR and inc.signals[0].evidence["source"] == "evaluator"
    assert inc.signals[0].evidence["preview"] == "StartLifecyclePolicyPreview: Unreachable"


def test_a_sweep_answers_a_refused_policy_with_the_preview(aws: Scenario, sim: EcsSimulator, tmp_path: Path) -> None:
    older, newer, _ = _doomed_now(aws, ARCHIVE_UNTAGGED)
    steady_service(aws, sim, "api", f"{aws.repository('api')}@{older}")
    steady_service(aws, sim, "worker", f"{aws.repository('api')}@{newer}")
    report = _sweep(tmp_path, sim.now, [], lifecycle_preview_watch_seconds=3)
    [inc] = [i for i in report.incidents if i.cause is Cause.IMAGE_EXPIRY]
    assert inc.cause_key.endswith(older) and inc.resources == ("ecs:prod/api",)  # `newer` is kept: no incident
    assert inc.signals[0].evidence["action"] == "archive" and report.unverified == ()


def test_a_sweep_where_nothing_expires_now_asks_no_preview(aws: Scenario, sim: EcsSimulator, tmp_path: Path) -> None:
    _, newer, _ = _doomed_now(aws, UNTAGGED_KEEP_ONE)
    steady_service(aws, sim, "api", f"{aws.repository('api')}@{newer}")
    pauses: list[float] = []
    report = _sweep(tmp_path, sim.now, pauses)
    [inc] = [i for i in report.incidents if i.cause is Cause.IMAGE_EXPIRY]  # after one more push: a forecast
    assert inc.signals[0].evidence["source"] == "evaluator"
    assert START not in report.stats["by_api"] and GET not in report.stats["by_api"] and pauses == []


def test_the_gate_previews_repositories_concurrently(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    monkeypatch.setattr("time.sleep", lambda seconds: threads.append(threading.current_thread().name))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    containers = []
    for name in ("api", "web"):
        repo = aws.repository(name)
        older = aws.push_image(name, None, arch="amd64")
        aws.push_image(name, None, arch="arm64")
        put_lifecycle_policy(aws.sandbox, name, {"rules": [UNTAGGED_KEEP_ONE]})
        containers.append((name, f"{repo}@{older}"))
    arn = aws.task_definition("two", containers)
    out = guard("--task-def", export_task_definition(aws, arn, tmp_path / "td.json"))
    assert out.code == 1, out.stdout + out.stderr
    findings = out.findings("IMG004")
    assert len(findings) == 2 and {f["evidence"]["source"] for f in findings} == {"preview"}
    assert _calls(out)[START] == 2
    assert len(set(threads)) == 2  # each repository's polls waited on its own thread

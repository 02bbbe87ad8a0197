"""IMG101: the watchdog forecasts a lifecycle expiry of an image in use, before the image is gone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from guard.config import GuardConfig, WatchConfig
from guard.gateways.aws import AwsSettings
from guard.models import Cause, Severity
from guard.runtime import Runtime
from guard.sandbox.aws import AwsSandbox
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.faults import FaultProxy, operation
from guard.sandbox.lifecycle import apply_lifecycle_policies, put_lifecycle_policy
from guard.sandbox.scenarios import Scenario
from guard.watch import WatchReport, WatchScope
from tests.support.watchrun import Sweep, steady_service

UNTAGGED_KEEP_ONE = {"rulePriority": 1, "description": "keep one untagged image",
                     "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                     "action": {"type": "expire"}}


def _push(aws: Scenario, repo: str, tag: str | None, n: int) -> str:
    """The n-th distinct image pushed under `tag` (a new build of the same tag)."""
    arch, oci = [("amd64", False), ("arm64", False), ("amd64", True), ("arm64", True)][n]
    return aws.push_image(repo, tag, arch=arch, oci=oci)


def _expiry(report: WatchReport) -> dict[str, Any]:
    return {i.cause_key: i for i in report.incidents if i.cause is Cause.IMAGE_EXPIRY}


def test_a_tag_moved_under_a_running_service_leaves_its_pinned_digest_to_the_untagged_rule(
        aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    """prod/api runs `:latest` (ECS pinned digest D1); once `latest` moves, D1 is untagged and next in line."""
    repo = aws.repository("shop/api")
    first = _push(aws, "shop/api", "latest", 0)
    put_lifecycle_policy(aws.sandbox, "shop/api", {"rules": [UNTAGGED_KEEP_ONE]})
    steady_service(aws, sim, "api", f"{repo}:latest")
    before = sweep()
    [inc] = before.incidents
    assert inc.cause is Cause.IMAGE_EXPIRY and inc.cause_key == f"{repo}@{first}" and inc.latent
    assert inc.severity is Severity.WARNING and inc.resources == ("ecs:prod/api",)
    [signal] = inc.signals
    assert signal.watcher_id == "IMG101" and signal.evidence["pushes_left"] == 2
    assert 'rule 1 ("keep one untagged image")' in signal.message and "after 2 more pushes" in signal.message
    assert signal.evidence["source"] == "evaluator"
    assert "lifecycle policy will expire an image in use" in inc.title

    second = _push(aws, "shop/api", "latest", 1)  # the task definition's tag now resolves to `second`
    after = sweep()
    found = _expiry(after)
    assert set(found) == {f"{repo}@{first}", f"{repo}@{second}"}  # `first` only from the running tasks' pins
    escalated = found[f"{repo}@{first}"]
    assert escalated.id == inc.id and escalated.severity is Severity.ERROR
    assert escalated.signals[0].evidence["pushes_left"] == 1 and [i.id for i in after.triage.updated] == [inc.id]
    assert found[f"{repo}@{second}"].severity is Severity.WARNING

    _push(aws, "shop/api", "latest", 2)  # what the forecast said: one more push, one lifecycle run
    assert apply_lifecycle_policies(aws.sandbox) == [("shop/api", first)]


def test_services_and_a_function_on_one_digest_are_one_incident(aws: Scenario, sim: EcsSimulator,
                                                                 sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    digest = aws.push_image("shop/api", "v1")
    aws.push_image("shop/api", "v2", arch="arm64")
    put_lifecycle_policy(aws.sandbox, "shop/api", {"rules": [
        {"rulePriority": 1, "description": "keep the last 2 releases",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan",
                       "countNumber": 2}, "action": {"type": "expire"}}]})
    steady_service(aws, sim, "api", f"{repo}@{digest}")
    steady_service(aws, sim, "worker", f"{repo}:v1")
    aws.lambda_function("thumbnailer", f"{repo}:v1")
    report = sweep()
    [inc] = report.incidents
    assert inc.cause_key == f"{repo}@{digest}" and inc.severity is Severity.ERROR  # the next release expires it
    assert inc.resources == ("ecs:prod/api", "ecs:prod/worker", "lambda:thumbnailer")
    assert {s.evidence["pushes_left"] for s in inc.signals} == {1}
    assert any("Lambda then fails the function" in s.message for s in inc.signals)


def test_no_policy_costs_one_call_per_repository_in_use(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo, other = aws.repository("shop/api"), aws.repository("shop/worker")
    aws.push_image("shop/api", "v1")
    aws.push_image("shop/worker", "v1")
    aws.repository("unused")
    put_lifecycle_policy(aws.sandbox, "unused", {"rules": [UNTAGGED_KEEP_ONE]})
    steady_service(aws, sim, "api", f"{repo}:v1")
    steady_service(aws, sim, "worker", f"{other}:v1")
    steady_service(aws, sim, "worker2", f"{other}:v1")
    report = sweep()
    assert report.incidents == () and report.exit_code == 0
    calls = report.stats["by_api"]
    assert calls["ecr:GetLifecyclePolicy"] == 2
    assert "ecr:DescribeImages" not in calls and calls["ecs:ListTasks"] == 1  # the stopped tasks only


def test_age_rule_warns_then_escalates_as_the_date_nears(aws: Scenario, sim: EcsSimulator, tmp_path: Path) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    put_lifecycle_policy(aws.sandbox, "shop/api", {"rules": [
        {"rulePriority": 1, "description": "releases live 30 days",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "sinceImagePushed",
                       "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}]})
    steady_service(aws, sim, "api", f"{repo}:v1")
    pushed = aws.client("ecr").describe_images(repositoryName="shop/api")["imageDetails"][0]["imagePushedAt"]
    config = GuardConfig(watch=WatchConfig(lifecycle_warn_days=10, lifecycle_error_days=3))

    def sweep_on(day: int) -> WatchReport:
        aws.sandbox.fills.now = lambda: pushed + timedelta(days=day)  # AWS's clock moves with the watchdog's
        runtime = Runtime(config, state=str(tmp_path / "state"), settings=AwsSettings(max_attempts=1),
                          clock=lambda: pushed + timedelta(days=day), wait=lambda _s: None)
        return runtime.watchdog(heartbeat=False).sweep(WatchScope())

    assert sweep_on(15).incidents == ()  # 15 days left: beyond the 10-day look-ahead
    [warned] = sweep_on(22).incidents
    assert warned.severity is Severity.WARNING
    assert datetime.fromisoformat(str(warned.signals[0].evidence["expires_at"])) == pushed + timedelta(days=30)
    [urgent] = sweep_on(28).incidents
    assert urgent.id == warned.id and urgent.severity is Severity.ERROR
    [late] = sweep_on(31).incidents
    assert late.signals[0].evidence["expired_now"] is True and "policy's next run" in late.signals[0].message


@pytest.fixture
def proxy(aws_sandbox: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """Product clients reach the sandbox through the fault proxy."""
    with FaultProxy(aws_sandbox.endpoint_url) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        yield p


def test_a_policy_that_cannot_be_read_is_unverified(proxy: FaultProxy, aws: Scenario, sim: EcsSimulator,
                                                    sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    put_lifecycle_policy(aws.sandbox, "shop/api", {"rules": [UNTAGGED_KEEP_ONE]})
    steady_service(aws, sim, "api", f"{repo}:v1")
    proxy.throttle(match=operation("GetLifecyclePolicy"))
    report = sweep()
    [u] = [u for u in report.unverified if u.check_id == "IMG101"]
    assert "lifecycle policy of shop/api" in u.reason and u.error_code == "Throttled"
    assert report.exit_code == 3

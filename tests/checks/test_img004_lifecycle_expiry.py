"""IMG004: the lifecycle policy will expire the image being deployed (forecast from the real policy and images)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from guard.sandbox.aws import AwsSandbox
from guard.sandbox.faults import FaultProxy, operation
from guard.sandbox.lifecycle import apply_lifecycle_policies, put_lifecycle_policy
from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition

UNTAGGED_KEEP_ONE = {"rulePriority": 1, "description": "keep one untagged image",
                     "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                     "action": {"type": "expire"}}


def _age_rule(days: int) -> dict[str, Any]:
    return {"rulePriority": 1, "description": f"expire releases after {days} days",
            "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "sinceImagePushed",
                          "countUnit": "days", "countNumber": days}, "action": {"type": "expire"}}


def _push(aws: Scenario, repo: str, tag: str | None, n: int) -> str:
    """The n-th distinct image pushed under `tag` (same tag, different content: a new build)."""
    arch, oci = [("amd64", False), ("arm64", False), ("amd64", True), ("arm64", True)][n]
    return aws.push_image(repo, tag, arch=arch, oci=oci)


def _deploy(aws: Scenario, tmp_path: Path, *images: str) -> str:
    arn = aws.task_definition("api", [(f"c{i}", uri) for i, uri in enumerate(images)])
    return export_task_definition(aws, arn, tmp_path / "td.json")


def _calls(out: Any) -> dict[str, int]:
    calls: dict[str, int] = out.doc["stats"]["api_calls"]["by_api"]
    return calls


def test_digest_pinned_image_the_next_push_orphans_is_an_error(aws: Scenario, guard: GuardRun,
                                                              tmp_path: Path) -> None:
    """prod pins the digest `latest` pointed to before; the next push of `latest` leaves two untagged images."""
    repo = aws.repository("api")
    old = _push(aws, "api", "latest", 0)
    current = _push(aws, "api", "latest", 1)  # `old` is now untagged, the only one: kept for now
    put_lifecycle_policy(aws.sandbox, "api", {"rules": [UNTAGGED_KEEP_ONE]})
    out = guard("--task-def", _deploy(aws, tmp_path, f"{repo}@{old}", f"{repo}@{current}"))
    assert out.code == 1, out.stdout + out.stderr
    by_digest = {f["evidence"]["digest"]: f for f in out.findings("IMG004")}
    assert set(by_digest) == {old, current}
    first = by_digest[old]
    assert first["severity"] == "error" and first["evidence"]["pushes_left"] == 1
    assert 'rule 1 ("keep one untagged image")' in first["message"] and "after 1 more push" in first["message"]
    assert first["evidence"]["source"] == "evaluator" and first["evidence"]["rule_priority"] == 1
    second = by_digest[current]  # untagged after one push, second-newest untagged after two
    assert second["severity"] == "warning" and second["evidence"]["pushes_left"] == 2
    # The forecast is what the policy then does: one more push of `latest`, one lifecycle run.
    _push(aws, "api", "latest", 2)
    assert apply_lifecycle_policies(aws.sandbox) == [("api", old)]


def test_an_image_the_policy_expires_on_its_next_run(aws: Scenario, guard: GuardRun, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("guard.gateways.ecr.time.sleep", lambda _s: None)  # ECR's preview is polled: never sleep
    repo = aws.repository("api")
    doomed = _push(aws, "api", None, 0)
    _push(aws, "api", None, 1)
    aws.push_image("api", "v1")
    put_lifecycle_policy(aws.sandbox, "api", {"rules": [UNTAGGED_KEEP_ONE]})
    out = guard("--task-def", _deploy(aws, tmp_path, f"{repo}@{doomed}"))
    [f] = out.findings("IMG004")
    assert f["severity"] == "error" and f["evidence"]["expired_now"] is True
    assert "expires on the policy's next run" in f["message"]
    assert aws.client("ecr").batch_get_image(repositoryName="api", imageIds=[{"imageDigest": doomed}])["images"]


@pytest.mark.parametrize(("days", "severity"), [(1, "error"), (10, "warning"), (30, None)])
def test_age_rule_gives_the_date_and_its_severity_follows_the_horizon(aws: Scenario, guard: GuardRun,
                                                                      tmp_path: Path, days: int,
                                                                      severity: str | None) -> None:
    """Default horizons: error within 2 days, warning within 14, nothing later."""
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    put_lifecycle_policy(aws.sandbox, "api", {"rules": [_age_rule(days)]})
    before = datetime.now(UTC)
    out = guard("--task-def", _deploy(aws, tmp_path, f"{repo}:v1"))
    found = out.findings("IMG004")
    assert [f["severity"] for f in found] == ([severity] if severity else [])
    if found:
        expires = datetime.fromisoformat(found[0]["evidence"]["expires_at"])
        assert before + timedelta(days=days) - timedelta(minutes=5) <= expires <= datetime.now(UTC) + timedelta(
            days=days)
        assert found[0]["evidence"]["pushes_left"] is None and "on or after" in found[0]["message"]


def test_horizons_come_from_the_watch_table(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    put_lifecycle_policy(aws.sandbox, "api", {"rules": [_age_rule(30)]})
    (tmp_path / "guard.toml").write_text("[watch]\nlifecycle_warn_days = 60\nlifecycle_error_days = 45\n")
    [f] = guard("--task-def", _deploy(aws, tmp_path, f"{repo}:v1")).findings("IMG004")
    assert f["severity"] == "error"


def test_bad_horizon_is_a_usage_error(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    (tmp_path / "guard.toml").write_text("[watch]\nlifecycle_warn_pushes = 0\n")
    out = guard("--task-def", _deploy(aws, tmp_path, f"{aws.repository('api')}:v1"))
    assert out.code == 2 and "watch.lifecycle_warn_pushes must be a positive integer" in out.stderr


def test_a_keep_rule_protects_and_no_policy_costs_one_call(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    """A release-* keep rule selects the image first, so the `any` rule below can never expire it."""
    repo, bare = aws.repository("api"), aws.repository("bare")
    aws.push_image("api", "release-1")
    for i in range(3):
        aws.push_image("api", f"dev-{i}")
    aws.push_image("bare", "v1")
    put_lifecycle_policy(aws.sandbox, "api", {"rules": [
        {"rulePriority": 1, "description": "keep releases",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["release"], "countType": "imageCountMoreThan",
                       "countNumber": 100}, "action": {"type": "expire"}},
        {"rulePriority": 2, "description": "keep 1 of the rest",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
         "action": {"type": "expire"}}]})
    out = guard("--task-def", _deploy(aws, tmp_path, f"{repo}:release-1", f"{bare}:v1"))
    assert out.code == 0, out.stdout
    assert out.findings("IMG004") == []
    calls = _calls(out)
    assert calls["ecr:GetLifecyclePolicy"] == 2 and calls["ecr:DescribeImages"] == 1  # `bare` has no policy


def test_an_index_keeps_its_platform_images(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    """Platform images of a multi-arch index are untagged but kept while the index is, and are not counted."""
    repo = aws.repository("api")
    orphan = _push(aws, "api", None, 0)  # an earlier build nobody tags any more: the only untagged image
    index = aws.push_index("api", "latest")
    manifest = aws.client("ecr").batch_get_image(repositoryName="api", imageIds=[{"imageDigest": index}])
    child = json.loads(manifest["images"][0]["imageManifest"])["manifests"][0]["digest"]
    put_lifecycle_policy(aws.sandbox, "api", {"rules": [UNTAGGED_KEEP_ONE]})
    out = guard("--task-def", _deploy(aws, tmp_path, f"{repo}@{child}", f"{repo}@{orphan}"))
    by_digest = {f["evidence"]["digest"]: f for f in out.findings("IMG004")}
    assert by_digest[child]["severity"] == "warning" and by_digest[child]["evidence"]["pushes_left"] == 2
    assert by_digest[orphan]["evidence"]["expired_now"] is False and by_digest[orphan]["evidence"]["pushes_left"] == 1
    assert apply_lifecycle_policies(aws.sandbox) == []  # the sandbox's own run agrees: nothing expires now
    assert _calls(out)["ecr:BatchGetImage"] == 2  # the references, then the one index


@pytest.fixture
def proxy(aws_sandbox: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """Product clients reach the sandbox through the fault proxy."""
    with FaultProxy(aws_sandbox.endpoint_url) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        yield p


def test_throttled_policy_read_fails_closed(proxy: FaultProxy, aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    put_lifecycle_policy(aws.sandbox, "api", {"rules": [_age_rule(1)]})
    proxy.throttle(match=operation("GetLifecyclePolicy"))
    td = _deploy(aws, tmp_path, f"{repo}:v1")
    out = guard("--task-def", td)
    assert out.code == 3
    [u] = out.unverified("IMG004")
    assert u["error_code"] == "Throttled" and "lifecycle policy of api" in u["reason"]
    assert out.findings("IMG004") == [] and out.findings("IMG001") == []

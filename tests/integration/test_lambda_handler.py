"""The Lambda handler, invoked with recorded EventBridge payloads against moto; state kept in S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from guard.lambda_handler import parse_trigger
from guard.models import InputError
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import steady_service

EVENTS = Path(__file__).parents[1] / "events"


def _event(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return doc


@pytest.fixture
def handler(aws: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    aws.client("s3").create_bucket(Bucket="guard-state")
    (tmp_path / "guard.toml").write_text('[watch]\nstate = "s3://guard-state/watch"\n[notify]\nheartbeat = true\n')
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    from guard.lambda_handler import handler as fn

    return fn


def test_schedule_then_task_event_state_survives(aws: Scenario, handler: Any) -> None:
    sim = EcsSimulator(aws.sandbox)  # the handler reads the wall clock, so the simulator does too
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    aws.delete_image("shop/api", tag="v1")
    first = handler(_event("scheduled"), None)
    assert first["trigger"] == "schedule" and first["exit_code"] == 1 and len(first["opened"]) == 1
    stored = aws.client("s3").get_object(Bucket="guard-state", Key="watch/incidents/open.json")["Body"].read()
    assert json.loads(stored)["incidents"][0]["id"] == first["opened"][0]
    sim.restart_tasks("prod", "api")
    sim.tick()
    second = handler(_event("ecs_task_stopped"), None)
    assert second["trigger"] == "task" and second["services"] == 1 and second["functions"] == 0
    assert second["opened"] == [] and second["open_incidents"] == first["opened"]
    metrics = aws.client("cloudwatch").list_metrics(Namespace="DeployGuard")["Metrics"]
    assert "Heartbeat" in {m["MetricName"] for m in metrics}


def test_running_task_event_is_ignored(aws: Scenario, handler: Any) -> None:
    assert handler(_event("ecs_task_running"), None) == {"trigger": "ignored"}


def test_bad_event_is_rejected_without_action(aws: Scenario, handler: Any) -> None:
    out = handler({"detail-type": "Something Else"}, None)
    assert out["exit_code"] == 2 and "unsupported event" in out["message"]
    assert handler([1, 2], None)["exit_code"] == 2


def test_missing_state_bucket_fails_closed(aws: Scenario, handler: Any, tmp_path: Path) -> None:
    (tmp_path / "guard.toml").write_text('[watch]\nstate = "s3://no-such-bucket/x"\n[notify]\nheartbeat = false\n')
    out = handler(_event("scheduled"), None)
    assert out["exit_code"] == 3 and out["error"] == "unverified"


def test_schedule_with_shards_fans_out() -> None:
    trigger = parse_trigger({**_event("scheduled"), "shards": [
        {"account": "210987654321", "region": "eu-west-1", "role_arn": "arn:aws:iam::210987654321:role/guard"}]})
    assert [s.region for s in trigger.fan_out] == ["eu-west-1"]
    shard = parse_trigger({"shard": {"account": "210987654321", "region": "eu-west-1"}})
    assert shard.kind == "shard" and shard.shard is not None and shard.shard.role_arn is None
    with pytest.raises(InputError):
        parse_trigger({"shard": {"account": 1}})


def test_scheduled_fan_out_invokes_one_shard_each(aws: Scenario, handler: Any) -> None:
    repo = aws.repository("guard")
    aws.push_image("guard", "v1")
    aws.lambda_function("deploy-guard", f"{repo}:v1")
    shards = [{"account": "210987654321", "region": "eu-west-1", "role_arn": "arn:aws:iam::210987654321:role/g"},
              {"account": "123456789012", "region": "us-west-2", "role_arn": None}]
    context = type("Context", (), {"function_name": "deploy-guard"})()
    out = handler({**_event("scheduled"), "shards": shards}, context)
    assert out == {"trigger": "schedule", "fanned_out": ["210987654321/eu-west-1", "123456789012/us-west-2"]}
    sent = [(fn, json.loads(body)) for fn, body in aws.sandbox.invocations]
    assert sent == [("deploy-guard", {"shard": s}) for s in shards]
    missing = handler({**_event("scheduled"), "shards": shards}, type("C", (), {"function_name": "nope"})())
    assert missing["exit_code"] == 3 and missing["fanned_out"] == [] and len(missing["failed"]) == 2

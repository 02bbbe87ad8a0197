"""The Lambda handler, invoked with recorded EventBridge payloads against moto; state kept in S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from guard.lambda_handler import CouldNotVerify, parse_trigger
from guard.models import InputError
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.faults import FaultProxy, operation
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
    with pytest.raises(CouldNotVerify) as raised:
        handler(_event("scheduled"), None)
    assert raised.value.summary["exit_code"] == 3 and raised.value.summary["error"] == "unverified"


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
    out = handler({**_event("scheduled"), "shards": shards, "sweep_home": False}, context)
    assert out == {"trigger": "schedule", "fanned_out": ["210987654321/eu-west-1", "123456789012/us-west-2"],
                   "exit_code": 0}
    sent = [(fn, json.loads(body)) for fn, body in aws.sandbox.invocations]
    assert sent == [("deploy-guard", {"shard": s}) for s in shards]
    with pytest.raises(CouldNotVerify) as raised:
        handler({**_event("scheduled"), "shards": shards}, type("C", (), {"function_name": "nope"})())
    missing = raised.value.summary
    assert missing["exit_code"] == 3 and missing["fanned_out"] == [] and len(missing["failed"]) == 2
    assert missing["shard"] == "home" and missing["services"] == 0  # the home sweep still ran


def _heartbeats(aws: Scenario) -> dict[str, set[str]]:
    """Metric name -> the Shard dimension values the home account holds for it."""
    out: dict[str, set[str]] = {}
    for metric in aws.client("cloudwatch").list_metrics(Namespace="DeployGuard")["Metrics"]:
        shards = {d["Value"] for d in metric.get("Dimensions", []) if d["Name"] == "Shard"}
        out.setdefault(metric["MetricName"], set()).update(shards)
    return out


def test_sharded_schedule_also_sweeps_home_with_its_own_heartbeat(aws: Scenario, handler: Any) -> None:
    sim = EcsSimulator(aws.sandbox)
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    aws.lambda_function("deploy-guard", f"{repo}:v1")
    shards = [{"account": "210987654321", "region": "eu-west-1", "role_arn": "arn:aws:iam::210987654321:role/g"}]
    context = type("Context", (), {"function_name": "deploy-guard", "aws_request_id": "req-1"})()
    out = handler({**_event("scheduled"), "shards": shards}, context)
    assert out["fanned_out"] == ["210987654321/eu-west-1"] and out["services"] == 1 and out["exit_code"] == 0
    assert _heartbeats(aws)["Heartbeat"] == {"home"}
    keys = {o["Key"] for o in aws.client("s3").list_objects_v2(Bucket="guard-state")["Contents"]}
    assert "watch/heartbeat.json" in keys and not any("/shards/" in k for k in keys)


def test_shard_heartbeat_goes_home_with_the_shard_dimension(aws: Scenario, handler: Any) -> None:
    shard = {"account": "210987654321", "region": "eu-west-1", "role_arn": "arn:aws:iam::210987654321:role/g"}
    out = handler({"shard": shard}, None)
    assert out["trigger"] == "shard" and out["shard"] == "210987654321/eu-west-1" and out["exit_code"] == 0
    assert _heartbeats(aws)["Heartbeat"] == {"210987654321/eu-west-1"}
    other = aws.sandbox.account_session("210987654321").client(
        "cloudwatch", region_name="eu-west-1", endpoint_url=aws.sandbox.endpoint_url)
    assert other.list_metrics(Namespace="DeployGuard")["Metrics"] == []


def test_a_blind_sweep_sends_no_heartbeat_and_fails_the_invocation(aws: Scenario, handler: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = FaultProxy(aws.sandbox.endpoint_url)
    proxy.throttle(match=operation("ListClusters"))  # ECS cannot be read at all: the sweep verifies nothing
    with proxy, pytest.raises(CouldNotVerify) as raised:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        handler(_event("scheduled"), None)
    assert raised.value.summary["exit_code"] == 3 and raised.value.summary["unverified"] >= 1
    metrics = _heartbeats(aws)
    assert "Heartbeat" not in metrics and metrics["Unverified"] == {"home"}


def test_task_event_of_an_unwatched_cluster_is_ignored(aws: Scenario, handler: Any, tmp_path: Path) -> None:
    (tmp_path / "guard.toml").write_text('[watch]\nclusters = ["payments"]\nstate = "s3://guard-state/watch"\n')
    sim = EcsSimulator(aws.sandbox)
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    aws.delete_image("shop/api", tag="v1")
    sim.restart_tasks("prod", "api")
    sim.tick()
    out = handler(_event("ecs_task_stopped"), None)
    assert out == {"trigger": "ignored", "reason": "prod/api is not watched"}
    assert aws.client("s3").list_objects_v2(Bucket="guard-state").get("KeyCount") == 0


def test_logs_are_json_lines_with_the_request_id(aws: Scenario, handler: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    context = type("Context", (), {"function_name": "deploy-guard", "aws_request_id": "8f2c-req"})()
    handler(_event("scheduled"), context)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [done] = [line for line in lines if line["message"] == "done"]
    assert done["request_id"] == "8f2c-req" and done["level"] == "INFO"
    assert done["summary"]["trigger"] == "schedule" and done["summary"]["exit_code"] == 0

"""ECS106: an execution or task role deleted under a steady service, seen before any task restarts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.models import Cause
from guard.reasons import LAUNCH_FAILURE_GRACE_S
from guard.sandbox.ecs_sim import TASK_ROLE_UNASSUMABLE, EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import Sweep, steady_service


def test_deleted_execution_role_is_a_latent_incident_then_the_same_active_one(aws: Scenario, sim: EcsSimulator,
                                                                                sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    role = aws.role("api-exec")
    steady_service(aws, sim, "api", f"{repo}:v1", execution_role=role)
    first = sweep()
    assert first.incidents == ()
    assert first.stats["by_api"]["iam:GetRole"] == 1 and first.stats["by_api"]["sts:GetCallerIdentity"] == 1
    aws.delete_role("api-exec")
    [latent] = sweep().incidents
    assert latent.latent and latent.cause is Cause.EXECUTION_ROLE and latent.cause_key == role
    assert latent.signals[0].evidence["role_fields"] == ["executionRoleArn"]
    sim.restart_tasks("prod", "api")
    sim.tick()
    report = sweep()
    [active] = report.incidents
    assert active.id == latent.id and not active.latent
    assert {s.watcher_id for s in active.signals} == {"ECS101", "ECS106"}
    assert report.triage.opened == () and [i.id for i in report.triage.updated] == [latent.id]


def _watch(state: Path) -> tuple[int, dict[str, Any]]:
    """`guard watch --once --format json` over the sandbox: (exit code, the JSON report)."""
    result = CliRunner().invoke(main, ["watch", "--once", "--no-lambda", "--format", "json", "--state", str(state)])
    return result.exit_code, json.loads(result.stdout)


def _service(aws: Scenario) -> dict[str, Any]:
    return dict(aws.client("ecs").describe_services(cluster="prod", services=["api"])["services"][0])


def test_deleted_task_role_is_latent_then_live_when_ecs_cannot_launch_replacements(
        aws: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = EcsSimulator(aws.sandbox)  # on the CLI's clock, so the service is not yet below desired past the grace
    monkeypatch.chdir(tmp_path)
    (tmp_path / "guard.toml").write_text("[notify]\nheartbeat = false\n")
    sim.advance(-2 * LAUNCH_FAILURE_GRACE_S)  # the CLI reads the wall clock: this story began two minutes ago, so
    # ECS has been failing to launch for longer than IAM takes to propagate a role when the last sweep runs
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    execution, task = aws.role("api-exec"), aws.role("api-task")
    steady_service(aws, sim, "api", f"{repo}:v1", execution_role=execution, task_role=task)
    code, healthy = _watch(tmp_path / "s")
    assert code == 0 and healthy["incidents"] == []
    assert healthy["stats"]["api_calls"]["by_api"]["iam:GetRole"] == 2  # the execution role and the task role

    aws.delete_role("api-task")
    sim.tick()
    running = {t["taskArn"] for t in aws.client("ecs").describe_tasks(
        cluster="prod", tasks=aws.client("ecs").list_tasks(cluster="prod")["taskArns"])["tasks"]
        if t["lastStatus"] == "RUNNING"}
    assert len(running) == 2  # the running tasks keep their credentials
    code, latent = _watch(tmp_path / "s")
    [incident] = latent["incidents"]
    assert code == 1 and incident["latent"] is True and incident["cause"] == "execution_role"
    assert incident["cause_key"] == task and incident["resources"] == ["ecs:prod/api"]
    [signal] = incident["signals"]
    assert signal["watcher_id"] == "ECS106" and signal["evidence"]["role_fields"] == ["taskRoleArn"]
    assert signal["message"].startswith(f"task role {task} does not exist; ECS cannot assume it")

    sim.restart_tasks("prod", "api")
    sim.tick()
    service = _service(aws)
    assert service["runningCount"] == 0 and service["deployments"][0]["failedTasks"] == 0
    assert aws.client("ecs").list_tasks(cluster="prod", desiredStatus="RUNNING")["taskArns"] == []
    assert service["events"][0]["message"] == f"(service api) {TASK_ROLE_UNASSUMABLE.format(role=task)}"
    code, live = _watch(tmp_path / "s")
    [same] = live["incidents"]
    assert code == 1 and same["id"] == incident["id"] and same["latent"] is False
    assert sorted(s["watcher_id"] for s in same["signals"]) == ["ECS101", "ECS106"]  # ECS101 reads ECS's event
    [launch] = [s for s in same["signals"] if s["watcher_id"] == "ECS101"]
    assert launch["message"].startswith("ECS launched no task (0/2 running): ECS cannot assume a role")
    assert launch["evidence"]["launch_failures"] == 1 and task in launch["message"]


def test_one_role_in_both_fields_is_read_once_and_named_once(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    role = aws.role("api-both")
    steady_service(aws, sim, "api", f"{repo}:v1", execution_role=role, task_role=role)
    steady_service(aws, sim, "worker", f"{repo}:v1", task_role=role)
    aws.delete_role("api-both")
    report = sweep()
    assert report.stats["by_api"]["iam:GetRole"] == 1
    [incident] = report.incidents
    assert incident.cause_key == role and incident.resources == ("ecs:prod/api", "ecs:prod/worker")
    fields = {s.resource: s.evidence["role_fields"] for s in incident.signals}
    assert fields == {"ecs:prod/api": ["executionRoleArn", "taskRoleArn"], "ecs:prod/worker": ["taskRoleArn"]}
    assert any(s.message.startswith(f"execution role and task role {role} does not exist") for s in incident.signals)

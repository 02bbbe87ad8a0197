"""ECS101: failed task starts, parsed into causes (symptoms produced by the simulator from causes)."""

from __future__ import annotations

from datetime import timedelta

from guard.models import Cause
from guard.reasons import LAUNCH_FAILURE_GRACE_S
from guard.sandbox.ecs_sim import TASK_ROLE_UNASSUMABLE, EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import T0, Sweep, steady_service


def test_missing_image_on_deploy(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    bad = aws.task_definition("api", [("app", f"{repo}:e4f0a31")])
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=bad)
    sim.tick()
    report = sweep()
    [inc] = [i for i in report.incidents if i.cause is Cause.MISSING_IMAGE]
    assert inc.cause_key == f"{repo}:e4f0a31" and inc.resources == ("ecs:prod/api",)
    [sig] = [s for s in inc.signals if s.watcher_id == "ECS101"]
    assert sig.evidence["failed_tasks"] == 2
    assert "CannotPullContainerError" in str(sig.evidence["stopped_reason"])
    assert report.exit_code == 1


def test_secret_and_role_causes(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    role = aws.role("exec")
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/missing-AbCdEf"
    aws.cluster("prod")
    aws.service("prod", "needs-secret", aws.task_definition("s", [("app", f"{repo}:v1")], secrets=[("DB", secret)]))
    aws.service("prod", "needs-role", aws.task_definition("r", [("app", f"{repo}:v1")], execution_role=role))
    aws.delete_role("exec")
    sim.tick()
    by_cause = {i.cause: i for i in sweep().incidents if i.signals[0].watcher_id == "ECS101"}
    assert by_cause[Cause.SECRET].cause_key == secret
    assert by_cause[Cause.SECRET].resources == ("ecs:prod/needs-secret",)
    assert by_cause[Cause.EXECUTION_ROLE].cause_key == role
    assert by_cause[Cause.EXECUTION_ROLE].resources == ("ecs:prod/needs-role",)


def test_healthy_service_raises_nothing(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    report = sweep()
    assert report.incidents == () and report.exit_code == 0
    assert report.known_good == ("ecs:prod/api",)


def test_a_task_role_ecs_cannot_assume_is_one_live_incident_not_a_separate_stall(aws: Scenario, sim: EcsSimulator,
                                                                                  sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    task = aws.role("api-task")
    steady_service(aws, sim, "api", f"{repo}:v1", task_role=task)
    aws.delete_role("api-task")
    [latent] = sweep().incidents
    assert latent.latent and (latent.cause, latent.cause_key) == (Cause.EXECUTION_ROLE, task)
    sim.advance(3600)
    assert sim.restart_tasks("prod", "api") == 2
    for _ in range(4):  # 20 minutes of scheduling rounds: past the below-desired grace, ECS launches nothing
        sim.tick()
        sim.advance(300)
    ecs = aws.client("ecs")
    service = ecs.describe_services(cluster="prod", services=["api"])["services"][0]
    assert service["runningCount"] == 0 and service["deployments"][0]["failedTasks"] == 0
    assert ecs.list_tasks(cluster="prod", desiredStatus="RUNNING")["taskArns"] == []
    assert service["events"][0]["message"] == f"(service api) {TASK_ROLE_UNASSUMABLE.format(role=task)}"

    report = sweep()
    [live] = report.incidents  # no separate "deployment stalled" incident
    assert live.id == latent.id and not live.latent and (live.cause, live.cause_key) == (Cause.EXECUTION_ROLE, task)
    by_watcher = {s.watcher_id: s for s in live.signals}
    assert set(by_watcher) == {"ECS101", "ECS103", "ECS106"}
    launch = by_watcher["ECS101"]
    assert task in launch.message and launch.since == (T0 + timedelta(hours=1)).isoformat()  # the first round after
    assert launch.evidence["running"] == 0 and launch.evidence["launch_failures"] >= 1
    assert by_watcher["ECS103"].message.startswith("running 0 of 2 desired tasks since")
    assert report.exit_code == 1 and [i.id for i in report.triage.updated] == [latent.id]



def test_a_rollout_ecs_cannot_launch_is_reported_after_a_minute_while_the_old_revision_serves(
        aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    task = aws.role("api-task-v2")
    aws.delete_role("api-task-v2")
    new = aws.task_definition("api", [("app", f"{repo}:v1")], task_role=task)
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=new)
    sim.tick()
    service = aws.client("ecs").describe_services(cluster="prod", services=["api"])["services"][0]
    assert service["runningCount"] == 2 == service["desiredCount"]  # the old deployment still runs both tasks
    primary = service["deployments"][0]
    assert (primary["status"], primary["taskDefinition"], primary["runningCount"]) == ("PRIMARY", new, 0)
    [early] = sweep().incidents  # ECS retries while IAM may still be propagating a new role: not yet ECS101's
    assert {s.watcher_id for s in early.signals} == {"ECS106"}
    sim.advance(LAUNCH_FAILURE_GRACE_S)
    sim.tick()
    [incident] = sweep().incidents
    assert incident.id == early.id
    assert (incident.cause, incident.cause_key, incident.latent) == (Cause.EXECUTION_ROLE, task, False)
    assert {s.watcher_id for s in incident.signals} == {"ECS101", "ECS106"}

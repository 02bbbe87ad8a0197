"""ECS101: failed task starts, parsed into causes (symptoms produced by the simulator from causes)."""

from __future__ import annotations

from guard.models import Cause
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import Sweep, steady_service


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

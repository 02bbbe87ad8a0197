"""ECS106: an execution role deleted under a steady service, seen before any task restarts."""

from __future__ import annotations

from guard.models import Cause
from guard.sandbox.ecs_sim import EcsSimulator
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
    sim.restart_tasks("prod", "api")
    sim.tick()
    report = sweep()
    [active] = report.incidents
    assert active.id == latent.id and not active.latent
    assert {s.watcher_id for s in active.signals} == {"ECS101", "ECS106"}
    assert report.triage.opened == () and [i.id for i in report.triage.updated] == [latent.id]

"""ECS103: a rollout in progress past its deadline, joined to the cause its tasks show."""

from __future__ import annotations

from guard.models import Cause
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import Sweep


def test_stall_is_reported_after_the_deadline_with_its_cause(aws: Scenario, sim: EcsSimulator,
                                                             sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1", exits=True)
    aws.cluster("prod")
    aws.service("prod", "api", aws.task_definition("api", [("app", f"{repo}:v1")]), desired=2)
    sim.enable_circuit_breaker("prod", "api", enable=False)
    sim.tick()
    assert not [s for i in sweep().incidents for s in i.signals if s.watcher_id == "ECS103"]
    sim.advance(31 * 60)
    sim.tick(2)
    [inc] = sweep().incidents
    [stall] = [s for s in inc.signals if s.watcher_id == "ECS103"]
    assert inc.cause is Cause.CRASH and stall.resource == "ecs:prod/api"
    assert "in progress for 31 min" in stall.message and stall.severity.value == "warning"

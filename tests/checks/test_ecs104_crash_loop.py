"""ECS104: an essential container that keeps exiting."""

from __future__ import annotations

from guard.models import Cause
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import Sweep


def test_crash_loop_after_threshold(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1", exits=True)
    aws.cluster("prod")
    aws.service("prod", "api", aws.task_definition("api", [("app", f"{repo}:v1")]), desired=1)
    sim.enable_circuit_breaker("prod", "api", enable=False)
    sim.tick(2)
    assert not [i for i in sweep().incidents if i.cause is Cause.CRASH]
    sim.tick(6)
    [crash] = [i for i in sweep().incidents if i.cause is Cause.CRASH]
    assert crash.resources == ("ecs:prod/api",)
    assert int(crash.signals[0].evidence["exits"]) >= 3
    assert "exited with code 1" in crash.signals[0].message

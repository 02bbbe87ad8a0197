"""ECS102: a rollout that the circuit breaker failed, attributed to its tasks' cause."""

from __future__ import annotations

from guard.models import Cause
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import Sweep, steady_service


def test_failed_rollout_coalesces_with_the_failed_starts(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    good = steady_service(aws, sim, "api", f"{repo}:v1")
    bad = aws.task_definition("api", [("app", f"{repo}:gone")])
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=bad)
    sim.tick(3)
    svc = aws.client("ecs").describe_services(cluster="prod", services=["api"])["services"][0]
    assert any(d.get("rolloutState") == "FAILED" for d in svc["deployments"]) or svc["taskDefinition"] == good
    report = sweep()
    [inc] = report.incidents
    assert inc.cause is Cause.MISSING_IMAGE and inc.cause_key == f"{repo}:gone"
    watchers = {s.watcher_id for s in inc.signals}
    assert watchers == {"ECS101", "ECS102"}
    [rollout] = [s for s in inc.signals if s.watcher_id == "ECS102"]
    assert rollout.evidence["rolled_back"] is True and "circuit breaker" in rollout.message

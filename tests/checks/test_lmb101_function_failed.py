"""LMB101: a Lambda function in state Failed (its image deleted, or an update that failed)."""

from __future__ import annotations

from guard.models import Cause
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import Sweep


def test_failed_update_and_deleted_image(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/thumbs")
    aws.push_image("shop/thumbs", "v1")
    aws.lambda_function("thumbs", f"{repo}:v1")
    sim.tick()
    assert sweep().incidents == ()
    sim.update_function_code_async("thumbs", f"{repo}:never-pushed")
    sim.tick()
    [inc] = sweep().incidents
    assert inc.resources == ("lambda:thumbs",) and inc.cause is Cause.MISSING_IMAGE
    [sig] = [s for s in inc.signals if s.watcher_id == "LMB101"]
    assert sig.evidence["last_update_status"] == "Failed"

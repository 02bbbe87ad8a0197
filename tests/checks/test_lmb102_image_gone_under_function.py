"""LMB102: an Active function whose image was deleted (latent until Lambda notices)."""

from __future__ import annotations

from guard.models import Cause
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import Sweep


def test_image_deleted_under_function(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/thumbs")
    aws.push_image("shop/thumbs", "v1")
    aws.lambda_function("thumbs", f"{repo}:v1")
    aws.delete_image("shop/thumbs", tag="v1")
    [inc] = sweep().incidents
    assert inc.latent and inc.cause is Cause.MISSING_IMAGE and inc.resources == ("lambda:thumbs",)
    sim.tick()  # Lambda notices: State Failed, ImageDeleted
    [same] = sweep().incidents
    assert same.id == inc.id and not same.latent
    assert {s.watcher_id for s in same.signals} == {"LMB101"}

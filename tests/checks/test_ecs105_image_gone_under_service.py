"""ECS105: the latent hazard, an image deleted under a steady service, seen before any restart."""

from __future__ import annotations

from guard.models import Cause
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import Sweep, steady_service


def test_latent_hazard_then_the_restart(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    steady_service(aws, sim, "worker", f"{repo}:v1")
    aws.delete_image("shop/api", tag="v1")
    sim.tick(3)  # nothing breaks while tasks keep running
    first = sweep()
    [inc] = first.incidents
    assert inc.latent and inc.cause is Cause.MISSING_IMAGE and inc.cause_key == f"{repo}:v1"
    assert inc.resources == ("ecs:prod/api", "ecs:prod/worker")
    assert [i.id for i in first.triage.opened] == [inc.id] and first.exit_code == 1
    again = sweep()
    assert again.triage.opened == () and again.triage.updated == () and [i.id for i in again.incidents] == [inc.id]
    sim.restart_tasks("prod", "api")
    sim.tick()
    after = sweep()
    [same] = after.incidents
    assert same.id == inc.id and not same.latent
    assert [i.id for i in after.triage.updated] == [inc.id] and after.triage.opened == ()
    assert {s.watcher_id for s in same.signals} == {"ECS101", "ECS105"}


def test_a_digest_pinned_image_is_named_repo_at_digest(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    digest = aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}@{digest}")
    aws.delete_image("shop/api", tag="v1")
    [inc] = sweep().incidents
    [signal] = inc.signals
    assert f"image shop/api@{digest} no longer exists" in signal.message

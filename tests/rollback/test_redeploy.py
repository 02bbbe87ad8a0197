"""redeploy: refused while the image is missing (it would fail again); steady once it exists."""

from __future__ import annotations

from guard.actions import action_from_json, make_action
from tests.support.remedyrun import World, deploy


def test_redeploy_waits_for_the_image(world: World) -> None:
    deploy(world, "v9")
    rem = world.remediator()
    action = make_action("redeploy", cluster="prod", service="api")
    pre = action.precondition(rem.ctx)
    assert not pre.ok and "would fail again" in pre.reason
    world.aws.push_image("shop/api", "v9")
    pre = action.precondition(rem.ctx)
    assert pre.ok and not pre.done_already
    action.execute(rem.ctx)
    assert action.postcondition(rem.ctx).ok
    assert action.precondition(rem.ctx).done_already
    assert action_from_json(action.to_json()) == action

"""Services under the CODE_DEPLOY or EXTERNAL deployment controller: refused with the way out, never UpdateService.

moto keeps `deploymentController` (and, unlike ECS, would let UpdateService change a CODE_DEPLOY service's
revision), but its CodeDeploy has no StopDeployment: the actions refuse, and remediation escalates.
"""

from __future__ import annotations

import pytest

from rollback.ecs_service import EcsRollback
from rollback.redeploy import Redeploy
from tests.support.remedyrun import GOOD, World


def _controlled(world: World, name: str, controller: str) -> tuple[str, str]:
    """A service `name` in prod under `controller`, on a known-good revision; (good, bad) task definitions."""
    repo = world.aws.repository("shop/api")
    good = world.aws.task_definition(name, [("app", f"{repo}:{GOOD[:7]}")])
    world.aws.client("ecs").create_service(cluster="prod", serviceName=name, taskDefinition=good, desiredCount=1,
                                           deploymentController={"type": controller})
    bad = world.aws.task_definition(name, [("app", f"{repo}:broken")])
    world.aws.client("ecs").update_service(cluster="prod", service=name, taskDefinition=bad)
    return good, bad


@pytest.mark.parametrize(("controller", "way_out"), [("CODE_DEPLOY", "roll back in CodeDeploy"),
                                                     ("EXTERNAL", "through that deployer")])
def test_rollback_and_redeploy_refuse_other_controllers(world: World, controller: str, way_out: str) -> None:
    good, bad = _controlled(world, "legacy", controller)
    ctx = world.runtime().action_context()
    for action in (EcsRollback("prod", "legacy", good), Redeploy("prod", "legacy")):
        outcome = action.precondition(ctx)
        assert not outcome.ok and controller in outcome.reason and way_out in outcome.reason
        assert outcome.evidence == {"deployment_controller": controller}
    svc = world.aws.client("ecs").describe_services(cluster="prod", services=["legacy"])["services"][0]
    assert svc["taskDefinition"] == bad and svc["deploymentController"] == {"type": controller}
    assert world.calls("ecs:UpdateService") == 0


"""Force a new deployment of an ECS service (after its image has been rebuilt)."""

from __future__ import annotations

from dataclasses import dataclass

from guard.actions import Action, ActionContext, Outcome
from guard.gateways.aws import call
from guard.gateways.ecs import Boto3Ecs
from rollback._ecs import IAM_ACTIONS, controller_refusal, images_exist, service, steady_on


@dataclass(frozen=True)
class Redeploy(Action):
    """UpdateService(forceNewDeployment) so tasks pull the now-existing image again."""

    cluster: str
    service: str

    kind = "redeploy"
    title = "Force a new deployment of an ECS service"
    iam_actions = IAM_ACTIONS | {"ecs:DescribeTaskDefinition", "ecs:UpdateService"}

    @property
    def resource(self) -> str:
        """`ecs:CLUSTER/SERVICE`."""
        return f"ecs:{self.cluster}/{self.service}"

    def describe(self) -> str:
        """What a person approves."""
        return f"force a new deployment of {self.cluster}/{self.service}"

    def precondition(self, ctx: ActionContext) -> Outcome:
        """Redeploying only helps under the ECS controller, and if every image of the service's revision exists."""
        svc = service(ctx, self.cluster, self.service)
        if svc is None:
            return Outcome(False, f"service {self.cluster}/{self.service} does not exist")
        refused = controller_refusal(svc)
        if refused is not None:
            return refused
        td = Boto3Ecs(ctx.aws).task_definition(str(svc.get("taskDefinition")))
        if td is None:
            return Outcome(False, f"task definition {svc.get('taskDefinition')} does not exist")
        images = images_exist(ctx, td)
        if not images.ok:
            return Outcome(False, f"a redeploy would fail again: {images.reason}", images.evidence)
        if steady_on(ctx, self.cluster, self.service, None).ok:
            return Outcome(True, "already steady with every task running", done_already=True)
        return Outcome(True, "images exist; tasks are not all running", images.evidence)

    def execute(self, ctx: ActionContext) -> None:
        """UpdateService(forceNewDeployment=True), unless a deployment is already rolling (a resumed run)."""
        svc = service(ctx, self.cluster, self.service) or {}
        deployments = svc.get("deployments", [])
        if len(deployments) > 1 or any(d.get("rolloutState") == "IN_PROGRESS" for d in deployments):
            ctx.progress(f"a deployment of {self.cluster}/{self.service} is already in progress: not forcing another")
            return
        call(ctx.aws.client("ecs"), "UpdateService", cluster=self.cluster, service=self.service,
             forceNewDeployment=True)

    def postcondition(self, ctx: ActionContext) -> Outcome:
        """Steady: one COMPLETED deployment, running = desired."""
        return ctx.until(f"{self.cluster}/{self.service} steady", lambda: steady_on(ctx, self.cluster, self.service,
                                                                                    None))

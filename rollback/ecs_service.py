"""Roll an ECS service back to the task definition recorded as known-good."""

from __future__ import annotations

from dataclasses import dataclass

from guard.actions import Action, ActionContext, Outcome
from guard.gateways.aws import call
from guard.gateways.ecs import Boto3Ecs
from rollback._ecs import IAM_ACTIONS, controller_refusal, images_exist, service, steadiness, steady_on


@dataclass(frozen=True)
class EcsRollback(Action):
    """UpdateService to `task_definition` (the journal's known-good revision, never "current minus one")."""

    cluster: str
    service: str
    task_definition: str

    kind = "ecs_rollback"
    title = "Roll an ECS service back to its known-good task definition"
    iam_actions = IAM_ACTIONS | {"ecs:DescribeTaskDefinition", "ecs:UpdateService"}

    @property
    def resource(self) -> str:
        """`ecs:CLUSTER/SERVICE`."""
        return f"ecs:{self.cluster}/{self.service}"

    def describe(self) -> str:
        """What a person approves."""
        return f"roll {self.cluster}/{self.service} back to {self.task_definition.rsplit('/', 1)[-1]}"

    def precondition(self, ctx: ActionContext) -> Outcome:
        """The service exists under the ECS controller, the target revision is ACTIVE and all its images exist."""
        svc = service(ctx, self.cluster, self.service)
        if svc is None:
            return Outcome(False, f"service {self.cluster}/{self.service} does not exist")
        refused = controller_refusal(svc)
        if refused is not None:
            return refused
        td = Boto3Ecs(ctx.aws).task_definition(self.task_definition)
        if td is None or td.get("status") != "ACTIVE":
            return Outcome(False, f"task definition {self.task_definition} is not ACTIVE")
        images = images_exist(ctx, td)
        if not images.ok:
            return Outcome(False, f"known-good revision cannot start: {images.reason}", images.evidence)
        if steadiness(svc, self.task_definition).ok:  # as described above: no second DescribeServices
            return Outcome(True, "already steady on the known-good revision", done_already=True)
        return Outcome(True, f"currently on {svc.get('taskDefinition')}; target's images exist", images.evidence)

    def execute(self, ctx: ActionContext) -> None:
        """UpdateService(taskDefinition=...), unless the service already targets it (a resumed run)."""
        current = service(ctx, self.cluster, self.service) or {}
        if current.get("taskDefinition") == self.task_definition:
            ctx.progress(f"{self.cluster}/{self.service} already targets the known-good revision: waiting for it")
            return
        call(ctx.aws.client("ecs"), "UpdateService", cluster=self.cluster, service=self.service,
             taskDefinition=self.task_definition)

    def postcondition(self, ctx: ActionContext) -> Outcome:
        """Steady on the target revision with every task running."""
        return ctx.until(f"{self.cluster}/{self.service} steady on the known-good revision",
                         lambda: steady_on(ctx, self.cluster, self.service, self.task_definition))

"""Shared ECS reads for the actions: the service as it is now, and whether its images exist."""

from __future__ import annotations

from typing import Any

from guard.actions import ActionContext, Outcome
from guard.gateways.ecr import Boto3Ecr, ImageInfo, ImageStatus
from guard.gateways.ecs import Boto3Ecs
from guard.models import ImageRef, InputError

# What these helpers call: `service` and `steady_on` describe the service, `images_exist` reads ECR.
IAM_ACTIONS = frozenset({"ecs:DescribeServices", "ecr:BatchGetImage"})


def service(ctx: ActionContext, cluster: str, name: str) -> dict[str, Any] | None:
    """DescribeServices for one service (None when missing or inactive)."""
    svc = Boto3Ecs(ctx.aws).services(cluster, [name]).get(name)
    return svc if svc and svc.get("status") == "ACTIVE" else None


def controller_refusal(svc: dict[str, Any]) -> Outcome | None:
    """Why UpdateService cannot move this service to another revision (CODE_DEPLOY, EXTERNAL); None if it can.

    With the ECS controller (rolling or ECS-native blue/green) UpdateService starts a deployment of the
    revision asked for. A CODE_DEPLOY service's revision changes only through a CodeDeploy deployment, and an
    EXTERNAL service's only through task sets its own deployer creates: both are refused with the way out.
    """
    kind = str((svc.get("deploymentController") or {}).get("type", "ECS"))
    evidence = {"deployment_controller": kind}
    if kind == "CODE_DEPLOY":
        return Outcome(False, "the service uses the CODE_DEPLOY deployment controller: UpdateService cannot change "
                              "its revision; roll back in CodeDeploy (stop the deployment with rollback, or deploy "
                              "the known-good revision through the deployment group)", evidence)
    if kind == "EXTERNAL":
        return Outcome(False, "the service uses the EXTERNAL deployment controller: its revision is set by the task "
                              "sets of its own deployer; roll back through that deployer", evidence)
    return None


def images_exist(ctx: ActionContext, task_definition: dict[str, Any]) -> Outcome:
    """Every ECR image of the task definition exists now."""
    refs = []
    for c in task_definition.get("containerDefinitions", []):
        try:
            ref = ImageRef.parse(str(c.get("image", "")))
        except InputError:
            return Outcome(False, f"container {c.get('name')}: unparseable image {c.get('image')!r}")
        if ref.is_ecr:
            refs.append(ref)
    answers = Boto3Ecr(ctx.aws).lookup(refs)
    missing = [uri for uri, a in answers.items() if not (isinstance(a, ImageInfo) and a.status is ImageStatus.PRESENT)]
    if missing:
        return Outcome(False, f"image(s) missing: {', '.join(missing)}", {"missing": missing})
    return Outcome(True, "every image exists", {"images": sorted(answers)})


def steady_on(ctx: ActionContext, cluster: str, name: str, task_definition: str | None) -> Outcome:
    """One COMPLETED deployment (on `task_definition` when given), running = desired, no failed tasks."""
    svc = service(ctx, cluster, name)
    if svc is None:
        return Outcome(False, f"service {cluster}/{name} does not exist")
    return steadiness(svc, task_definition)


def steadiness(svc: dict[str, Any], task_definition: str | None) -> Outcome:
    """`steady_on` for a service already described."""
    deps = svc.get("deployments", [])
    primary: dict[str, Any] = next((d for d in deps if d.get("status") == "PRIMARY"), {})
    evidence = {"task_definition": primary.get("taskDefinition"), "rollout": primary.get("rolloutState"),
                "running": svc.get("runningCount"), "desired": svc.get("desiredCount"),
                "deployments": len(deps), "failed_tasks": primary.get("failedTasks", 0)}
    if task_definition and primary.get("taskDefinition") != task_definition:
        return Outcome(False, f"on {primary.get('taskDefinition')}, not {task_definition}", evidence)
    if primary.get("rolloutState") == "FAILED":
        return Outcome(False, f"rollout failed: {primary.get('rolloutStateReason', '')}", evidence)
    steady = (len(deps) == 1 and primary.get("rolloutState", "COMPLETED") == "COMPLETED"
              and svc.get("runningCount") == svc.get("desiredCount"))
    if not steady:
        return Outcome(False, f"{svc.get('runningCount')}/{svc.get('desiredCount')} running, "
                              f"{len(deps)} deployment(s), rollout {primary.get('rolloutState')}", evidence)
    return Outcome(True, f"steady: {svc.get('runningCount')}/{svc.get('desiredCount')} running on "
                         f"{primary.get('taskDefinition')}", evidence)

"""Parses ECS stopped reasons, ECS launch-failure service events and Lambda state reasons into a Cause and the
thing that caused it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from guard.models import Cause

_IMAGE_IN_REASON = re.compile(r"failed to resolve ref ([^\s:]+(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?)")
_SECRET_ARN = re.compile(r"(arn:aws[\w-]*:(?:secretsmanager|ssm):[^\s,]+)")
_KMS_KEY_ARN = re.compile(r"(arn:aws[\w-]*:kms:[\w-]+:\d{12}:key/[\w-]+)")
_ROLE_ARN = re.compile(r"(arn:aws[\w-]*:(?:iam|sts)::\d{12}:(?:role|assumed-role)/[\w+=,.@/-]+)")
# Service events ECS writes when it launches no task at all (no stopped task, so no failedTasks)
_ROLE_UNASSUMABLE = re.compile(r"ECS was unable to assume the role '?([^' ]+)'? that was provided for this task")
_LAUNCH_ERROR = re.compile(r"failed to launch a task with \(error (.+?)\)\.?$", re.S)
_NO_INSTANCE = "unable to place a task because no container instance met all of its requirements"
_PLACE_REASON = re.compile(r"was unable to place a task\. Reason: (.+)", re.S)


@dataclass(frozen=True)
class Diagnosis:
    """A parsed failure: the cause, the key it coalesces on, and a short human explanation."""

    cause: Cause
    key: str
    explanation: str


def secret_named(task: Mapping[str, Any]) -> str | None:
    """The Secrets Manager secret (its ARN, without a JSON key or version suffix) a stopped task's reason names."""
    found = _SECRET_ARN.search(str(task.get("stoppedReason") or ""))
    return ":".join(found.group(1).split(":")[:7]) if found and ":secretsmanager:" in found.group(1) else None


def _container_image(task: Mapping[str, Any], taskdef: Mapping[str, Any] | None) -> str:
    for c in task.get("containers", []):
        if c.get("reason") and c.get("image"):
            return str(c["image"])
    for c in (taskdef or {}).get("containerDefinitions", []):
        if c.get("essential", True) and c.get("image"):
            return str(c["image"])
    return ""


def _as_written(task: Mapping[str, Any], ref: str) -> str:
    """The container's image as the task definition writes it (ECS may pull it pinned to a digest)."""
    repo = ref.split("@", 1)[0].rsplit(":", 1)[0] if "@" in ref else ref.rsplit(":", 1)[0]
    for c in task.get("containers", []):
        image = str(c.get("image") or "")
        if image == ref or image.split("@", 1)[0].rsplit(":", 1)[0] == repo:
            return image
    return ref


def diagnose_task(task: Mapping[str, Any], taskdef: Mapping[str, Any] | None) -> Diagnosis | None:
    """Why a stopped task stopped, or None when it stopped normally (scale-in, user stop, deploy)."""
    reason = str(task.get("stoppedReason") or "")
    code = str(task.get("stopCode") or "")
    container_reasons = " ".join(str(c.get("reason") or "") for c in task.get("containers", []))
    text = f"{reason} {container_reasons}"
    role = str((taskdef or {}).get("executionRoleArn") or "")
    if "CannotPullContainerError" in text:
        if "descriptor matching platform" in text or "no matching manifest" in text:
            return Diagnosis(Cause.WRONG_ARCH, _container_image(task, taskdef),
                             "the image has no manifest for the task's CPU architecture")
        if "AccessDenied" in text or "not authorized" in text or "no basic auth" in text:
            return Diagnosis(Cause.REGISTRY_AUTH, role or _container_image(task, taskdef),
                             "the execution role cannot pull from the registry")
        if "i/o timeout" in text or "dial tcp" in text or "context deadline exceeded" in text:
            return Diagnosis(Cause.NETWORK, f"network:{task.get('clusterArn', '')}",
                             "the task cannot reach the registry (subnets, NAT, VPC endpoints)")
        match = _IMAGE_IN_REASON.search(text)
        return Diagnosis(Cause.MISSING_IMAGE, _as_written(task, match.group(1)) if match
                         else _container_image(task, taskdef), "the image does not exist in the registry")
    if "ResourceInitializationError" in text or "unable to pull secrets" in text:
        if "AccessDenied" in text or "not authorized" in text or "unable to assume" in text:
            return Diagnosis(Cause.EXECUTION_ROLE, role or "execution-role",
                             "the execution role is missing or lacks permissions")
        secret, key = _SECRET_ARN.search(text), _KMS_KEY_ARN.search(text)
        if secret and key:  # KMS refused to decrypt it: the key is the cause every secret under it shares
            return Diagnosis(Cause.SECRET, key.group(1),
                             f"the KMS key of a secret the task injects cannot decrypt it ({secret.group(1)})")
        if secret or "secret" in text.lower() or "ssm" in text:
            return Diagnosis(Cause.SECRET, secret.group(1) if secret else "secret",
                             "a secret or parameter the task injects cannot be fetched")
        if "i/o timeout" in text or "dial tcp" in text:
            return Diagnosis(Cause.NETWORK, f"network:{task.get('clusterArn', '')}",
                             "the task cannot reach AWS APIs (subnets, NAT, VPC endpoints)")
        return Diagnosis(Cause.UNKNOWN, reason[:120], "the task could not initialise")
    if "CannotStartContainerError" in text or "CannotCreateContainerError" in text:
        return Diagnosis(Cause.CRASH, _container_image(task, taskdef), "the container could not start")
    if code == "EssentialContainerExited" or "Essential container in task exited" in reason:
        exits = [c.get("exitCode") for c in task.get("containers", []) if c.get("exitCode") not in (None, 0)]
        if exits:
            return Diagnosis(Cause.CRASH, str(task.get("taskDefinitionArn", "")),
                             f"the essential container exited with code {exits[0]}")
        return None
    if code == "TaskFailedToStart":
        role_match = _ROLE_ARN.search(text)
        return Diagnosis(Cause.UNKNOWN, role_match.group(1) if role_match else reason[:120],
                         "the task failed to start")
    return None


def diagnose_lambda(config: Mapping[str, Any], image_uri: str) -> Diagnosis | None:
    """Why a Lambda function is Failed (State or LastUpdateStatus), or None when it is not."""
    state, update = config.get("State"), config.get("LastUpdateStatus")
    if state != "Failed" and update != "Failed":
        return None
    code = str(config.get("StateReasonCode") if state == "Failed" else config.get("LastUpdateStatusReasonCode"))
    reason = str(config.get("StateReason") if state == "Failed" else config.get("LastUpdateStatusReason"))
    image = image_uri
    if code in ("ImageDeleted", "ImageNotFound", "ImageAccessDenied") or "image" in reason.lower():
        cause = Cause.REGISTRY_AUTH if code == "ImageAccessDenied" else Cause.MISSING_IMAGE
        return Diagnosis(cause, image or config.get("FunctionName", ""), f"{code}: {reason}")
    return Diagnosis(Cause.LAMBDA_FAILED, f"lambda:{config.get('FunctionName', '')}", f"{code}: {reason}")


def event_messages(events: Sequence[Mapping[str, Any]], needle: str) -> list[str]:
    """Service event messages containing `needle`, newest first."""
    return [str(e.get("message", "")) for e in events if needle in str(e.get("message", ""))]


def _role_named(name: str, taskdef: Mapping[str, Any] | None) -> str:
    """`name` as the ARN the task definition gives it (ECS may name a role without its ARN)."""
    if name.startswith("arn:"):
        return name
    for key in ("taskRoleArn", "executionRoleArn"):
        arn = str((taskdef or {}).get(key) or "")
        if arn.rsplit("/", 1)[-1] == name:
            return arn
    return name


def _detail(text: str) -> str:
    """ECS's own words about a placement failure, without the pointer to its troubleshooting guide."""
    return text.split("For more information", 1)[0].strip(" .")


def diagnose_event(message: str, taskdef: Mapping[str, Any] | None = None, cluster_arn: str = "") -> Diagnosis | None:
    """Why ECS could not launch a task, from one service event, or None when the event is no launch failure.

    A role ECS cannot assume keys on the role's ARN (so it joins ECS106's incident); an instance without a free
    network interface is a network cause; other placement failures (CPU, memory, Fargate capacity, quotas) and
    launch errors ECS words differently are `unknown`, keyed on the cluster.
    """
    role = _ROLE_UNASSUMABLE.search(message)
    if role:
        return Diagnosis(Cause.EXECUTION_ROLE, _role_named(role.group(1), taskdef),
                         "ECS cannot assume a role the task definition names (deleted, or its trust policy does not "
                         "allow ecs-tasks.amazonaws.com), so it launches no task")
    if _NO_INSTANCE in message:
        if "RESOURCE:ENI" in message:
            return Diagnosis(Cause.NETWORK, f"network:{cluster_arn}",
                             "no container instance has a free network interface (ENI) for the task")
        closest = _detail(message.split(_NO_INSTANCE, 1)[1])
        return Diagnosis(Cause.UNKNOWN, f"placement:{cluster_arn}", "no container instance met the task's "
                         "requirements" + (f" ({closest[:200]})" if closest else ""))
    placed = _PLACE_REASON.search(message)
    if placed:
        return Diagnosis(Cause.UNKNOWN, f"placement:{cluster_arn}",
                         f"ECS could not place the task: {_detail(placed.group(1))}")
    launch = _LAUNCH_ERROR.search(message)
    if launch:
        return Diagnosis(Cause.UNKNOWN, f"launch:{cluster_arn}", f"ECS could not launch the task: {launch.group(1)}")
    return None


def _when(value: Any) -> datetime | None:
    """An event's createdAt (datetime from boto3, or ISO text) as an aware datetime."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ECS reports a role it cannot assume while IAM is still propagating a role created moments before the deploy, and
# keeps retrying: a launch failure counts once ECS has been reporting it for this long.
LAUNCH_FAILURE_GRACE_S = 60.0


def launch_failures(events: Sequence[Mapping[str, Any]], since: datetime, taskdef: Mapping[str, Any] | None = None,
                    cluster_arn: str = "") -> list[tuple[datetime, Diagnosis]]:
    """The launch failures service events (newest first, as ECS lists them) report since `since` and since the
    service last reached a steady state: (when, diagnosis), newest first.

    A role ECS could not assume counts only when `taskdef` (if given) names that role.
    """
    roles = {str(taskdef.get(k)) for k in ("taskRoleArn", "executionRoleArn") if taskdef.get(k)} if taskdef else set()
    out = []
    for event in events:
        message, at = str(event.get("message", "")), _when(event.get("createdAt"))
        if "has reached a steady state" in message or (at is not None and at < since):
            break
        found = diagnose_event(message, taskdef, cluster_arn)
        if at is not None and found is not None \
                and not (found.cause is Cause.EXECUTION_ROLE and taskdef and found.key not in roles):
            out.append((at, found))
    return out

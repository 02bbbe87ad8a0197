"""Parses ECS stopped reasons and Lambda state reasons into a Cause and the thing that caused it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guard.models import Cause

_IMAGE_IN_REASON = re.compile(r"failed to resolve ref ([^\s:]+(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?)")
_SECRET_ARN = re.compile(r"(arn:aws[\w-]*:(?:secretsmanager|ssm):[^\s,]+)")
_ROLE_ARN = re.compile(r"(arn:aws[\w-]*:(?:iam|sts)::\d{12}:(?:role|assumed-role)/[\w+=,.@/-]+)")


@dataclass(frozen=True)
class Diagnosis:
    """A parsed failure: the cause, the key it coalesces on, and a short human explanation."""

    cause: Cause
    key: str
    explanation: str


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
        secret = _SECRET_ARN.search(text)
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

"""AWS Lambda entry point of the watchdog: EventBridge schedules, ECS Task State Change events, shards.

Configuration is a `guard.toml` packaged beside the code (LAMBDA_TASK_ROOT) or in a layer (/opt). A
schedule event sweeps this account-region or, when the rule's input lists `shards`, fans out one
asynchronous invocation per account-region shard. An ECS task-state-change event for a stopped task
sweeps just that service, so a failed start is reported within seconds of ECS noticing it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard.models import InputError

if TYPE_CHECKING:
    from guard.runtime import Runtime

LOG = logging.getLogger("deploy_guard")
_FAILURE_CODES = frozenset({"TaskFailedToStart", "EssentialContainerExited"})
_ACCOUNT = re.compile(r"\d{12}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")


@dataclass(frozen=True)
class Shard:
    """One account-region to sweep, reached through `role_arn`."""

    account: str
    region: str
    role_arn: str | None = None


class TriggerKind(StrEnum):
    """What started the invocation."""

    SCHEDULE = "schedule"
    TASK = "task"
    SHARD = "shard"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Trigger:
    """The parsed event: what to sweep."""

    kind: TriggerKind
    clusters: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    shard: Shard | None = None
    fan_out: tuple[Shard, ...] = ()


def _shard(doc: Any) -> Shard:
    if not isinstance(doc, dict) or not isinstance(doc.get("account"), str) or not isinstance(doc.get("region"), str):
        raise InputError("a shard needs string `account` and `region` (and optionally `role_arn`)")
    # Both become a state key prefix and a botocore region: refuse anything else before any AWS call.
    if not _ACCOUNT.fullmatch(doc["account"]):
        raise InputError("shard account must be a 12-digit AWS account ID")
    if not _REGION.fullmatch(doc["region"]):
        raise InputError("shard region must be an AWS region name such as eu-west-1")
    role = doc.get("role_arn")
    if role is not None and not (isinstance(role, str) and role.startswith("arn:")):
        raise InputError("shard role_arn must be an ARN")
    return Shard(doc["account"], doc["region"], role)


def parse_trigger(event: Any) -> Trigger:
    """Classify an event; anything unrecognised is an InputError (the invocation reports it, acts on nothing)."""
    if not isinstance(event, Mapping):
        raise InputError(f"event must be a JSON object, got {type(event).__name__}")
    if "shard" in event:
        return Trigger(TriggerKind.SHARD, shard=_shard(event["shard"]))
    detail_type = event.get("detail-type")
    if detail_type == "Scheduled Event" or event.get("source") == "aws.scheduler" or "shards" in event:
        shards = event.get("shards", [])
        if not isinstance(shards, list):
            raise InputError("`shards` must be a list")
        return Trigger(TriggerKind.SCHEDULE, fan_out=tuple(_shard(s) for s in shards))
    if detail_type == "ECS Task State Change":
        detail = event.get("detail")
        if not isinstance(detail, Mapping):
            raise InputError("ECS Task State Change event without a detail object")
        group = str(detail.get("group", ""))
        cluster = str(detail.get("clusterArn", "")).rsplit("/", 1)[-1]
        if detail.get("lastStatus") != "STOPPED" or not group.startswith("service:") or not cluster:
            return Trigger(TriggerKind.IGNORED)
        if detail.get("stopCode") not in _FAILURE_CODES and "Error" not in str(detail.get("stoppedReason", "")):
            return Trigger(TriggerKind.IGNORED)
        return Trigger(TriggerKind.TASK, clusters=(cluster,), services=(group.split(":", 1)[1],))
    raise InputError(f"unsupported event (detail-type {detail_type!r})")


def _config_root() -> Path:
    """Where the packaged guard.toml is: the function's code (LAMBDA_TASK_ROOT), else a layer (/opt)."""
    roots = [Path(os.environ.get("LAMBDA_TASK_ROOT", ".")), Path("/opt")]
    return next((r for r in roots if (r / "guard.toml").is_file()), roots[0])


class _Invocation:
    """Builds a fresh runtime per invocation (fresh call counts), importing boto3 on first use, never at import."""

    def runtime(self, shard: Shard | None = None) -> Runtime:
        """The runtime for this account-region: a shard's role and region, state under the shard's prefix."""
        from guard.gateways.aws import AwsSettings
        from guard.runtime import Runtime

        runtime = Runtime.load(cwd=_config_root())
        if shard is None:
            return runtime
        wc = runtime.config.watch
        return Runtime(runtime.config, state=f"{wc.state.rstrip('/')}/shards/{shard.account}/{shard.region}",
                       target=AwsSettings(region=shard.region, role_arn=shard.role_arn,
                                          account_roles=runtime.config.account_roles))

    def sweep(self, trigger: Trigger) -> dict[str, Any]:
        """One sweep of what the trigger names; a JSON-serialisable summary."""
        runtime = self.runtime(trigger.shard)
        if trigger.kind is TriggerKind.TASK:
            scope = runtime.watch_scope(trigger.clusters, trigger.services, no_lambda=True)
        else:
            scope = runtime.watch_scope()
        heartbeat = runtime.config.notify.heartbeat and trigger.kind is not TriggerKind.TASK
        report = runtime.watchdog(heartbeat=heartbeat).sweep(scope)
        return {"trigger": trigger.kind.value, "exit_code": int(report.exit_code), "swept_at": report.swept_at,
                "services": report.services, "functions": report.functions,
                "open_incidents": [i.id for i in report.incidents], "opened": [i.id for i in report.triage.opened],
                "resolved": [i.id for i in report.triage.resolved], "unverified": len(report.unverified),
                "api_calls": report.stats.get("total", 0), "duration_s": report.duration_s}

    def fan_out(self, trigger: Trigger, function_name: str) -> dict[str, Any]:
        """One asynchronous invocation per shard; a shard that could not be started is reported (exit 3)."""
        from botocore.exceptions import ClientError

        from guard.errors import GatewayError
        from guard.gateways.aws import call

        client = self.runtime().home.client("lambda")
        started, failed = [], []
        for shard in trigger.fan_out:
            payload = {"shard": {"account": shard.account, "region": shard.region, "role_arn": shard.role_arn}}
            try:
                call(client, "Invoke", FunctionName=function_name, InvocationType="Event",
                     Payload=json.dumps(payload).encode())
                started.append(f"{shard.account}/{shard.region}")
            except (ClientError, GatewayError) as exc:
                LOG.error("could not start shard %s/%s: %s", shard.account, shard.region, exc)
                failed.append(f"{shard.account}/{shard.region}")
        summary: dict[str, Any] = {"trigger": TriggerKind.SCHEDULE.value, "fanned_out": started}
        if failed:
            summary.update(failed=failed, exit_code=3)
        return summary


_INVOCATION = _Invocation()


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda handler: parse the event, sweep (or fan out), return a JSON-serialisable summary."""
    from guard.errors import GatewayError
    from guard.logs import quiet_wire_loggers

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO)
    quiet_wire_loggers()
    try:
        trigger = parse_trigger(event)
        if trigger.kind is TriggerKind.IGNORED:
            return {"trigger": trigger.kind.value}
        if trigger.fan_out:
            return _INVOCATION.fan_out(trigger, str(getattr(context, "function_name", "")))
        summary = _INVOCATION.sweep(trigger)
    except InputError as exc:
        LOG.error("rejected event: %s", exc)
        return {"error": "input", "message": str(exc), "exit_code": 2}
    except GatewayError as exc:
        LOG.error("could not verify: %s", exc)
        return {"error": "unverified", "message": str(exc), "exit_code": 3}
    LOG.info(json.dumps(summary))
    return summary

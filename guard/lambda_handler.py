"""AWS Lambda entry points: the watchdog (EventBridge schedules, ECS Task State Change events, shards) and
the remediation function it starts.

Configuration is a `guard.toml` packaged beside the code (LAMBDA_TASK_ROOT) or in a layer (/opt), else the
SSM parameter `/FUNCTION/guard.toml` the Terraform module writes. A schedule event sweeps this
account-region and, when the rule's input lists `shards`, fans out one asynchronous invocation per
account-region shard (`"sweep_home": false` in the input leaves the home sweep out). An ECS
task-state-change event for a stopped task of a watched cluster sweeps just that service, so a failed start
is reported within seconds of ECS noticing it. Heartbeats always go to the home account, with one `Shard`
dimension per account-region.

An invocation that could not verify (exit 3) logs its summary and then raises, so Lambda's Errors
metric, asynchronous retries and alarms see it. When the input names a `remediation_function`, each
incident a home sweep opens or worsens starts it asynchronously (`remediate_handler`), in the mode and
with the allowlist of the configuration's `[remediate]` table.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
    sweep_home: bool = True
    remediation_function: str | None = None


class CouldNotVerify(RuntimeError):
    """An invocation that could not verify (exit 3): raised after its summary is logged, so Lambda errors."""

    def __init__(self, summary: Mapping[str, Any]) -> None:
        super().__init__(json.dumps(dict(summary), default=str))
        self.summary = dict(summary)


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


def _remediation_function(event: Mapping[str, Any]) -> str | None:
    name = event.get("remediation_function")
    if name is not None and not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_:.-]{1,140}", name)):
        raise InputError("`remediation_function` must be a Lambda function name")
    return name


def parse_trigger(event: Any) -> Trigger:
    """Classify an event; anything unrecognised is an InputError (the invocation reports it, acts on nothing)."""
    if not isinstance(event, Mapping):
        raise InputError(f"event must be a JSON object, got {type(event).__name__}")
    if "shard" in event:
        return Trigger(TriggerKind.SHARD, shard=_shard(event["shard"]))
    remediation = _remediation_function(event)
    detail_type = event.get("detail-type")
    if detail_type == "Scheduled Event" or event.get("source") == "aws.scheduler" or "shards" in event:
        shards = event.get("shards", [])
        if not isinstance(shards, list):
            raise InputError("`shards` must be a list")
        sweep_home = event.get("sweep_home", True)
        if not isinstance(sweep_home, bool):
            raise InputError("`sweep_home` must be true or false")
        return Trigger(TriggerKind.SCHEDULE, fan_out=tuple(_shard(s) for s in shards), sweep_home=sweep_home,
                       remediation_function=remediation)
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
        return Trigger(TriggerKind.TASK, clusters=(cluster,), services=(group.split(":", 1)[1],),
                       remediation_function=remediation)
    raise InputError(f"unsupported event (detail-type {detail_type!r})")


def _config_root() -> Path:
    """Where the packaged guard.toml is: the function's code (LAMBDA_TASK_ROOT), else a layer (/opt)."""
    roots = [Path(os.environ.get("LAMBDA_TASK_ROOT", ".")), Path("/opt")]
    return next((r for r in roots if (r / "guard.toml").is_file()), roots[0])


class _JsonLines(logging.Handler):
    """One JSON object per record on stdout (CloudWatch Logs), carrying the invocation's request ID."""

    request_id: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record as one JSON line."""
        doc: dict[str, Any] = {"timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
                               "level": record.levelname, "logger": record.name, "message": record.getMessage(),
                               "request_id": self.request_id}
        summary = getattr(record, "summary", None)
        if summary is not None:
            doc["summary"] = summary
        try:
            sys.stdout.write(json.dumps(doc, default=str) + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


def _start_logging(context: Any) -> None:
    """Idempotent: one JSON handler on the deploy_guard logger, stamped with this invocation's request ID."""
    from guard.logs import quiet_wire_loggers

    handler = next((h for h in LOG.handlers if isinstance(h, _JsonLines)), None)
    if handler is None:
        handler = _JsonLines()
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False
    handler.request_id = getattr(context, "aws_request_id", None)
    quiet_wire_loggers(handler)


class _Invocation:
    """Builds a fresh runtime per invocation (fresh call counts), importing boto3 on first use, never at import."""

    def runtime(self, shard: Shard | None = None) -> Runtime:
        """The runtime for this account-region: a shard's role and region, state under the shard's prefix."""
        from guard.gateways.aws import AwsSettings
        from guard.runtime import Runtime

        runtime = self.load()
        if shard is None:
            return runtime
        wc = runtime.config.watch
        return Runtime(runtime.config, state=f"{wc.state.rstrip('/')}/shards/{shard.account}/{shard.region}",
                       target=AwsSettings(region=shard.region, role_arn=shard.role_arn,
                                          account_roles=runtime.config.account_roles))

    @staticmethod
    def load() -> Runtime:
        """The packaged guard.toml if there is one, else the SSM parameter `/FUNCTION/guard.toml` (the module's)."""
        import tomllib

        from guard.actions import action_types
        from guard.config import check_action_kinds, parse_config
        from guard.gateways.aws import call
        from guard.runtime import Runtime

        root = _config_root()
        function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        if (root / "guard.toml").is_file() or not function:
            return Runtime.load(cwd=root)
        bare = Runtime()
        name = f"/{function}/guard.toml"
        text = call(bare.home.client("ssm"), "GetParameter", Name=name)["Parameter"]["Value"]
        try:
            config = parse_config(tomllib.loads(str(text)), f"ssm:{name}")
        except (ValueError, RecursionError) as exc:  # TOMLDecodeError is a ValueError
            raise InputError(f"ssm:{name}: not valid TOML: {exc}") from None
        check_action_kinds(config, action_types())
        return Runtime(config, settings=bare.settings)

    def run(self, trigger: Trigger, function_name: str) -> dict[str, Any]:
        """Fan out to the shards and/or sweep what the trigger names; start remediation for what got worse."""
        if not trigger.fan_out:
            return self.sweep(trigger)
        fanned = self.fan_out(trigger, function_name)
        if not trigger.sweep_home:
            return fanned
        summary = self.sweep(trigger)
        summary.update({k: v for k, v in fanned.items() if k != "exit_code"})
        summary["exit_code"] = max(summary["exit_code"], fanned.get("exit_code", 0))
        return summary

    def sweep(self, trigger: Trigger) -> dict[str, Any]:
        """One sweep of what the trigger names; a JSON-serialisable summary."""
        from guard.watch import WatchScope

        runtime = self.runtime(trigger.shard)
        wc = runtime.config.watch
        if trigger.kind is TriggerKind.TASK:
            resource = f"ecs:{trigger.clusters[0]}/{trigger.services[0]}"
            if not WatchScope(wc.clusters, wc.services).covers(resource):
                return {"trigger": TriggerKind.IGNORED.value, "reason": f"{resource[4:]} is not watched"}
            scope = runtime.watch_scope(trigger.clusters, trigger.services, no_lambda=True)
        else:
            scope = runtime.watch_scope()
        heartbeat = runtime.config.notify.heartbeat and trigger.kind is not TriggerKind.TASK
        shard = f"{trigger.shard.account}/{trigger.shard.region}" if trigger.shard else "home"
        report = runtime.watchdog(heartbeat=heartbeat, shard=shard).sweep(scope)
        summary: dict[str, Any] = {
            "trigger": trigger.kind.value, "shard": shard, "exit_code": int(report.exit_code),
            "swept_at": report.swept_at, "services": report.services, "functions": report.functions,
            "open_incidents": [i.id for i in report.incidents], "opened": [i.id for i in report.triage.opened],
            "resolved": [i.id for i in report.triage.resolved], "unverified": len(report.unverified),
            "api_calls": report.stats.get("total", 0), "duration_s": report.duration_s}
        worse = [i.id for i in (*report.triage.opened, *report.triage.updated)]
        if trigger.remediation_function and worse and trigger.shard is None:
            started, failed = self._invoke(runtime, trigger.remediation_function, [{"incident": i} for i in worse])
            summary["remediation_started"] = [p["incident"] for p in started]
            if failed:
                summary.update(remediation_failed=[p["incident"] for p in failed], exit_code=3)
        return summary

    @staticmethod
    def _invoke(runtime: Runtime, function_name: str,
                payloads: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Asynchronous Invoke per payload through the home session: (started, failed)."""
        from botocore.exceptions import ClientError

        from guard.errors import GatewayError
        from guard.gateways.aws import call

        client = runtime.home.client("lambda")
        started, failed = [], []
        for payload in payloads:
            try:
                call(client, "Invoke", FunctionName=function_name, InvocationType="Event",
                     Payload=json.dumps(payload).encode())
                started.append(payload)
            except (ClientError, GatewayError) as exc:
                LOG.error("could not invoke %s with %s: %s", function_name, json.dumps(payload), exc)
                failed.append(payload)
        return started, failed

    def fan_out(self, trigger: Trigger, function_name: str) -> dict[str, Any]:
        """One asynchronous invocation per shard; a shard that could not be started is reported (exit 3)."""
        payloads = [{"shard": {"account": s.account, "region": s.region, "role_arn": s.role_arn}}
                    for s in trigger.fan_out]
        started, failed = self._invoke(self.runtime(), function_name, payloads)
        label = [f"{p['shard']['account']}/{p['shard']['region']}" for p in started]
        summary: dict[str, Any] = {"trigger": TriggerKind.SCHEDULE.value, "fanned_out": label, "exit_code": 0}
        if failed:
            summary.update(failed=[f"{p['shard']['account']}/{p['shard']['region']}" for p in failed], exit_code=3)
        return summary

    def remediate(self, event: Any) -> dict[str, Any]:
        """Run the remediator on the incident the watchdog named, in the packaged `[remediate]` mode."""
        if not isinstance(event, Mapping) or not isinstance(event.get("incident"), str) or not event["incident"]:
            raise InputError("a remediation event needs a string `incident`")
        runtime = self.runtime()
        report = runtime.remediator().run(event["incident"], mode=runtime.config.remediate.mode)
        return {"trigger": "remediation", **report.to_json(), "exit_code": int(report.exit_code)}


_INVOCATION = _Invocation()


def _finish(summary: dict[str, Any]) -> dict[str, Any]:
    """Log the summary; raise when it could not verify (exit 3), so Lambda counts an error and retries."""
    if summary.get("exit_code") == 3:
        LOG.error("could not verify", extra={"summary": summary})
        raise CouldNotVerify(summary)
    LOG.info("done", extra={"summary": summary})
    return summary


def _guarded(work: Callable[[], dict[str, Any]], context: Any) -> dict[str, Any]:
    from guard.errors import GatewayError

    _start_logging(context)
    try:
        summary = work()
    except InputError as exc:
        LOG.error("rejected event: %s", exc)
        return {"error": "input", "message": str(exc), "exit_code": 2}
    except GatewayError as exc:
        summary = {"error": "unverified", "message": str(exc), "exit_code": 3}
    return _finish(summary)


def handler(event: Any, context: Any) -> dict[str, Any]:
    """The watchdog: parse the event, fan out and/or sweep, start remediation; raise on exit 3."""

    def work() -> dict[str, Any]:
        trigger = parse_trigger(event)
        if trigger.kind is TriggerKind.IGNORED:
            return {"trigger": trigger.kind.value}
        return _INVOCATION.run(trigger, str(getattr(context, "function_name", "")))

    return _guarded(work, context)


def remediate_handler(event: Any, context: Any) -> dict[str, Any]:
    """The remediation function: `{"incident": ID}` from the watchdog; plan and act within policy."""
    return _guarded(lambda: _INVOCATION.remediate(event), context)

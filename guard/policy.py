"""The policy gate: every action passes it, whoever proposed it (playbook, model or person)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from guard.actions import Action
from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call, error_code
from guard.models import InputError
from guard.state import StateStore, update_json

KILL_SWITCH_ENV = "DEPLOY_GUARD_KILL_SWITCH"
RATE_KEY = "remediate/rate.json"
_ON = frozenset({"1", "true", "on", "yes", "engaged", "stop"})
DEFAULT_MODEL = "claude-sonnet-4-6"
# Upper bound of every integer setting: larger values overflow timedelta/sleep far from the config.
MAX_SETTING = 10**9


class Mode(StrEnum):
    """observe: detect and notify; propose: plan and post, act on approval; act: act within policy."""

    OBSERVE = "observe"
    PROPOSE = "propose"
    ACT = "act"


@dataclass(frozen=True)
class Allow:
    """Resources (fnmatch patterns such as `ecs:prod/*`) and the action kinds allowed on them."""

    resource: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class RemediateConfig:
    """The `[remediate]` table; defaults are the safe ones (observe, nothing allowed)."""

    mode: Mode = Mode.OBSERVE
    allow: tuple[Allow, ...] = ()
    max_actions_per_incident: int = 3
    max_actions_per_hour: int = 10
    kill_switch_parameter: str | None = None
    kill_switch_object: str | None = None
    token_budget: int = 20000
    max_turns: int = 8
    model: str = DEFAULT_MODEL
    build_repository: str | None = None
    build_workflow: str | None = None
    lambda_alias: str = "live"
    lock_ttl_seconds: int = 900
    wait_timeout_seconds: int = 900
    poll_seconds: int = 15


def parse_remediate_config(table: Mapping[str, Any], source: str) -> RemediateConfig:
    """Validate `[remediate]`; unknown keys, modes and action kinds are refused."""
    from guard.actions import action_types

    ints = ("max_actions_per_incident", "max_actions_per_hour", "token_budget", "max_turns", "lock_ttl_seconds",
            "wait_timeout_seconds", "poll_seconds")
    strs = ("kill_switch_parameter", "kill_switch_object", "model", "build_repository", "build_workflow",
            "lambda_alias")
    unknown = sorted(set(table) - {"mode", "allow", *ints, *strs})
    if unknown:
        raise InputError(f"{source}: unknown remediate setting(s) {', '.join(unknown)}")
    try:
        mode = Mode(table.get("mode", "observe"))
    except ValueError:
        raise InputError(f"{source}: remediate.mode must be observe, propose or act") from None
    for name in ints:
        v = table.get(name, 1)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_SETTING:
            raise InputError(f"{source}: remediate.{name} must be a positive integer (at most {MAX_SETTING})")
    for name in strs:
        if name in table and (not isinstance(table[name], str) or not table[name]):
            raise InputError(f"{source}: remediate.{name} must be a non-empty string")
    obj = table.get("kill_switch_object")
    bucket, _, key = str(obj).removeprefix("s3://").partition("/")
    if obj is not None and not (str(obj).startswith("s3://") and bucket and key):
        raise InputError(f"{source}: remediate.kill_switch_object must be s3://bucket/key")
    allow = table.get("allow", [])
    if not isinstance(allow, list):
        raise InputError(f"{source}: remediate.allow must be a list of tables")
    kinds = set(action_types())
    rules = []
    for entry in allow:
        if not isinstance(entry, dict) or set(entry) != {"resource", "actions"} or \
                not isinstance(entry["resource"], str) or not isinstance(entry["actions"], list):
            raise InputError(f"{source}: each [[remediate.allow]] needs `resource` and `actions` only")
        bad = sorted(set(map(str, entry["actions"])) - kinds)
        if bad:
            raise InputError(f"{source}: unknown action kind(s) {bad}; known: {sorted(kinds)}")
        rules.append(Allow(entry["resource"], tuple(map(str, entry["actions"]))))
    values: dict[str, Any] = {n: int(table[n]) for n in ints if n in table}
    values.update({n: str(table[n]) for n in strs if n in table})
    return RemediateConfig(mode=mode, allow=tuple(rules), **values)


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one action; a refusal is journaled and reported, never silent."""

    allowed: bool
    rule: str
    reason: str

    def to_json(self) -> dict[str, object]:
        """JSON shape for the journal and reports."""
        return {"allowed": self.allowed, "rule": self.rule, "reason": self.reason}


@dataclass
class PolicyGate:
    """Decides, in a fixed order: kill switch, dry-run, mode, allowlist, per-incident cap, hourly rate."""

    config: RemediateConfig
    store: StateStore
    aws: AwsSession
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def kill_switch(self) -> str | None:
        """Where the kill switch is engaged (env, SSM parameter, S3 object), or None. Unreadable = engaged."""
        if self.environ.get(KILL_SWITCH_ENV, "").strip().lower() in _ON:
            return f"environment variable {KILL_SWITCH_ENV}"
        if self.config.kill_switch_parameter:
            try:
                value = call(self.aws.client("ssm"), "GetParameter", Name=self.config.kill_switch_parameter)
                if str(value["Parameter"]["Value"]).strip().lower() in _ON:
                    return f"SSM parameter {self.config.kill_switch_parameter}"
            except ClientError as exc:
                if error_code(exc) != "ParameterNotFound":
                    return f"SSM parameter {self.config.kill_switch_parameter} unreadable ({error_code(exc)})"
            except GatewayError as exc:
                return f"SSM parameter {self.config.kill_switch_parameter} unreadable ({exc.code})"
        if self.config.kill_switch_object:
            bucket, _, key = self.config.kill_switch_object[5:].partition("/")
            try:
                call(self.aws.client("s3"), "HeadObject", Bucket=bucket, Key=key)
                return f"object {self.config.kill_switch_object}"
            except ClientError as exc:
                if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    return f"object {self.config.kill_switch_object} unreadable ({error_code(exc)})"
            except GatewayError as exc:
                return f"object {self.config.kill_switch_object} unreadable ({exc.code})"
        return None

    def decide(self, action: Action, *, mode: Mode, actions_taken: int, dry_run: bool) -> Decision:
        """Allowed only if every rule passes; escalation to humans is never blocked."""
        if action.kind == "escalate":
            return Decision(True, "escalate", "telling people is always allowed")
        engaged = self.kill_switch()
        if engaged:
            return Decision(False, "kill_switch", f"kill switch engaged ({engaged})")
        if dry_run:
            return Decision(False, "dry_run", f"dry run: would {action.describe()}")
        if mode is Mode.OBSERVE:
            return Decision(False, "mode", "observe mode: actions are reported, never taken")
        if mode is Mode.PROPOSE:
            return Decision(False, "mode", "propose mode: posted for approval (run again with --mode act)")
        if not any(fnmatch.fnmatchcase(action.resource, a.resource) and action.kind in a.actions
                   for a in self.config.allow):
            return Decision(False, "allowlist", f"{action.kind} on {action.resource} is not in [[remediate.allow]]")
        if actions_taken >= self.config.max_actions_per_incident:
            return Decision(False, "incident_cap", f"{actions_taken} action(s) already taken on this incident "
                                                   f"(cap {self.config.max_actions_per_incident})")
        if self._recent_actions() >= self.config.max_actions_per_hour:
            return Decision(False, "rate_limit", f"{self.config.max_actions_per_hour} action(s) in the last hour")
        return Decision(True, "allowed", f"{action.kind} on {action.resource} is allowed in act mode")

    def _recent_actions(self) -> int:
        from guard.state import read_json

        doc, _ = read_json(self.store, RATE_KEY)
        horizon = self.clock() - timedelta(hours=1)
        return sum(1 for t in (doc or {}).get("actions", []) if datetime.fromisoformat(t) > horizon)

    def record_action(self) -> None:
        """Count one action towards the hourly rate (a conditional write: concurrent runs all count)."""
        now = self.clock()
        horizon = now - timedelta(hours=1)

        def add(doc: Any) -> Any:
            kept = [t for t in (doc or {}).get("actions", []) if datetime.fromisoformat(t) > horizon]
            return {"actions": [*kept, now.isoformat()]}

        update_json(self.store, RATE_KEY, add)

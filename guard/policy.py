"""The policy gate: every action passes it, whoever proposed it (playbook, model or person)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from botocore.exceptions import ClientError

from guard.actions import Action
from guard.config import Mode, RemediateConfig
from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call, error_code
from guard.records import action_times, add_action_time
from guard.state import StateStore

KILL_SWITCH_ENV = "DEPLOY_GUARD_KILL_SWITCH"
_ON = frozenset({"1", "true", "on", "yes", "engaged", "stop"})


class DecisionRule(StrEnum):
    """The rule that decided; the values are what journals and JSON reports contain."""

    ALWAYS_ALLOWED = "escalate"
    KILL_SWITCH = "kill_switch"
    DRY_RUN = "dry_run"
    MODE = "mode"
    ALLOWLIST = "allowlist"
    INCIDENT_CAP = "incident_cap"
    RATE_LIMIT = "rate_limit"
    ALLOWED = "allowed"


# After a refusal by one of these, automation must stop and escalate.
STOP_RULES = frozenset({DecisionRule.KILL_SWITCH, DecisionRule.ALLOWLIST, DecisionRule.INCIDENT_CAP,
                        DecisionRule.RATE_LIMIT})


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one action; a refusal is journaled and reported, never silent."""

    allowed: bool
    rule: DecisionRule
    reason: str

    def to_json(self) -> dict[str, object]:
        """JSON shape for the journal and reports."""
        return {"allowed": self.allowed, "rule": self.rule.value, "reason": self.reason}


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
        """Allowed only if every rule passes; an `always_allowed` action (escalation to humans) is never blocked."""
        if action.always_allowed:
            return Decision(True, DecisionRule.ALWAYS_ALLOWED, "telling people is always allowed")
        engaged = self.kill_switch()
        if engaged:
            return Decision(False, DecisionRule.KILL_SWITCH, f"kill switch engaged ({engaged})")
        if dry_run:
            return Decision(False, DecisionRule.DRY_RUN, f"dry run: would {action.describe()}")
        if mode is Mode.OBSERVE:
            return Decision(False, DecisionRule.MODE, "observe mode: actions are reported, never taken")
        if mode is Mode.PROPOSE:
            return Decision(False, DecisionRule.MODE,
                            "propose mode: posted for approval (run again with --mode act)")
        if not any(fnmatch.fnmatchcase(action.resource, a.resource) and action.kind in a.actions
                   for a in self.config.allow):
            return Decision(False, DecisionRule.ALLOWLIST,
                            f"{action.kind} on {action.resource} is not in [[remediate.allow]]")
        if actions_taken >= self.config.max_actions_per_incident:
            return Decision(False, DecisionRule.INCIDENT_CAP, f"{actions_taken} action(s) already taken on this "
                            f"incident (cap {self.config.max_actions_per_incident})")
        if self._recent_actions() >= self.config.max_actions_per_hour:
            return Decision(False, DecisionRule.RATE_LIMIT,
                            f"{self.config.max_actions_per_hour} action(s) in the last hour")
        return Decision(True, DecisionRule.ALLOWED, f"{action.kind} on {action.resource} is allowed in act mode")

    def _recent_actions(self) -> int:
        horizon = self.clock() - timedelta(hours=1)
        return sum(1 for t in action_times(self.store) if t > horizon)

    def record_action(self) -> None:
        """Count one action towards the hourly rate (a conditional write: concurrent runs all count)."""
        now = self.clock()
        add_action_time(self.store, now, keep_after=now - timedelta(hours=1))

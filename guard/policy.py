"""The policy gate: every action passes it, whoever proposed it (playbook, model or person)."""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from guard.actions import Action
from guard.config import Mode, RemediateConfig
from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call, error_code
from guard.models import Cause, ImageRef, Incident, InputError
from guard.records import action_times, add_action_time, healthy_functions, healthy_services
from guard.state import StateStore

KILL_SWITCH_ENV = "DEPLOY_GUARD_KILL_SWITCH"
_log = logging.getLogger(__name__)
_ON = frozenset({"1", "true", "on", "yes", "engaged", "stop"})


class DecisionRule(StrEnum):
    """The rule that decided; the values are what journals and JSON reports contain."""

    ALWAYS_ALLOWED = "escalate"
    KILL_SWITCH = "kill_switch"
    DRY_RUN = "dry_run"
    MODE = "mode"
    ALLOWLIST = "allowlist"
    OUTSIDE_INCIDENT = "outside_incident"
    UNRECORDED_TARGET = "unrecorded_target"
    BUILD_TARGET = "build_target"
    IMAGE_TARGET = "image_target"
    NO_TARGET_RULE = "no_target_rule"
    HUMAN_CHOICE = "human_choice"
    INCIDENT_CAP = "incident_cap"
    RATE_LIMIT = "rate_limit"
    ALLOWED = "allowed"


# After a refusal by one of these, automation must stop and escalate.
STOP_RULES = frozenset({DecisionRule.KILL_SWITCH, DecisionRule.ALLOWLIST, DecisionRule.OUTSIDE_INCIDENT,
                        DecisionRule.UNRECORDED_TARGET, DecisionRule.BUILD_TARGET, DecisionRule.IMAGE_TARGET,
                        DecisionRule.NO_TARGET_RULE, DecisionRule.INCIDENT_CAP, DecisionRule.RATE_LIMIT})
# Kinds whose resource is not one of the incident's (a build runs in a repository, an image lives in one):
# their target rule decides.
_OUTSIDE_RESOURCES = frozenset({"rerun_build", "protect_image"})
_ROLLBACKS = frozenset({"ecs_rollback", "lambda_rollback", "lambda_image_rollback"})


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
    """Decides, in a fixed order: kill switch, dry-run, mode, allowlist, target, per-incident cap, hourly rate.

    The target rule decides on what the action leaves behind: an ECS rollback only to a revision recorded
    healthy for that service, a Lambda rollback only to code recorded healthy for that function, a redeploy
    (it keeps the service's revision) and rollbacks only on the incident's own resources, a build rerun only
    of a run of the configured workflow in the configured repository for the commit of the missing image.
    """

    config: RemediateConfig
    store: StateStore
    aws: AwsSession
    github: Any = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def kill_switch(self) -> str | None:
        """Where the kill switch is engaged (env, SSM parameter, S3 object), or None.

        A configured store that cannot be read counts as engaged: a missing parameter, a missing bucket,
        access denied, a timeout. Only an absent object in a readable bucket means off."""
        if self.environ.get(KILL_SWITCH_ENV, "").strip().lower() in _ON:
            return f"environment variable {KILL_SWITCH_ENV}"
        if self.config.kill_switch_parameter:
            name = self.config.kill_switch_parameter
            try:
                value = call(self.aws.client("ssm"), "GetParameter", Name=name)
                if str(value["Parameter"]["Value"]).strip().lower() in _ON:
                    return f"SSM parameter {name}"
            except ClientError as exc:
                return _unreadable(f"SSM parameter {name}", error_code(exc))
            except GatewayError as exc:
                return _unreadable(f"SSM parameter {name}", exc.code)
        if self.config.kill_switch_object:
            where = f"object {self.config.kill_switch_object}"
            bucket, _, key = self.config.kill_switch_object[5:].partition("/")
            try:
                call(self.aws.client("s3"), "GetObject", Bucket=bucket, Key=key)["Body"].close()
                return where
            except ClientError as exc:
                if error_code(exc) != "NoSuchKey":  # NoSuchBucket, AccessDenied...: the switch cannot be read
                    return _unreadable(where, error_code(exc))
            except GatewayError as exc:
                return _unreadable(where, exc.code)
        return None

    def decide(self, action: Action, *, incident: Incident, mode: Mode, actions_taken: int,
               dry_run: bool) -> Decision:
        """Allowed only if every rule passes; an `always_allowed` action (escalation to humans) is never blocked.

        A dry run answers DRY_RUN, its reason naming the decision the other rules would take."""
        if action.always_allowed:
            return Decision(True, DecisionRule.ALWAYS_ALLOWED, "telling people is always allowed")
        engaged = self.kill_switch()
        if engaged:
            return Decision(False, DecisionRule.KILL_SWITCH, f"kill switch engaged ({engaged})")
        decision = self.rules(action, incident=incident, mode=mode, actions_taken=actions_taken)
        if dry_run:
            verdict = "would act" if decision.allowed else f"would be refused ({decision.rule})"
            return Decision(False, DecisionRule.DRY_RUN, f"dry run: {action.describe()}: {verdict}: {decision.reason}")
        return decision

    def rules(self, action: Action, *, incident: Incident, mode: Mode, actions_taken: int) -> Decision:
        """The decision after the kill switch: mode, allowlist, target, per-incident cap, hourly rate."""
        if mode is Mode.OBSERVE:
            return Decision(False, DecisionRule.MODE, "observe mode: actions are reported, never taken")
        if mode is Mode.PROPOSE:
            return Decision(False, DecisionRule.MODE,
                            "propose mode: posted for approval (run again with --mode act)")
        if not any(fnmatch.fnmatchcase(action.resource, a.resource) and action.kind in a.actions
                   for a in self.config.allow):
            return Decision(False, DecisionRule.ALLOWLIST,
                            f"{action.kind} on {action.resource} is not in [[remediate.allow]]")
        target = self.target(action, incident)
        if target is not None:
            return target
        if actions_taken >= self.config.max_actions_per_incident:
            return Decision(False, DecisionRule.INCIDENT_CAP, f"{actions_taken} action(s) already taken on this "
                            f"incident (cap {self.config.max_actions_per_incident})")
        if self._recent_actions() >= self.config.max_actions_per_hour:
            return Decision(False, DecisionRule.RATE_LIMIT,
                            f"{self.config.max_actions_per_hour} action(s) in the last hour")
        return Decision(True, DecisionRule.ALLOWED, f"{action.kind} on {action.resource} is allowed in act mode")

    def target(self, action: Action, incident: Incident) -> Decision | None:
        """The refusal of an action whose target is not one it may leave behind, else None."""
        if action.kind not in _OUTSIDE_RESOURCES and action.resource not in incident.resources:
            return Decision(False, DecisionRule.OUTSIDE_INCIDENT, f"{action.resource} is not one of incident "
                            f"{incident.id}'s resources ({', '.join(incident.resources) or 'none'})")
        params = action.params
        if action.kind == "redeploy":
            return None  # it keeps the service's current revision: nothing else is left behind
        if action.kind in _ROLLBACKS:
            return self.recorded(action)
        if action.kind == "rerun_build":
            return self._build_target(incident, params)
        if action.kind == "protect_image":
            return self._image_target(incident, params)
        return Decision(False, DecisionRule.NO_TARGET_RULE, f"no target rule for {action.kind}: refused")

    def recorded(self, action: Action) -> Decision | None:
        """For a rollback: the refusal when its target was never recorded healthy for its resource, else None."""
        if action.kind == "ecs_rollback":
            return self._ecs_target(action.resource, str(action.params["task_definition"]))
        return self._lambda_target(action.resource, action.params)

    def _ecs_target(self, resource: str, task_definition: str) -> Decision | None:
        cluster, _, service = resource[4:].partition("/")
        recorded = [r.task_definition for r in healthy_services(self.store, cluster, service)]
        wanted = _revision(task_definition)
        if task_definition in recorded:
            return None
        return Decision(False, DecisionRule.UNRECORDED_TARGET,
                        f"{wanted} was never recorded healthy for {resource} (recorded: "
                        f"{', '.join(_revision(r) for r in recorded) or 'none'})")

    def _lambda_target(self, resource: str, params: Mapping[str, Any]) -> Decision | None:
        function = resource[7:]
        recorded = healthy_functions(self.store, function)
        if "image_uri" in params:
            uri = str(params["image_uri"])
            try:
                ref = ImageRef.parse(uri)
            except InputError:
                ref = None
            if ref is not None and ref.digest and any(
                    ref.digest == r.image_digest and r.image_uri and ref.repository == ImageRef.parse(r.image_uri)
                    .repository for r in recorded):
                return None
            what = f"image {uri}"
        else:
            sha = str(params.get("code_sha256", ""))
            if sha and any(sha == r.code_sha256 for r in recorded):
                return None
            what = f"version {params.get('version')} (code {sha or 'unpinned'})"
        return Decision(False, DecisionRule.UNRECORDED_TARGET,
                        f"{what} was never recorded healthy for {resource}")

    def _build_target(self, incident: Incident, params: Mapping[str, Any]) -> Decision | None:
        repository, run_id = str(params["repository"]), params["run_id"]
        if repository != self.config.build_repository:
            return Decision(False, DecisionRule.BUILD_TARGET, f"{repository} is not the configured build "
                            f"repository ({self.config.build_repository or 'none configured'})")
        if incident.cause is not Cause.MISSING_IMAGE or set(params.get("images") or ()) != {incident.cause_key}:
            return Decision(False, DecisionRule.BUILD_TARGET,
                            f"a build rerun only repairs a missing image; incident {incident.id} is "
                            f"{incident.cause.value}: {incident.cause_key}")
        if self.github is None:
            return Decision(False, DecisionRule.BUILD_TARGET, "no GitHub access to verify the build run")
        try:
            run = self.github.run(repository, int(run_id))
        except GatewayError as exc:
            return Decision(False, DecisionRule.BUILD_TARGET, f"build run {run_id} could not be read: {exc}")
        try:
            tag = (ImageRef.parse(incident.cause_key).tag or "").lower()
        except InputError:
            tag = ""
        if len(tag) < 7 or not run.head_sha.startswith(tag):
            return Decision(False, DecisionRule.BUILD_TARGET, f"run {run_id} built {run.head_sha[:12]}, not the "
                            f"commit of the missing image {incident.cause_key}")
        if not workflow_matches(self.config.build_workflow, run.name, run.path):
            return Decision(False, DecisionRule.BUILD_TARGET,
                            f"run {run_id} is workflow {run.path or run.name}, not {self.config.build_workflow}")
        return None

    def _image_target(self, incident: Incident, params: Mapping[str, Any]) -> Decision | None:
        """Protect only an image the incident names (digest and repository), only under a configured-prefix tag."""
        tag, prefix = str(params["tag"]), self.config.protect_tag_prefix
        if not tag.startswith(prefix) or tag == prefix:
            return Decision(False, DecisionRule.IMAGE_TARGET, f"tag {tag!r} does not start with the configured "
                            f"protect_tag_prefix {prefix!r}: only such tags may be added (never an existing one)")
        try:
            ref = ImageRef.parse(str(params["image"]))
        except InputError as exc:
            return Decision(False, DecisionRule.IMAGE_TARGET, str(exc))
        named = {(_repository(str(s.evidence.get("image") or "")), str(s.evidence.get("digest") or ""))
                 for s in incident.signals}
        if ref.digest is None or (f"{ref.registry}/{ref.repository}", ref.digest) not in named:
            return Decision(False, DecisionRule.IMAGE_TARGET, f"{ref.display} is not an image incident "
                            f"{incident.id} names")
        return None

    def _recent_actions(self) -> int:
        horizon = self.clock() - timedelta(hours=1)
        return sum(1 for t in action_times(self.store) if t > horizon)

    def record_action(self) -> None:
        """Count one action towards the hourly rate (a conditional write: concurrent runs all count)."""
        now = self.clock()
        add_action_time(self.store, now, keep_after=now - timedelta(hours=1))


def _unreadable(where: str, code: str) -> str:
    """An engaged reading for a switch that could not be read, logged as a warning."""
    reason = f"{where} unreadable ({code or 'no answer'}): counted as engaged"
    _log.warning("kill switch %s", reason)
    return reason


def workflow_matches(wanted: str | None, name: str, path: str) -> bool:
    """True when a run's workflow (name or file) is the configured build workflow (any, when none is set)."""
    return not wanted or wanted in (name, path) or path.endswith(f"/{wanted}")


def _revision(task_definition: str) -> str:
    """`family:revision` of a task definition ARN (or of a `family:revision` string)."""
    return task_definition.rsplit("/", 1)[-1]


def _repository(uri: str) -> str:
    """`registry/repository` of an image reference, "" when it does not parse."""
    try:
        ref = ImageRef.parse(uri)
    except InputError:
        return ""
    return f"{ref.registry}/{ref.repository}"

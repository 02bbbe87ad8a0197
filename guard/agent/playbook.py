"""The deterministic playbook: an incident's cause decides an ordered list of strategies.

Each strategy is tried in turn until one is verified; the last one always hands the incident to a human.
Missing image from a build that was cancelled or failed: rerun that build, then redeploy. Otherwise roll back
to the known-good revision. Causes a rollback cannot fix (a secret, a role, the network) go to a human. An
image in use that a lifecycle rule will expire gets a keep tag (protect_image) where the allowlist permits it.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from guard.actions import Action, make_action
from guard.config import RemediateConfig
from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call
from guard.models import Cause, ImageRef, Incident, InputError
from guard.policy import workflow_matches
from guard.records import known_good_function, known_good_service
from guard.state import StateStore

_HEX = re.compile(r"^[0-9a-f]{7,40}$")
_NOT_ROLLBACKABLE = {
    Cause.SECRET: "a secret or parameter the tasks need cannot be fetched; the known-good revision needs it too",
    Cause.EXECUTION_ROLE: "the execution or task role is missing or denied; every revision uses it",
    Cause.REGISTRY_AUTH: "the tasks cannot authenticate to the registry; every revision needs that",
    Cause.NETWORK: "the tasks cannot reach the network they need; no revision change fixes that",
}


@dataclass(frozen=True)
class Strategy:
    """Actions that together repair the incident, and why this strategy was chosen."""

    name: str
    rationale: str
    actions: tuple[Action, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON for the journal's plan entry."""
        return {"name": self.name, "rationale": self.rationale, "actions": [a.to_json() for a in self.actions]}


@dataclass
class PlanContext:
    """What planning may read: known-good memory, GitHub runs, ECS and Lambda state."""

    store: StateStore
    aws: AwsSession
    config: RemediateConfig
    github: Any = None


def _ecs(resource: str) -> tuple[str, str] | None:
    kind, _, name = resource.partition(":")
    if kind != "ecs" or "/" not in name:
        return None
    cluster, _, service = name.partition("/")
    return cluster, service


def escalation(incident: Incident, reason: str, tried: tuple[str, ...] = ()) -> Strategy:
    """The last strategy of every plan: the stored incident, what was tried and why it stopped, to humans."""
    return Strategy("escalate", reason, (make_action(
        "escalate", incident_id=incident.id, reason=reason, title_text=incident.title, resources=incident.resources,
        incident=json.dumps(incident.to_json(), sort_keys=True), tried=tried),))


def _rerun(incident: Incident, ctx: PlanContext) -> Strategy | None:
    """The build that should have pushed the missing image, when it was cancelled or failed."""
    if incident.cause is not Cause.MISSING_IMAGE or ctx.github is None or not ctx.config.build_repository:
        return None
    try:
        ref = ImageRef.parse(incident.cause_key)
    except InputError:
        return None
    tag = (ref.tag or "").lower()
    if not _HEX.match(tag):
        return None
    try:
        runs = ctx.github.recent_runs(ctx.config.build_repository)
    except GatewayError:
        return None
    for run in runs:
        if run.head_sha.startswith(tag) and workflow_matches(ctx.config.build_workflow, run.name, run.path):
            if run.status == "completed" and run.conclusion == "success":
                return None
            services = [s for s in (_ecs(r) for r in incident.resources) if s]
            return Strategy(
                "rerun build, then redeploy",
                f"image {incident.cause_key} was never pushed: build run {run.id} for commit {run.head_sha[:12]} "
                f"{run.conclusion or run.status}; rerun it and redeploy the {len(services)} affected service(s)",
                (make_action("rerun_build", repository=ctx.config.build_repository, run_id=run.id,
                       images=(incident.cause_key,)),
                 *(make_action("redeploy", cluster=c, service=s) for c, s in services)))
    return None


def _rollback(incident: Incident, ctx: PlanContext) -> Strategy | None:
    """Known-good revisions for every affected resource, skipping those that need the missing image."""
    actions: list[Action] = []
    notes: list[str] = []
    for resource in incident.resources:
        ecs = _ecs(resource)
        if ecs is not None:
            record = known_good_service(ctx.store, *ecs)
            if record is None:
                notes.append(f"no known-good revision recorded for {resource}")
                continue
            if incident.cause is Cause.MISSING_IMAGE and incident.cause_key in record.images:
                notes.append(f"the known-good revision of {resource} uses the missing image too")
                continue
            actions.append(make_action("ecs_rollback", cluster=ecs[0], service=ecs[1],
                                 task_definition=record.task_definition))
        elif resource.startswith("lambda:"):
            action = _lambda_rollback(resource[7:], ctx, notes)
            if action is not None:
                actions.append(action)
    if not actions:
        return None
    rationale = f"roll {len(actions)} resource(s) back to the revision last seen healthy"
    return Strategy("roll back to known-good", rationale + (f" ({'; '.join(notes)})" if notes else ""),
                    tuple(actions))


def _lambda_rollback(function: str, ctx: PlanContext, notes: list[str]) -> Action | None:
    """Alias back to the published version running the known-good code; else the image, pinned by digest."""
    record = known_good_function(ctx.store, function)
    if record is None:
        notes.append(f"no known-good code recorded for lambda:{function}")
        return None
    sha = record.code_sha256
    try:
        versions = call(ctx.aws.client("lambda"), "ListVersionsByFunction", FunctionName=function)["Versions"]
        aliases = call(ctx.aws.client("lambda"), "ListAliases", FunctionName=function)["Aliases"]
    except (ClientError, GatewayError):
        notes.append(f"could not list versions of {function}")
        return None
    good = [v["Version"] for v in versions if v.get("Version") != "$LATEST" and v.get("CodeSha256") == sha]
    if good and any(a.get("Name") == ctx.config.lambda_alias for a in aliases):
        return make_action("lambda_rollback", function=function, alias=ctx.config.lambda_alias,
                           version=max(good, key=int), code_sha256=sha)
    digest = record.image_digest
    if digest:
        ref = ImageRef.parse(record.image_uri)
        return make_action("lambda_image_rollback", function=function,
                           image_uri=f"{ref.registry}/{ref.repository}@{digest}")
    notes.append(f"no alias {ctx.config.lambda_alias} on a known-good version, and no digest recorded for {function}")
    return None


def _protect(incident: Incident, ctx: PlanContext) -> Strategy | None:
    """Tag each image a lifecycle rule will expire, where `protect_image` is allowed on its repository."""
    actions: dict[str, Action] = {}
    for s in incident.signals:
        if not (s.evidence.get("image") and s.evidence.get("digest")):
            continue
        try:
            ref = ImageRef.parse(str(s.evidence["image"]))
        except InputError:
            continue
        digest = str(s.evidence["digest"])
        if not any(fnmatch.fnmatchcase(f"ecr:{ref.repository}", a.resource) and "protect_image" in a.actions
                   for a in ctx.config.allow):
            continue
        desc = str(s.evidence.get("rule_description") or "")
        rule = f'rule {s.evidence["rule_priority"]}' + (f' ("{desc}")' if desc else "")
        tag = ctx.config.protect_tag_prefix + digest.removeprefix("sha256:")[:12]
        actions.setdefault(digest, make_action("protect_image", image=f"{ref.registry}/{ref.repository}@{digest}",
                                               tag=tag, rule=rule))
    if not actions:
        return None
    return Strategy("protect the image", f"lifecycle rules will expire {len(actions)} image(s) in use; tag each "
                    f"with {ctx.config.protect_tag_prefix}<digest> so the policy spares it", tuple(actions.values()))


def plan(incident: Incident, ctx: PlanContext) -> list[Strategy]:
    """Ordered strategies for the incident; always ends with an escalation."""
    if incident.cause is Cause.IMAGE_EXPIRY:
        protect = _protect(incident, ctx)
        reason = "a lifecycle rule will expire an image in use; " + (
            "if tagging did not keep it, change the policy or redeploy an image it keeps" if protect else
            "protect_image is not allowed on its repository: tag it, change the policy or redeploy")
        return [*([protect] if protect else []), escalation(incident, reason)]
    if incident.cause in _NOT_ROLLBACKABLE:
        return [escalation(incident, f"rollback cannot help: {_NOT_ROLLBACKABLE[incident.cause]}")]
    strategies = [s for s in (_rerun(incident, ctx), _rollback(incident, ctx)) if s is not None]
    reason = "no automated strategy left" if strategies else "no safe automated repair is known for this incident"
    return [*strategies, escalation(incident, reason)]


def playbook_planner(incident: Incident, ctx: PlanContext, journal: object, actor: str) -> list[Strategy]:
    """The playbook as a Remediator planner (it journals nothing beyond the plan itself)."""
    return plan(incident, ctx)

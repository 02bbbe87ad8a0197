"""Post-deploy verification: wait for services and functions to reach their new revision, or say why not.

A service passes only when the deployment being verified completes (every task running on its revision).
It fails with the cause its stopped tasks give (pull, secrets, role, crash loop) when its rollout fails or
cannot start tasks, or with the cause ECS's service events give when it launches no task at all (a role it
cannot assume, no capacity to place the task), and a deployment the circuit breaker rolled back fails even
though the service is steady again on the old revision. A function passes when its code update succeeded and
it is Active. Nothing is written unless `rollback` is asked for, and then only through the policy gate.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from guard.exitcodes import ExitCode
from guard.models import Cause, Incident, InputError, Severity
from guard.progress import next_poll, waiting
from guard.reasons import (
    LAUNCH_FAILURE_GRACE_S,
    Diagnosis,
    diagnose_lambda,
    diagnose_task,
    event_messages,
    launch_failures,
)

if TYPE_CHECKING:
    from guard.actions import Action, ActionContext
    from guard.gateways.aws import AwsSession
    from guard.policy import PolicyGate
    from guard.runtime import Runtime
    from guard.state import StateStore

_ROLLING_BACK = "circuit breaker: rolling back"
SCHEMA_VERSION = 1


class Status(StrEnum):
    """Where one target ended."""

    OK = "ok"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"  # the circuit breaker put the old revision back: the deploy did not land
    TIMED_OUT = "timed_out"
    PENDING = "pending"


@dataclass(frozen=True)
class Target:
    """A service (`ecs:CLUSTER/SERVICE`) or function (`lambda:FUNCTION`), with the revision it must reach."""

    kind: str
    name: str
    cluster: str = ""
    revision: str = ""  # a task definition (ARN or family:revision) or an image URI; "" = the deployment in flight

    @property
    def resource(self) -> str:
        """`ecs:CLUSTER/SERVICE` or `lambda:FUNCTION`."""
        return f"ecs:{self.cluster}/{self.name}" if self.kind == "ecs" else f"lambda:{self.name}"


@dataclass(frozen=True)
class Verdict:
    """One target's state after a poll: status, the revision seen, a sentence, and the cause when failed."""

    target: Target
    status: Status
    message: str
    revision: str = ""
    cause: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    rollback: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The report's shape for one target."""
        return {"target": self.target.resource, "status": self.status.value, "message": self.message,
                "revision": self.revision, "cause": self.cause or None, "evidence": dict(self.evidence),
                "rollback": dict(self.rollback) if self.rollback is not None else None}


@dataclass(frozen=True)
class VerifyOptions:
    """The deadline, the polling interval, and how many failed starts or crashes (or polls in a row that see ECS
    launch no task of the deployment, with a service event saying why) fail a rollout."""

    timeout_s: float = 900.0
    poll_s: float = 15.0
    failure_threshold: int = 3


@dataclass(frozen=True)
class VerifyReport:
    """Every target's verdict, API calls and duration."""

    verdicts: tuple[Verdict, ...]
    stats: Mapping[str, object]
    duration_s: float

    @property
    def exit_code(self) -> ExitCode:
        """1 if any target failed or was rolled back, else 3 if any timed out, else 0."""
        if any(v.status in (Status.FAILED, Status.ROLLED_BACK) for v in self.verdicts):
            return ExitCode.FINDINGS
        if any(v.status is not Status.OK for v in self.verdicts):
            return ExitCode.UNVERIFIED
        return ExitCode.CLEAN

    def to_json(self) -> dict[str, Any]:
        """`{"version": 1, "targets": [...], "stats": {...}, "exit_code": N}`."""
        return {"version": SCHEMA_VERSION, "targets": [v.to_json() for v in self.verdicts],
                "stats": {"api_calls": dict(self.stats), "duration_s": self.duration_s},
                "exit_code": int(self.exit_code)}


def parse_targets(services: Sequence[str], functions: Sequence[str]) -> tuple[Target, ...]:
    """`CLUSTER/SERVICE[=TASK_DEFINITION]` and `FUNCTION[=IMAGE_URI]`; malformed or none is an input error."""
    out: list[Target] = []
    for spec in services:
        name, _, revision = spec.strip().partition("=")
        if name.count("/") != 1 or not all(name.split("/")):
            raise InputError(f"--service {spec!r}: expected CLUSTER/SERVICE[=TASK_DEFINITION]")
        cluster, service = name.split("/")
        out.append(Target("ecs", service, cluster, revision.strip()))
    for spec in functions:
        name, _, image = spec.strip().partition("=")
        if not name or "/" in name:
            raise InputError(f"--lambda {spec!r}: expected FUNCTION[=IMAGE_URI]")
        out.append(Target("lambda", name, revision=image.strip()))
    if not out:
        raise InputError("nothing to verify: give --service CLUSTER/SERVICE and/or --lambda FUNCTION")
    if len({t.resource for t in out}) != len(out):
        raise InputError("a service or function is named twice")
    return tuple(out)


def _same_revision(arn: str, wanted: str) -> bool:
    return arn == wanted or arn.endswith(f"task-definition/{wanted}")


def _rolled_back(svc: Mapping[str, Any], since: Any) -> str:
    """The rollback ECS reports (primary deployment or a service event after `since`), or ""."""
    primary = (svc.get("deployments") or [{}])[0]
    if _ROLLING_BACK in str(primary.get("rolloutStateReason", "")):
        return f"ECS circuit breaker rolled back to {primary.get('taskDefinition')}"
    events = [e for e in svc.get("events", []) if since is None or e.get("createdAt") is None
              or e["createdAt"] >= since]
    found = event_messages(events, "rolling back")
    return f"ECS circuit breaker rolled back ({found[0]})" if found else ""


class _Watch:
    """Polls the targets until each is decided or the deadline passes."""

    def __init__(self, aws: AwsSession, options: VerifyOptions, clock: Callable[[], datetime]) -> None:
        from guard.gateways.ecs import Boto3Ecs
        from guard.gateways.lambda_ import Boto3Lambda

        self.ecs, self.lam, self.options, self.clock = Boto3Ecs(aws), Boto3Lambda(aws), options, clock
        self.deployments: dict[str, Mapping[str, Any]] = {}  # resource -> the deployment being verified
        self.launch_polls: dict[str, int] = {}  # resource -> polls in a row that saw ECS launch no task

    def poll(self, targets: Sequence[Target]) -> list[Verdict]:
        """One look at every target (services batched per cluster)."""
        by_cluster: dict[str, list[Target]] = {}
        for t in targets:
            if t.kind == "ecs":
                by_cluster.setdefault(t.cluster, []).append(t)
        seen: dict[str, Verdict] = {}
        for cluster, group in by_cluster.items():
            services = self.ecs.services(cluster, [t.name for t in group])
            for t in group:
                svc = services[t.name]
                seen[t.resource] = (self._service(t, svc) if svc is not None and svc.get("status") == "ACTIVE"
                                    else Verdict(t, Status.FAILED, "the service does not exist (or is not ACTIVE)"))
        for t in targets:
            if t.kind == "lambda":
                seen[t.resource] = self._function(t)
        return [seen[t.resource] for t in targets]

    def _service(self, t: Target, svc: Mapping[str, Any]) -> Verdict:
        deployments = list(svc.get("deployments") or [])
        chosen = self.deployments.get(t.resource)
        if chosen is None:
            if t.revision:
                chosen = next((d for d in deployments if _same_revision(str(d.get("taskDefinition")), t.revision)),
                              None)
                rolled = _rolled_back(svc, None)
                if chosen is None:
                    if rolled:
                        return Verdict(t, Status.ROLLED_BACK, f"{rolled}; {t.revision} is not deployed",
                                       str(svc.get("taskDefinition")), Cause.ROLLOUT_FAILED.value)
                    return Verdict(t, Status.PENDING, f"the service runs {svc.get('taskDefinition')}, not yet "
                                   f"{t.revision}", str(svc.get("taskDefinition")))
            else:
                chosen = deployments[0] if deployments else None
                if chosen is None:
                    return Verdict(t, Status.PENDING, "no deployment listed yet")
                if _ROLLING_BACK in str(chosen.get("rolloutStateReason", "")):
                    return Verdict(t, Status.ROLLED_BACK, f"{_rolled_back(svc, None)}: the deployed revision "
                                   "did not land", str(chosen.get("taskDefinition")), Cause.ROLLOUT_FAILED.value)
            self.deployments[t.resource] = chosen
        dep = next((d for d in deployments if d.get("id") == chosen.get("id")), None)
        revision = str(chosen.get("taskDefinition"))
        rolled = _rolled_back(svc, chosen.get("createdAt"))
        if dep is None or dep.get("rolloutState") == "FAILED":
            diagnosis = self._diagnose(t, svc, str(chosen.get("id")), revision)
            why = f"{diagnosis.explanation} ({diagnosis.key})" if diagnosis else ""
            if rolled:
                return Verdict(t, Status.ROLLED_BACK, f"deployment {chosen.get('id')} of {revision} failed and "
                               f"{rolled}" + (f": {why}" if why else ""), revision,
                               (diagnosis.cause if diagnosis else Cause.ROLLOUT_FAILED).value,
                               self._evidence(dep or chosen, diagnosis))
            if dep is None:
                primary = deployments[0] if deployments else {}
                return Verdict(t, Status.FAILED, f"deployment {chosen.get('id')} was replaced by "
                               f"{primary.get('id')} ({primary.get('taskDefinition')}) before it completed",
                               revision, Cause.ROLLOUT_FAILED.value)
            return Verdict(t, Status.FAILED, f"rollout failed: {dep.get('rolloutStateReason', 'FAILED')}"
                           + (f"; {why}" if why else ""), revision,
                           (diagnosis.cause if diagnosis else Cause.ROLLOUT_FAILED).value,
                           self._evidence(dep, diagnosis))
        running, desired = int(dep.get("runningCount", 0)), int(dep.get("desiredCount", 0))
        if dep.get("rolloutState") == "COMPLETED" and running >= desired:
            return Verdict(t, Status.OK, f"deployment {dep.get('id')} completed: {running}/{desired} tasks "
                           f"running {revision}", revision)
        failed = int(dep.get("failedTasks", 0))
        progress = f"deployment {dep.get('id')} {dep.get('rolloutState')}: {running}/{desired} running, " \
                   f"{failed} failed"
        if failed:
            diagnosis = self._diagnose(t, svc, str(dep.get("id")), revision)
            if diagnosis is not None:
                progress += f" ({diagnosis.cause.value}: {diagnosis.explanation})"
            if failed >= self.options.failure_threshold:
                what = "crash loop" if diagnosis and diagnosis.cause is Cause.CRASH else "tasks cannot start"
                return Verdict(t, Status.FAILED, f"{what}: {progress}", revision,
                               (diagnosis.cause if diagnosis else Cause.STALLED).value,
                               self._evidence(dep, diagnosis))
        found = self._not_launched(t, svc, chosen, revision) if running == 0 else None
        if found is not None:
            launch, first = found
            progress += f"; ECS launched no task: {launch.explanation} ({launch.key})"
            if self.launch_polls[t.resource] >= self.options.failure_threshold \
                    and (self.clock() - first).total_seconds() >= LAUNCH_FAILURE_GRACE_S:
                return Verdict(t, Status.FAILED, f"tasks cannot be launched: {progress}", revision,
                               launch.cause.value, self._evidence(dep, launch))
        return Verdict(t, Status.PENDING, progress, revision)

    def _not_launched(self, t: Target, svc: Mapping[str, Any], chosen: Mapping[str, Any],
                      revision: str) -> tuple[Diagnosis, datetime] | None:
        """The launch failure the service's events report since the deployment started (ECS launched no task, so
        no stopped task says why) and when ECS first reported one, counting the polls that saw one in a row."""
        events, since, cluster = svc.get("events") or [], chosen.get("createdAt"), str(svc.get("clusterArn", ""))
        since = since if isinstance(since, datetime) else datetime.min.replace(tzinfo=UTC)
        found = launch_failures(events, since, None, cluster)
        if found:  # read the revision (which roles it names) only when ECS reported a launch failure
            found = launch_failures(events, since, self.ecs.task_definition(revision), cluster)
        if not found:
            self.launch_polls.pop(t.resource, None)
            return None
        self.launch_polls[t.resource] = self.launch_polls.get(t.resource, 0) + 1
        return found[0][1], min(at for at, _ in found)

    def _diagnose(self, t: Target, svc: Mapping[str, Any], deployment: str, revision: str) -> Diagnosis | None:
        """The cause the deployment's stopped tasks give, most common first."""
        arns = self.ecs.list_stopped_tasks(t.cluster)
        tasks = [x for x in self.ecs.describe_tasks(t.cluster, arns) if x.get("startedBy") == deployment
                 and x.get("group") == f"service:{t.name}"] if arns else []
        found: dict[tuple[str, str], tuple[Diagnosis, int, str]] = {}
        for task in tasks:
            d = diagnose_task(task, self.ecs.task_definition(str(task.get("taskDefinitionArn", revision))))
            if d is not None:
                _, n, _ = found.get((d.cause.value, d.key), (d, 0, ""))
                found[(d.cause.value, d.key)] = (d, n + 1, str(task.get("stoppedReason", "")))
        if not found:
            return None
        best, _, reason = max(found.values(), key=lambda item: item[1])
        return Diagnosis(best.cause, best.key, f"{best.explanation}: {reason[:300]}" if reason else best.explanation)

    @staticmethod
    def _evidence(dep: Mapping[str, Any], diagnosis: Diagnosis | None) -> dict[str, Any]:
        out: dict[str, Any] = {"deployment": str(dep.get("id")), "failed_tasks": int(dep.get("failedTasks", 0)),
                               "rollout_state_reason": str(dep.get("rolloutStateReason", ""))}
        if diagnosis is not None:
            out["cause_key"] = diagnosis.key
        return out

    def _function(self, t: Target) -> Verdict:
        fn = self.lam.function(t.name)
        if fn is None:
            return Verdict(t, Status.FAILED, "the function does not exist")
        config, image = fn.get("Configuration") or {}, str((fn.get("Code") or {}).get("ImageUri", ""))
        diagnosis = diagnose_lambda(config, image)
        if diagnosis is not None:
            return Verdict(t, Status.FAILED, f"{diagnosis.explanation} ({diagnosis.key})", image,
                           diagnosis.cause.value, {"cause_key": diagnosis.key})
        update, state = config.get("LastUpdateStatus"), config.get("State")
        if t.revision and image != t.revision:
            return Verdict(t, Status.PENDING, f"the function runs {image}, not yet {t.revision}", image)
        if update in (None, "Successful") and state == "Active":
            return Verdict(t, Status.OK, f"code update successful and Active on {image}", image)
        return Verdict(t, Status.PENDING, f"State {state}, LastUpdateStatus {update}", image)


def verify(targets: Sequence[Target], aws: AwsSession, options: VerifyOptions, *,
           clock: Callable[[], datetime], wait: Callable[[float], None] = time.sleep,
           progress: Callable[[str], None] = lambda message: None,
           rollback: Callable[[Verdict], Mapping[str, Any]] | None = None) -> VerifyReport:
    """Poll until every target is decided or `options.timeout_s` of `clock` passed; then roll back if asked.

    Polls are `guard.progress.next_poll` apart: about a second at first, backing off to `options.poll_s`.
    """

    started, watch = clock(), _Watch(aws, options, clock)
    decided: dict[str, Verdict] = {}
    last: dict[str, Verdict] = {}
    what = targets[0].resource if len(targets) == 1 else f"{len(targets)} targets"
    with waiting(progress, what, options.timeout_s) as update:
        while True:
            pending = [t for t in targets if t.resource not in decided]
            for v in watch.poll(pending):
                (decided if v.status is not Status.PENDING else last)[v.target.resource] = v
                if v.status is not Status.PENDING:
                    progress(f"{v.target.resource}: {v.status.value}: {v.message}")
            pending = [t for t in targets if t.resource not in decided]
            waited = (clock() - started).total_seconds()
            if not pending or waited >= options.timeout_s:
                break
            update(waited, "; ".join(last[t.resource].message if len(targets) == 1 else
                                     f"{t.resource}: {last[t.resource].message}" for t in pending))
            wait(min(next_poll(waited, options.poll_s), options.timeout_s - waited))  # the last poll at the deadline
    for t in targets:
        if t.resource not in decided:
            seen = last[t.resource]
            decided[t.resource] = Verdict(t, Status.TIMED_OUT, f"deadline of {options.timeout_s:.0f}s passed; "
                                          f"last seen: {seen.message}", seen.revision, seen.cause, seen.evidence)
    verdicts = [decided[t.resource] for t in targets]
    if rollback is not None:
        verdicts = [Verdict(v.target, v.status, v.message, v.revision, v.cause, v.evidence, rollback(v))
                    if v.status is Status.FAILED else v for v in verdicts]
    return VerifyReport(tuple(verdicts), aws.stats.to_json(), round((clock() - started).total_seconds(), 3))


@dataclass
class GatedRollback:
    """Rolls a failed target back to its recorded known-good revision, if the policy gate allows it.

    `--rollback` is the person's decision to act, so the gate decides in `act` mode; the allowlist, the caps,
    the hourly rate and the kill switch still apply. Every step is journaled under a `VER-` id.
    """

    store: StateStore
    gate: PolicyGate
    ctx: ActionContext
    lambda_alias: str
    actor: str = "guard verify --rollback"

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> GatedRollback:
        """Wired from the runtime's state store, policy gate and action ports."""
        return cls(runtime.store, runtime.policy_gate(), runtime.action_context(),
                   runtime.config.remediate.lambda_alias)

    def _action(self, t: Target) -> Action | str:
        from guard.actions import make_action
        from guard.records import known_good_function, known_good_service

        if t.kind == "ecs":
            service = known_good_service(self.store, t.cluster, t.name)
            if service is None:
                return f"no known-good revision recorded for {t.resource}"
            return make_action("ecs_rollback", cluster=t.cluster, service=t.name,
                               task_definition=service.task_definition)
        function = known_good_function(self.store, t.name)
        if function is None or not function.version.isdigit():
            return f"no known-good version recorded for {t.resource}"
        return make_action("lambda_rollback", function=t.name, alias=self.lambda_alias, version=function.version,
                           code_sha256=function.code_sha256)

    def __call__(self, verdict: Verdict) -> Mapping[str, Any]:
        """Decide, act, verify; returns `{"status", "reason", "action"}` (status refused, failed or verified)."""
        from guard.config import Mode
        from guard.journal import EntryKind, Journal

        action = self._action(verdict.target)
        if isinstance(action, str):
            return {"status": "refused", "reason": action, "action": None}
        stamp = self.ctx.clock().isoformat()
        incident = Incident("VER-" + hashlib.sha256(f"{action.action_id}{stamp}".encode()).hexdigest()[:12],
                            Severity.ERROR, Cause(verdict.cause or Cause.ROLLOUT_FAILED.value),
                            str(verdict.evidence.get("cause_key", verdict.revision)),
                            f"{verdict.target.resource}: {verdict.message}"[:200], (verdict.target.resource,), (),
                            stamp, stamp)
        journal = Journal(self.store, incident.id, clock=self.ctx.clock)
        journal.append(EntryKind.INCIDENT, incident.to_json(), self.actor)
        decision = self.gate.decide(action, incident=incident, mode=Mode.ACT, actions_taken=0, dry_run=False)
        journal.append(EntryKind.DECISION, {"action_id": action.action_id, "action": action.to_json(),
                                            "verdict": verdict.to_json(), **decision.to_json()}, self.actor)
        if not decision.allowed:
            return {"status": "refused", "reason": f"{decision.rule}: {decision.reason}", "action": action.to_json()}
        pre = action.precondition(self.ctx)
        if not pre.ok:
            journal.append(EntryKind.ACTION_FAILED, {"action_id": action.action_id, "kind": action.kind,
                                                     "reason": pre.reason}, self.actor)
            return {"status": "failed", "reason": f"precondition failed: {pre.reason}", "action": action.to_json()}
        journal.append(EntryKind.ACTION_STARTED, {"action_id": action.action_id, "kind": action.kind,
                                                  "action": action.to_json(), "precondition": pre.reason}, self.actor)
        self.gate.record_action()
        self.ctx.progress(action.describe())
        action.execute(self.ctx)
        post = action.postcondition(self.ctx)
        journal.append(EntryKind.VERIFIED, {"action_id": action.action_id, "ok": post.ok, "reason": post.reason},
                       self.actor)
        kind = EntryKind.ACTION_SUCCEEDED if post.ok else EntryKind.ACTION_FAILED
        journal.append(kind, {"action_id": action.action_id, "kind": action.kind, "reason": post.reason}, self.actor)
        return {"status": "verified" if post.ok else "failed", "reason": post.reason, "action": action.to_json(),
                "journal": journal.incident_id}


def run_verify(runtime: Runtime, targets: Sequence[Target], options: VerifyOptions, *,
               rollback: bool = False) -> VerifyReport:
    """Verify with the runtime's AWS session, clock, sleeper and progress; roll back through its gate if asked."""
    ctx = runtime.action_context()
    return verify(targets, runtime.aws, options, clock=runtime.clock, wait=ctx.wait, progress=runtime.progress,
                  rollback=GatedRollback.from_runtime(runtime) if rollback else None)

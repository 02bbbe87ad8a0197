"""The watchdog sweep: read live state in batches, run watchers, triage, remember known-good, notify."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from guard.errors import GatewayError
from guard.exitcodes import ExitCode, exit_code
from guard.gateways.aws import AwsSession, error_code
from guard.gateways.ecr import Boto3Ecr, ImageInfo, ImageStatus
from guard.gateways.ecs import Boto3Ecs
from guard.gateways.lambda_ import Boto3Lambda
from guard.gateways.refs import Boto3Refs, KeyLookup, SecretLookup, SecretState, arn_parts, injected_secrets
from guard.lifecycle_policy import RepoKey, RepositoryLifecycle, preview_targets
from guard.metrics import send_heartbeat
from guard.models import Cause, Finding, ImageRef, Incident, InputError, Signal, Unverified
from guard.notify.messages import Notification, NotificationKind
from guard.notify.routes import NotifyError, Route, RouteResult, dispatch
from guard.outcomes import CRASHED, UNDELIVERED, UNREADABLE
from guard.records import (
    FunctionRecord,
    ServiceRecord,
    remember_known_good,
    set_undelivered,
    undelivered,
    update_incidents,
    write_heartbeat,
)
from guard.registry import all_watchers
from guard.state import StateStore
from guard.triage import TriageResult, coalesce, reconcile
from guard.watcher import FunctionView, ServiceView, Snapshot, WatchSettings

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchScope:
    """What one sweep covers; empty clusters means every cluster, `functions=None` every image function."""

    clusters: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    functions: tuple[str, ...] | None = None
    region: str | None = None

    def covers(self, resource: str) -> bool:
        """Whether a resource (`ecs:C/S`, `lambda:F`) was fully observed by a sweep of this scope."""
        kind, _, name = resource.partition(":")
        if kind == "lambda":
            return self.functions is None or name in self.functions
        cluster, _, service = name.partition("/")
        return ((not self.clusters or cluster in self.clusters)
                and (not self.services or service in self.services or name in self.services))


@dataclass(frozen=True)
class WatchReport:
    """One sweep's outcome; `incidents` are every open incident after it."""

    incidents: tuple[Incident, ...]
    triage: TriageResult
    signals: tuple[Signal, ...]
    unverified: tuple[Unverified, ...]
    known_good: tuple[str, ...]
    stats: dict[str, Any]
    duration_s: float
    exit_code: ExitCode
    swept_at: str
    services: int = 0
    functions: int = 0
    notifications: tuple[Any, ...] = field(default=())


def _name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class Watchdog:
    """Sweeps one account-region; gateways and caches live as long as the object (a warm Lambda)."""

    def __init__(self, aws: AwsSession, store: StateStore, *, settings: WatchSettings | None = None,
                 routes: Sequence[Route] = (), heartbeat: bool = True, clock: Clock | None = None,
                 workers: int = 8, home: AwsSession | None = None, shard: str | None = None,
                 wait: Callable[[float], None] | None = None) -> None:
        self.aws = aws
        self.home = home or aws  # metrics go home, never into a swept shard's account
        self.shard = shard
        self.store = store
        self.routes = tuple(routes)
        self.heartbeat = heartbeat
        self.settings = settings or WatchSettings()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.workers = workers
        self.wait = wait  # between lifecycle preview polls (default: time.sleep)
        self.ecs = Boto3Ecs(aws, workers)
        self.lambdas = Boto3Lambda(aws)
        self.refs = Boto3Refs(aws, workers)

    # -- reading -----------------------------------------------------------------------------------
    def _cluster(self, cluster: str, scope: WatchScope) -> tuple[list[ServiceView], dict[str, list[Any]]]:
        """A cluster's services and stopped tasks; a cluster that does not exist is a GatewayError naming it."""
        try:
            described = self.ecs.listed_services(
                cluster, scope.region,
                lambda n: not scope.services or n in scope.services or f"{cluster}/{n}" in scope.services)
        except ClientError as exc:
            if error_code(exc) != "ClusterNotFoundException":
                raise
            where = scope.region or self.aws.default_region
            raise GatewayError("ECS", "ListServices", f"cluster {cluster} does not exist in {where}: check "
                               "--cluster or [watch] clusters", "ClusterNotFound") from None
        views = [ServiceView(cluster, raw) for raw in described.values() if raw and raw.get("status") == "ACTIVE"]
        wanted = {f"service:{v.name}": v.resource for v in views}
        stopped: dict[str, list[Any]] = {}
        arns = self.ecs.list_stopped_tasks(cluster, scope.region) if views else []
        for task in self.ecs.describe_tasks(cluster, arns, scope.region) if arns else []:
            resource = wanted.get(str(task.get("group", "")))
            if resource:
                stopped.setdefault(resource, []).append(task)
        return views, stopped

    def collect(self, scope: WatchScope) -> Snapshot:
        """Read everything the watchers need, batched and concurrent; failures become snapshot errors."""
        errors: list[tuple[str, GatewayError]] = []
        try:
            clusters = list(scope.clusters) or [_name(a) for a in self.ecs.list_clusters(scope.region)]
        except GatewayError as exc:
            errors.append(("ecs:*", exc))
            clusters = []
        services: list[ServiceView] = []
        stopped: dict[str, tuple[Any, ...]] = {}
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = {c: pool.submit(self._cluster, c, scope) for c in clusters}
            for cluster, fut in futures.items():
                try:
                    views, tasks = fut.result()
                except GatewayError as exc:
                    errors.append((f"ecs:{cluster}/*", exc))
                    continue
                services += views
                stopped.update({k: tuple(v) for k, v in tasks.items()})
            td_arns = sorted({str(d.get("taskDefinition")) for s in services for d in s.deployments}
                             | {str(t.get("taskDefinitionArn")) for ts in stopped.values() for t in ts})
            tds = dict(zip(td_arns, pool.map(self._task_definition, td_arns), strict=True))
            functions = self._functions(scope, pool, errors)
        for arn, td in tds.items():
            if isinstance(td, GatewayError):
                errors.append((arn, td))
        task_defs = {k: v for k, v in tds.items() if not isinstance(v, GatewayError)}
        refs: dict[str, ImageRef] = {}
        for svc in services:
            primary = svc.primary
            td = task_defs.get(str(primary.get("taskDefinition"))) if primary else None
            for c in (td or {}).get("containerDefinitions", []):
                self._add_ref(refs, str(c.get("image", "")))
        for fn in functions:
            self._add_ref(refs, fn.image_uri)
        ecr = Boto3Ecr(self.aws, self.workers, sleep=self.wait)
        images = ecr.lookup(refs.values()) if refs else {}
        lifecycles, running = self._lifecycles(ecr, services, task_defs, images, scope, errors)
        role_arns = {str(td[name]) for svc in services if svc.primary  # one GetRole per distinct role
                     for td in [task_defs.get(str(svc.primary.get("taskDefinition"))) or {}]
                     for name in ("executionRoleArn", "taskRoleArn") if td.get(name)}
        try:
            roles = self.refs.roles(role_arns) if role_arns else {}
        except GatewayError as exc:
            errors.append(("iam:*", exc))
            roles = {}
        secrets, keys = self._deletions(services, task_defs)
        snap = Snapshot(self.clock(), tuple(services), task_defs, stopped, images, tuple(functions),
                        self.settings, tuple(errors), roles, secrets=secrets, keys=keys, lifecycles=lifecycles,
                        running_tasks=running)
        return self._previews(ecr, snap)

    def _previews(self, ecr: Boto3Ecr, snap: Snapshot) -> Snapshot:
        """ECR's lifecycle policy preview for the repositories where the evaluator says a digest in use expires now
        or cannot read the policy (none otherwise: the usual sweep asks nothing more), repositories concurrently."""
        horizon = self.settings.lifecycle
        wanted: dict[RepoKey, set[str]] = {}
        for use in snap.image_uses():
            repo = snap.lifecycles.get(use.ref.key)
            if isinstance(repo, RepositoryLifecycle):
                found = preview_targets(repo, use.digests, snap.now, horizon.warn_pushes)
                if found:
                    wanted.setdefault(use.ref.key, set()).update(found)
        if not wanted:
            return snap
        with ThreadPoolExecutor(max_workers=min(self.workers, len(wanted))) as pool:
            answers = pool.map(lambda k: ecr.preview(snap.lifecycles[k], wanted[k], horizon.preview_watch_s), wanted)
            return replace(snap, previews=dict(zip(wanted, answers, strict=True)))

    def _lifecycles(self, ecr: Boto3Ecr, services: Sequence[ServiceView], task_defs: Mapping[str, Any],
                    images: Mapping[str, Any], scope: WatchScope, errors: list[tuple[str, GatewayError]]
                    ) -> tuple[dict[RepoKey, Any], dict[str, tuple[Any, ...]]]:
        """Lifecycle policies of the repositories in use (one GetLifecyclePolicy each, images only with a policy),
        then the running tasks of the services on a repository with a policy (the digests ECS pinned)."""
        present = {uri: i for uri, i in images.items() if isinstance(i, ImageInfo) and i.status is ImageStatus.PRESENT}
        lifecycles = ecr.lifecycles(sorted({i.ref.key for i in present.values()})) if present else {}
        governed = {k for k, v in lifecycles.items() if not isinstance(v, RepositoryLifecycle) or v.policy}
        wanted = {f"service:{svc.name}": svc for svc in services if svc.primary and any(
            present[str(c.get("image"))].ref.key in governed for c in (task_defs.get(
                str(svc.primary.get("taskDefinition"))) or {}).get("containerDefinitions", [])
            if str(c.get("image")) in present)}
        running: dict[str, tuple[Any, ...]] = {}
        for cluster in sorted({svc.cluster for svc in wanted.values()}):
            try:
                arns = self.ecs.list_running_tasks(cluster, scope.region)
                tasks = self.ecs.describe_tasks(cluster, arns, scope.region) if arns else []
            except GatewayError as exc:
                errors.append((f"ecs:{cluster}/*", exc))
                continue
            for task in tasks:
                svc = wanted.get(str(task.get("group", "")))
                if svc is not None and svc.cluster == cluster:
                    running[svc.resource] = (*running.get(svc.resource, ()), task)
        return lifecycles, running

    def _deletions(self, services: Sequence[ServiceView], task_defs: Mapping[str, Any]) -> tuple[
            dict[str, SecretLookup], dict[tuple[str | None, str], KeyLookup]]:
        """Secrets Manager state of every secret the in-scope services' active revisions inject, then the state
        of the customer-managed KMS keys those secrets are encrypted with: each distinct one once, concurrently."""
        arns = {arn for svc in services if svc.primary
                for _, arn in injected_secrets(task_defs.get(str(svc.primary.get("taskDefinition"))) or {})}
        secrets = self.refs.secret_states(arns) if arns else {}
        wanted = {(arn_parts(s.arn)[3] or None, s.kms_key) for s in secrets.values()
                  if isinstance(s, SecretState) and s.kms_key and arn_parts(s.arn)}
        return secrets, self.refs.key_states(wanted) if wanted else {}

    @staticmethod
    def _add_ref(refs: dict[str, ImageRef], uri: str) -> None:
        try:
            ref = ImageRef.parse(uri)
        except InputError:
            return
        if ref.is_ecr:
            refs[ref.uri] = ref

    def _task_definition(self, arn: str) -> dict[str, Any] | GatewayError | None:
        try:
            return self.ecs.task_definition(arn)
        except GatewayError as exc:
            return exc

    def _functions(self, scope: WatchScope, pool: ThreadPoolExecutor,
                   errors: list[tuple[str, GatewayError]]) -> list[FunctionView]:
        try:
            names = list(scope.functions) if scope.functions is not None else \
                self.lambdas.list_image_functions(scope.region)
        except GatewayError as exc:
            errors.append(("lambda:*", exc))
            return []
        out = []
        for name, got in zip(names, pool.map(self._function, names), strict=True):
            if isinstance(got, GatewayError):
                errors.append((f"lambda:{name}", got))
            elif got is not None and got.get("Configuration", {}).get("PackageType") == "Image":
                out.append(FunctionView(name, got["Configuration"], str(got.get("Code", {}).get("ImageUri", ""))))
        return out

    def _function(self, name: str) -> dict[str, Any] | GatewayError | None:
        try:
            return self.lambdas.function(name)
        except GatewayError as exc:
            return exc

    # -- judging -----------------------------------------------------------------------------------
    def sweep(self, scope: WatchScope, *, debug: bool = False) -> WatchReport:
        """One sweep: collect, watch, triage against stored incidents, record known-good, heartbeat."""
        started = time.monotonic()
        snap = self.collect(scope)
        signals: list[Signal] = []
        unverified = [Unverified(UNREADABLE, target, str(exc), exc.code) for target, exc in snap.errors]
        for cls in all_watchers().values():
            try:
                for item in cls().run(snap):
                    (signals if isinstance(item, Signal) else unverified).append(item)  # type: ignore[arg-type]
            except Exception as exc:
                if debug:
                    traceback.print_exc(file=sys.stderr)
                unverified.append(Unverified(CRASHED, "*", f"watcher {cls.id} crashed: {type(exc).__name__}: "
                                             f"{exc}", "Crash"))
        current = coalesce(signals, snap.now)
        result: list[TriageResult] = []

        def apply(previous: dict[str, Incident], last_resolved: dict[tuple[Cause, str], str]) -> list[Incident]:
            res = reconcile(previous, current, snap.now, in_scope=scope.covers, allow_resolve=not unverified,
                            last_resolved=last_resolved)
            result[:] = [res]
            return [*res.state.values(), *res.resolved]

        update_incidents(self.store, snap.now.isoformat(), apply)
        triage = result[0]
        known_good = self._record_known_good(snap, signals)
        sent = self._notify(triage)
        write_heartbeat(self.store, {"swept_at": snap.now.isoformat(), "services": len(snap.services),
                                     "functions": len(snap.functions), "open_incidents": len(triage.state),
                                     "errors": len(snap.errors)})
        if self.heartbeat:
            try:
                send_heartbeat(self.home, self.aws.stats, {"open_incidents": len(triage.state),
                                                           "services": len(snap.services),
                                                           "unverified": len(unverified)},
                               shard=self.shard, verified=not unverified)
            except NotifyError as exc:
                sent.append(RouteResult("heartbeat", False, str(exc)))
        incidents = tuple(sorted(triage.state.values(), key=lambda i: (-i.severity.rank, i.id)))
        findings = [Finding(i.id, i.severity, ",".join(i.resources), i.title) for i in incidents]
        failed_routes = [Unverified(UNDELIVERED, r.route, f"notification not delivered: {r.error}", "NotifyFailed")
                         for r in sent if not r.ok]
        code = exit_code(findings, [*unverified, *failed_routes])
        return WatchReport(incidents, triage, tuple(signals), (*unverified, *failed_routes), known_good,
                           self.aws.stats.to_json(), round(time.monotonic() - started, 3), code,
                           snap.now.isoformat(), len(snap.services), len(snap.functions), tuple(sent))

    def _notify(self, triage: TriageResult) -> list[RouteResult]:
        """One notification per opened, materially updated or resolved incident, through every route.

        A delivery that failed is kept (per route) and retried by the next sweep, so a route that was
        down never silently swallows an alert; retries for incidents resolved since are dropped.
        """
        observe = ("nothing: the watchdog observes and reports; remediation is a separate, gated step",)
        messages = [Notification.from_incident(i, NotificationKind.INCIDENT_OPENED, observe) for i in triage.opened]
        messages += [Notification.from_incident(i, NotificationKind.INCIDENT_UPDATED, observe)
                     for i in triage.updated]
        messages += [Notification.from_incident(i, NotificationKind.INCIDENT_RESOLVED) for i in triage.resolved]
        fresh = {m.incident_id for m in messages}
        pending = undelivered(self.store)
        jobs = [(r, m) for r in self.routes for m in messages]
        by_name = {r.name: r for r in self.routes}
        for item in pending:
            note = Notification.from_json(item["notification"])
            route = by_name.get(str(item["route"]))
            if route is not None and note.incident_id not in fresh and (
                    note.incident_id in triage.state or note.kind is NotificationKind.INCIDENT_RESOLVED):
                jobs.append((route, note))
        results: list[RouteResult] = []
        failed: list[dict[str, Any]] = []
        for route, note in jobs:
            [result] = dispatch([route], note)
            results.append(result)
            if not result.ok:
                failed.append({"route": route.name, "notification": note.to_json()})
        if failed or pending:
            set_undelivered(self.store, failed)
        return results

    def _record_known_good(self, snap: Snapshot, signals: Sequence[Signal]) -> tuple[str, ...]:
        """Remember every steady, signal-free service whose images all exist, and every healthy function."""
        troubled = {s.resource for s in signals}
        services: dict[tuple[str, str], ServiceRecord] = {}
        for svc in snap.services:
            primary = svc.primary
            if not svc.steady or svc.resource in troubled or primary is None:
                continue
            td_arn = str(primary.get("taskDefinition"))
            td = snap.task_definitions.get(td_arn) or {}
            digests: dict[str, str] = {}
            ok = True
            for c in td.get("containerDefinitions", []):
                answer = snap.images.get(str(c.get("image")))
                if isinstance(answer, ImageInfo):
                    ok = ok and answer.status is ImageStatus.PRESENT
                    digests[str(c.get("image"))] = answer.digest or ""
                elif answer is not None:
                    ok = False
            if ok:
                services[(svc.cluster, svc.name)] = ServiceRecord(td_arn, digests, str(primary.get("id", "")),
                                                                  snap.now.isoformat())
        functions: dict[str, FunctionRecord] = {}
        for fn in snap.functions:
            cfg = fn.config
            if fn.resource in troubled or cfg.get("State") != "Active" or cfg.get("LastUpdateStatus") == "Failed":
                continue
            image = snap.images.get(fn.image_uri)
            if not (isinstance(image, ImageInfo) and image.status is ImageStatus.PRESENT and image.digest):
                continue
            functions[fn.name] = FunctionRecord(fn.image_uri, image.digest, str(cfg.get("CodeSha256", "")),
                                                str(cfg.get("Version", "")), snap.now.isoformat())
        return remember_known_good(self.store, services, functions)


def watch_loop(dog: Watchdog, scope: WatchScope, interval_s: float, *, once: bool = False, debug: bool = False,
               sleep: Callable[[float], None] | None = None,
               clock: Callable[[], float] | None = None) -> Iterator[WatchReport]:
    """Sweep every `interval_s`, start to start, yielding each report; one sweep when `once`.

    `sleep` and `clock` default to time.sleep and time.monotonic. A sweep (with its report's handling) that
    overruns the interval is logged as a warning and the next one starts at once, without catching up.
    Each report counts only its own sweep's API calls.
    """
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    due = clock()
    while True:
        dog.aws.stats.reset()
        started = clock()
        yield dog.sweep(scope, debug=debug)
        if once:
            return
        due += interval_s
        now = clock()
        if now > due:
            log.warning("sweep took %.1fs, longer than the %gs interval: starting the next sweep now",
                        now - started, interval_s)
            due = now
        else:
            sleep(due - now)

"""The Watcher base class and the read-only Snapshot of live state every watcher reads."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from guard.errors import GatewayError
from guard.gateways.ecr import ImageInfo, ImageStatus
from guard.gateways.refs import KeyState, SecretState, arn_parts
from guard.lifecycle_policy import LifecycleHorizon, PolicyPreview, RepositoryLifecycle
from guard.models import Cause, ImageRef, InputError, Severity, Signal, Unverified
from guard.reasons import Diagnosis, diagnose_task, launch_failures, secret_named


@dataclass(frozen=True)
class WatchSettings:
    """Thresholds; defaults follow ECS behaviour (stopped tasks are kept about an hour)."""

    lookback: timedelta = timedelta(minutes=30)
    stall_after: timedelta = timedelta(minutes=30)
    below_desired_grace: timedelta = timedelta(minutes=10)
    crash_threshold: int = 3
    lifecycle: LifecycleHorizon = field(default_factory=LifecycleHorizon)  # lifecycle forecasts (IMG101)


@dataclass(frozen=True)
class ServiceView:
    """One ECS service as DescribeServices returned it."""

    cluster: str
    raw: Mapping[str, Any]

    @property
    def name(self) -> str:
        """Service name."""
        return str(self.raw["serviceName"])

    @property
    def resource(self) -> str:
        """`ecs:CLUSTER/SERVICE`."""
        return f"ecs:{self.cluster}/{self.name}"

    @property
    def deployments(self) -> list[Mapping[str, Any]]:
        """Deployments, PRIMARY first."""
        deps = list(self.raw.get("deployments", []))
        return sorted(deps, key=lambda d: d.get("status") != "PRIMARY")

    @property
    def primary(self) -> Mapping[str, Any] | None:
        """The PRIMARY deployment, if any."""
        deps = self.deployments
        return deps[0] if deps and deps[0].get("status") == "PRIMARY" else None

    @property
    def steady(self) -> bool:
        """One deployment, COMPLETED (or no rollout state), running == desired > 0."""
        p = self.primary
        return (p is not None and len(self.deployments) == 1 and p.get("rolloutState", "COMPLETED") == "COMPLETED"
                and int(self.raw.get("desiredCount", 0)) > 0
                and int(self.raw.get("runningCount", 0)) == int(self.raw.get("desiredCount", 0)))


@dataclass(frozen=True)
class FunctionView:
    """One image-based Lambda function as GetFunction returned it."""

    name: str
    config: Mapping[str, Any]
    image_uri: str

    @property
    def resource(self) -> str:
        """`lambda:FUNCTION`."""
        return f"lambda:{self.name}"


@dataclass(frozen=True)
class ImageUse:
    """An ECR image a resource runs now: its reference and its digests (resolved now, pinned by tasks, or code)."""

    resource: str
    what: str
    ref: ImageRef
    digests: frozenset[str]
    consequence: str


@dataclass(frozen=True)
class Snapshot:
    """Everything one sweep read, so watchers never call AWS themselves."""

    now: datetime
    services: tuple[ServiceView, ...] = ()
    task_definitions: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    stopped_tasks: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    images: Mapping[str, Any] = field(default_factory=dict)
    functions: tuple[FunctionView, ...] = ()
    settings: WatchSettings = WatchSettings()
    errors: tuple[tuple[str, GatewayError], ...] = ()
    roles: Mapping[str, Any] = field(default_factory=dict)
    # secret ARN -> SecretState | RefStatus | GatewayError; (region, KmsKeyId) -> KeyState | RefStatus | GatewayError
    secrets: Mapping[str, Any] = field(default_factory=dict)
    keys: Mapping[tuple[str | None, str], Any] = field(default_factory=dict)
    # (account, region, repository) in use -> RepositoryLifecycle | GatewayError; service resource -> its running
    # tasks (their containers' pinned imageDigest), read only for services whose repositories have a policy
    lifecycles: Mapping[tuple[str, str, str], Any] = field(default_factory=dict)
    running_tasks: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    # (account, region, repository) -> ECR's lifecycle policy preview, asked only where the evaluator says an image
    # in use expires now or cannot read the policy
    previews: Mapping[tuple[str, str, str], PolicyPreview] = field(default_factory=dict)

    def image_uses(self) -> list[ImageUse]:
        """The ECR images in use: each container of a service's PRIMARY task definition (the digest its reference
        resolves to now and those its running tasks were pinned to) and each image Lambda function's current code."""
        uses: list[ImageUse] = []
        for svc in self.services:
            dep = svc.primary
            td = self.task_definitions.get(str(dep.get("taskDefinition"))) if dep else None
            for c in (td or {}).get("containerDefinitions", []):
                name = str(c.get("name"))
                pinned = {str(k.get("imageDigest")) for t in self.running_tasks.get(svc.resource, ())
                          for k in t.get("containers", []) if k.get("name") == name and k.get("imageDigest")}
                uses += self._use(svc.resource, f"container {name}", str(c.get("image", "")), pinned,
                                  "the next task start fails with CannotPullContainerError")
        for fn in self.functions:
            if fn.config.get("State") == "Failed":
                continue
            code = str(fn.config.get("CodeSha256", ""))
            uses += self._use(fn.resource, f"function {fn.name}", fn.image_uri, {f"sha256:{code}"} if code else set(),
                              "Lambda then fails the function")
        return uses

    def _use(self, resource: str, what: str, uri: str, pinned: set[str], consequence: str) -> list[ImageUse]:
        try:
            ref = ImageRef.parse(uri)
        except InputError:
            return []
        repo, info = self.lifecycles.get(ref.key), self.images.get(ref.uri)
        known = {i.digest for i in repo.images} | set(repo.children) if isinstance(repo, RepositoryLifecycle) else set()
        digests = {d for d in pinned if d in known}
        if isinstance(info, ImageInfo) and info.status is ImageStatus.PRESENT and info.digest:
            digests.add(info.digest)
        return [ImageUse(resource, what, ref, frozenset(digests), consequence)]

    def diagnose(self, task: Mapping[str, Any]) -> Diagnosis | None:
        """Why `task` stopped (`diagnose_task`); a secret it could not fetch whose KMS key this snapshot read as
        PendingDeletion or Disabled is that key's failure, whatever words ECS used (a key named or not, an access
        denial), so it joins ECS108's incident."""
        found = diagnose_task(task, self.task_definitions.get(str(task.get("taskDefinitionArn"))))
        secret = secret_named(task) if found is not None else None
        for ref, state in self.secrets.items() if secret else ():
            if ":".join(ref.split(":")[:7]) == secret and isinstance(state, SecretState) and state.kms_key:
                key = self.keys.get(((arn_parts(ref) or [""] * 4)[3] or None, state.kms_key))
                if isinstance(key, KeyState) and key.state in ("PendingDeletion", "Disabled"):
                    return Diagnosis(Cause.SECRET, key.arn, f"the KMS key of a secret the task injects cannot "
                                     f"decrypt it ({secret}: key {key.state})")
        return found

    def recent_stopped(self, service: ServiceView) -> list[Mapping[str, Any]]:
        """The service's tasks stopped within the lookback window, newest first.

        Failures before the service's last "has reached a steady state" event are history; while it is
        steady, only its current deployment's tasks count (ECS sets `startedBy` to the deployment ID).
        """
        steady = [as_datetime(e.get("createdAt")) for e in service.raw.get("events", [])
                  if "has reached a steady state" in str(e.get("message", ""))]
        horizon = max([self.now - self.settings.lookback, *steady])
        current = str((service.primary or {}).get("id", "")) if service.steady else ""
        tasks = [t for t in self.stopped_tasks.get(service.resource, ())
                 if as_datetime(t.get("stoppedAt") or t.get("createdAt")) >= horizon
                 and (not current or t.get("startedBy") == current)]
        return sorted(tasks, key=lambda t: as_datetime(t.get("stoppedAt") or t.get("createdAt")), reverse=True)

    def launch_failures(self, service: ServiceView, task_definition: str) -> list[tuple[datetime, Diagnosis]]:
        """Why ECS launched no task of `task_definition`, from the service's events (DescribeServices carries them)
        since its deployment started and the service last reached a steady state: (when, diagnosis), newest first."""
        dep = next((d for d in service.deployments if d.get("taskDefinition") == task_definition), None)
        return launch_failures(service.raw.get("events", []), as_datetime((dep or {}).get("createdAt")),
                               self.task_definitions.get(task_definition), str(service.raw.get("clusterArn", "")))

    def attribute(self, service: ServiceView, task_definition: str) -> Diagnosis | None:
        """The cause recent failed starts of `task_definition` show (stopped tasks, then launch failures in the
        service's events), so a rollout symptom joins its cause."""
        for task in self.recent_stopped(service):
            if task.get("taskDefinitionArn") != task_definition:
                continue
            found = self.diagnose(task)
            if found is not None:
                return found
        launches = self.launch_failures(service, task_definition)
        return launches[0][1] if launches else None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_datetime(value: Any) -> datetime:
    """An AWS timestamp (datetime from boto3, ISO text or epoch seconds) as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            return as_datetime(datetime.fromisoformat(value))
        except ValueError:
            return EPOCH
    return EPOCH


class Watcher(ABC):
    """A post-deploy watcher over a Snapshot; it never raises for a business condition."""

    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity]
    proves: ClassVar[str]
    cannot_prove: ClassVar[str]

    def signal(self, resource: str, cause: Cause, key: str, message: str, *, since: datetime | None = None,
               latent: bool = False, severity: Severity | None = None,
               **evidence: str | int | bool | list[str] | None) -> Signal:
        """Build a signal of this watcher."""
        return Signal(self.id, severity or self.severity, resource, cause, key, message,
                      since.isoformat() if since else "", evidence, latent)

    def unverified(self, target: str, reason: object) -> Unverified:
        """Build an unverified outcome of this watcher."""
        return Unverified(self.id, target, str(reason), getattr(reason, "code", ""))

    @abstractmethod
    def run(self, snap: Snapshot) -> Iterable[Signal | Unverified]:
        """Yield signals (and unverified outcomes) for the snapshot."""

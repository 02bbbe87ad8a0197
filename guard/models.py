"""Frozen value types shared by the gate, the checks and the reports."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

CheckId = NewType("CheckId", str)

_ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)
# Any host shaped like a private ECR registry, to tell a malformed account or region from "not ECR".
_ECR_SHAPED = re.compile(
    r"^(?P<account>[^./]+)\.dkr\.ecr(?:-fips)?\.(?P<region>[^./]+)\.amazonaws\.com(?:\.cn)?$", re.IGNORECASE
)
_REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_TEMPLATE = re.compile(r"<[A-Za-z][\w.-]*>|\$\{[^}]*\}|\{\{.*?\}\}|#\{[^}]*\}")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_MUTABLE_TAGS = frozenset({"latest", "main", "master", "develop", "dev", "staging", "prod", "production",
                           "stable", "edge", "nightly", "head", "trunk"})


class Severity(StrEnum):
    """How bad a finding is; ordered ERROR > WARNING > INFO."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Numeric order for comparisons (higher is worse)."""
        return {"info": 0, "warning": 1, "error": 2}[self.value]


class Architecture(StrEnum):
    """CPU architectures in the image-config vocabulary (`amd64`, `arm64`)."""

    AMD64 = "amd64"
    ARM64 = "arm64"

    @classmethod
    def parse(cls, value: str) -> Architecture | None:
        """Map ECS (`X86_64`, `ARM64`), Lambda (`x86_64`, `arm64`) and OCI names to one value."""
        v = value.strip().lower().replace("-", "_")
        if v in ("x86_64", "amd64", "x64"):
            return cls.AMD64
        if v in ("arm64", "aarch64", "arm64v8"):
            return cls.ARM64
        return None


class InputError(Exception):
    """Bad input from the user: exit 2, nothing has been done."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed container image reference; `registry` is the host part or Docker Hub."""

    uri: str
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    account: str | None = None
    region: str | None = None
    problem: str | None = None  # why the reference can never be pulled (set for ECR-shaped hosts and templates)

    @property
    def is_ecr(self) -> bool:
        """True for private ECR registries (account and region known from the host)."""
        return self.account is not None

    @property
    def key(self) -> tuple[str, str, str]:
        """(account, region, repository): the unit ECR batches on."""
        return (self.account or "", self.region or "", self.repository)

    @property
    def reference(self) -> str:
        """The digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def display(self) -> str:
        """`repo@sha256:...` when pinned to a digest, else `repo:tag`."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}" if self.tag else self.uri

    @property
    def is_template(self) -> bool:
        """True when the reference is an unrendered template placeholder (`<IMAGE1_NAME>`, `${...}`, `{{...}}`)."""
        return template_placeholder(self.uri) is not None

    @property
    def mutable_tag(self) -> bool:
        """A tag that routinely moves (latest, branch names) and no digest pin."""
        if self.digest or self.problem:
            return False
        tag = (self.tag or "latest").lower()
        return tag in _MUTABLE_TAGS or tag.startswith(("branch-", "feature-", "pr-"))

    @classmethod
    def parse(cls, uri: str) -> ImageRef:
        """Parse `host/repo[:tag][@sha256:...]`; raise InputError on nonsense.

        A template placeholder or an ECR-shaped host with a malformed account or region parses, with
        `problem` saying why it can never be pulled: it is a finding about the deploy, not unreadable input.
        """
        raw = uri.strip()
        placeholder = template_placeholder(raw)
        if placeholder is not None:
            return cls(uri=raw, registry="", repository=raw, tag=None,
                       problem=f"{placeholder!r} is an unrendered template placeholder")
        if not raw or any(c.isspace() for c in raw) or raw.startswith(("/", ":", "@")) or raw.endswith(":"):
            raise InputError(f"not an image reference: {uri!r}")
        rest, digest = raw, None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            if not _DIGEST.match(digest):
                raise InputError(f"image {uri!r}: digest must be sha256:<64 hex>, got {digest!r}")
        first, sep, remainder = rest.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, remainder
        else:
            registry, path = "docker.io", rest
        tag = None
        slash = path.rfind("/")
        colon = path.rfind(":")
        if colon > slash:
            path, tag = path[:colon], path[colon + 1 :]
            if not re.fullmatch(r"[\w][\w.-]{0,127}", tag):
                raise InputError(f"image {uri!r}: invalid tag {tag!r}")
        if not path or not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+|__[a-z0-9]+)*", path):
            raise InputError(f"image {uri!r}: invalid repository name {path!r}")
        if tag is None and digest is None:
            tag = "latest"
        problem = ecr_host_problem(registry)
        m = None if problem else _ECR_HOST.match(registry)
        return cls(
            uri=raw,
            registry=registry,
            repository=path,
            tag=tag,
            digest=digest,
            account=m.group("account") if m else None,
            region=m.group("region") if m else None,
            problem=problem,
        )


def template_placeholder(text: str) -> str | None:
    """The first unrendered template placeholder in `text` (`<IMAGE1_NAME>`, `${...}`, `{{...}}`), or None."""
    m = _TEMPLATE.search(text)
    return m.group(0) if m else None


def ecr_host_problem(host: str) -> str | None:
    """Why an ECR-shaped registry host can never be pulled from (bad account or region), or None."""
    m = _ECR_SHAPED.match(host)
    if m is None:
        return None
    problems = []
    if not _ACCOUNT.match(m.group("account")):
        problems.append(f"account {m.group('account')!r} is not a 12-digit AWS account ID")
    if not _REGION.match(m.group("region")):
        problems.append(f"region {m.group('region')!r} is not an AWS region name")
    if problems:
        return "; ".join(problems)
    return None if _ECR_HOST.match(host) else f"host {host!r} is not a valid ECR registry host (lower-case only)"


def account_problem(arn: str) -> str | None:
    """Why an ARN's account field can never name a real account (placeholder, not 12 digits), or None."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    placeholder = template_placeholder(arn)
    if placeholder is not None:
        return f"{placeholder!r} is an unrendered template placeholder"
    if parts[4] and not _ACCOUNT.match(parts[4]):
        return f"account {parts[4]!r} is not a 12-digit AWS account ID"
    if parts[3] and not _REGION.match(parts[3]):
        return f"region {parts[3]!r} is not an AWS region name"
    return None


class TargetKind(StrEnum):
    """What a deploy target is."""

    TASK_DEFINITION = "ecs_task_definition"
    SERVICE = "ecs_service"
    LAMBDA = "lambda_function"


@dataclass(frozen=True)
class Container:
    """One container of a target (a Lambda function is a single container)."""

    name: str
    image: ImageRef | None
    image_unknown: bool = False
    essential: bool = True
    environment: tuple[str, ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()
    ports: tuple[str, ...] = ()
    health_check: str | None = None


@dataclass(frozen=True)
class Target:
    """One thing a deploy changes: a task definition, a service's containers, or a Lambda function."""

    kind: TargetKind
    name: str
    source: str
    containers: tuple[Container, ...] = ()
    architecture: Architecture | None = None
    architecture_declared: bool = False
    execution_role: str | None = None
    task_role: str | None = None
    log_groups: tuple[str, ...] = ()
    region: str | None = None
    unknown: tuple[str, ...] = ()

    @property
    def images(self) -> tuple[ImageRef, ...]:
        """Every known image reference of the target."""
        return tuple(c.image for c in self.containers if c.image is not None)


@dataclass(frozen=True)
class DeployPlan:
    """The normalised description of what is about to be deployed."""

    targets: tuple[Target, ...]

    def images(self) -> tuple[ImageRef, ...]:
        """Distinct image references across all targets, in first-seen order."""
        seen: dict[str, ImageRef] = {}
        for t in self.targets:
            for ref in t.images:
                seen.setdefault(ref.uri, ref)
        return tuple(seen.values())

    def __add__(self, other: DeployPlan) -> DeployPlan:
        return DeployPlan(self.targets + other.targets)


Evidence = Mapping[str, str | int | float | bool | list[str] | None]


@dataclass(frozen=True)
class Finding:
    """A fact a check established about a target."""

    check_id: str
    severity: Severity
    target: str
    message: str
    evidence: Evidence = field(default_factory=dict)
    remediation: str = ""

    @property
    def fingerprint(self) -> str:
        """Deterministic identity: same check, target and evidence -> same fingerprint."""
        blob = json.dumps([self.check_id, self.target, dict(self.evidence)], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, object]:
        """The stable JSON shape of a finding."""
        return {
            "check_id": self.check_id,
            "severity": self.severity.value,
            "target": self.target,
            "message": self.message,
            "evidence": dict(self.evidence),
            "remediation": self.remediation,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Unverified:
    """A check could not establish the facts (throttled, denied, unreachable, or it crashed)."""

    check_id: str
    target: str
    reason: str
    error_code: str = ""

    def to_json(self) -> dict[str, object]:
        """The stable JSON shape of an unverified outcome."""
        return {"check_id": self.check_id, "target": self.target, "reason": self.reason,
                "error_code": self.error_code}


class Cause(StrEnum):
    """Why something is failing, parsed from ECS/Lambda reasons; keys incident coalescing and playbooks."""

    MISSING_IMAGE = "missing_image"
    WRONG_ARCH = "wrong_arch"
    REGISTRY_AUTH = "registry_auth"
    NETWORK = "network"
    SECRET = "secret"
    EXECUTION_ROLE = "execution_role"
    CRASH = "crash"
    ROLLOUT_FAILED = "rollout_failed"
    STALLED = "stalled"
    LAMBDA_FAILED = "lambda_failed"
    IMAGE_EXPIRY = "image_expiry"  # a lifecycle policy will expire an image in use (a forecast)
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Signal:
    """One observation by a watcher: what, where, since when, why (as far as can be told), and evidence.

    `resource` is `ecs:CLUSTER/SERVICE` or `lambda:FUNCTION`; `cause_key` names the shared cause (an image
    URI, a role ARN, a secret ARN) so that signals with one cause coalesce into one incident.
    """

    watcher_id: str
    severity: Severity
    resource: str
    cause: Cause
    cause_key: str
    message: str
    since: str = ""
    evidence: Evidence = field(default_factory=dict)
    latent: bool = False

    def to_json(self) -> dict[str, object]:
        """The stable JSON shape of a signal."""
        return {"watcher_id": self.watcher_id, "severity": self.severity.value, "resource": self.resource,
                "cause": self.cause.value, "cause_key": self.cause_key, "message": self.message,
                "since": self.since, "evidence": dict(self.evidence), "latent": self.latent}


class IncidentStatus(StrEnum):
    """Lifecycle of an incident in the watchdog's state."""

    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Incident:
    """Signals with one cause, coalesced; `id` (INC-<hash>) is stable while open, new on a recurrence."""

    id: str
    severity: Severity
    cause: Cause
    cause_key: str
    title: str
    resources: tuple[str, ...]
    signals: tuple[Signal, ...]
    first_seen: str
    last_seen: str
    status: IncidentStatus = IncidentStatus.OPEN
    latent: bool = False
    previous: str = ""  # the resolved incident of the same cause this one is a recurrence of

    def to_json(self) -> dict[str, object]:
        """The stable JSON shape of an incident (`previous` only on a recurrence)."""
        doc: dict[str, object] = {
            "id": self.id, "severity": self.severity.value, "cause": self.cause.value,
            "cause_key": self.cause_key, "title": self.title, "resources": list(self.resources),
            "signals": [s.to_json() for s in self.signals], "first_seen": self.first_seen,
            "last_seen": self.last_seen, "status": self.status.value, "latent": self.latent}
        if self.previous:
            doc["previous"] = self.previous
        return doc

"""The Action base class: a typed, serialisable request with a precondition, an execution, a postcondition."""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from guard.discovery import discover
from guard.gateways.aws import AwsSession
from guard.models import InputError
from guard.progress import next_poll, waiting

if TYPE_CHECKING:
    from guard.gateways.github import PyGithubGateway
    from guard.notify.routes import Route


@dataclass(frozen=True)
class Outcome:
    """A checked condition: ok or not, why, and what was seen."""

    ok: bool
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    done_already: bool = False


def _github_from_env(aws: AwsSession) -> PyGithubGateway:
    from guard.gateways.github import PyGithubGateway

    return PyGithubGateway.from_env(aws.stats)


@dataclass
class ActionContext:
    """Write-capable ports for executors, plus the waiting policy (the sandbox ticks instead of sleeping)."""

    aws: AwsSession
    wait: Callable[[float], None] = field(default=lambda seconds: time.sleep(seconds))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    timeout_s: float = 900.0
    poll_s: float = 15.0
    progress: Callable[[str], None] = field(default=lambda message: None)
    routes: Sequence[Route] = ()
    github_factory: Callable[[AwsSession], PyGithubGateway] = _github_from_env
    _github: PyGithubGateway | None = None

    @property
    def github(self) -> PyGithubGateway:
        """The GitHub gateway, built on first use from GITHUB_API_URL / GITHUB_TOKEN."""
        if self._github is None:
            self._github = self.github_factory(self.aws)
        return self._github

    def until(self, what: str, probe: Callable[[], Outcome]) -> Outcome:
        """Poll `probe` until ok or the timeout, waiting (through the injected sleeper) `next_poll` between polls."""
        waited = 0.0
        with waiting(self.progress, what, self.timeout_s) as update:
            while True:
                result = probe()
                if result.ok or waited >= self.timeout_s:
                    return result if result.ok else Outcome(False, f"timed out after {waited:.0f}s waiting for "
                                                                   f"{what}: {result.reason}", result.evidence)
                update(waited, result.reason)
                delay = next_poll(waited, self.poll_s)
                self.wait(delay)
                waited += delay


class Action(ABC):
    """One remediation step. Subclasses are frozen dataclasses, one per module under `rollback/`.

    Traits, as class attributes: `always_allowed` means the policy gate allows it whatever the mode,
    allowlist, caps and kill switch (telling people is never the risky part); `counts_toward_cap` means it
    counts toward the per-incident cap and the hourly rate; `iam_actions` are the IAM actions its
    precondition, execution and postcondition call (the remediate role of `guard iam-policy` grants them).
    """

    kind: ClassVar[str]
    title: ClassVar[str]
    always_allowed: ClassVar[bool] = False
    counts_toward_cap: ClassVar[bool] = True
    iam_actions: ClassVar[frozenset[str]]

    @property
    @abstractmethod
    def resource(self) -> str:
        """What the action changes, as the policy allowlist names it (`ecs:C/S`, `lambda:F`, `github:o/r`)."""

    @property
    def params(self) -> dict[str, Any]:
        """The action's fields, JSON-serialisable."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @property
    def action_id(self) -> str:
        """Deterministic: the same action on the same target has the same ID (so a rerun can resume)."""
        blob = json.dumps([self.kind, self.params], sort_keys=True, default=str)
        return f"{self.kind}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def to_json(self) -> dict[str, Any]:
        """`{"kind", "params", "action_id", "resource", "description"}`."""
        return {"kind": self.kind, "params": self.params, "action_id": self.action_id, "resource": self.resource,
                "description": self.describe()}

    @abstractmethod
    def describe(self) -> str:
        """One line a person can approve or refuse."""

    @abstractmethod
    def precondition(self, ctx: ActionContext) -> Outcome:
        """Re-checked immediately before acting; `done_already` when the target state already holds."""

    @abstractmethod
    def execute(self, ctx: ActionContext) -> None:
        """Make the change (idempotent: safe to repeat after a crash)."""

    @abstractmethod
    def postcondition(self, ctx: ActionContext) -> Outcome:
        """Verify the outcome (waiting for it through `ctx.until`)."""


@cache
def action_types() -> dict[str, type[Action]]:
    """Every concrete action under the `rollback` package, by kind."""
    return discover("rollback", (Action,), lambda cls: cls.kind, what="action kind")


def make_action(kind: str, **params: Any) -> Action:
    """Build an action by kind through the registry (guard never imports a specific action)."""
    cls: Any = action_types()[kind]
    action: Action = cls(**params)
    return action


def action_from_json(doc: Mapping[str, Any]) -> Action:
    """Rebuild an action from `Action.to_json` (a journal entry or a model's proposal)."""
    kind = doc.get("kind")
    cls = action_types().get(str(kind))
    if cls is None:
        raise InputError(f"unknown action kind {kind!r}; known: {', '.join(sorted(action_types()))}")
    params = doc.get("params")
    if not isinstance(params, Mapping):
        raise InputError(f"action {kind}: params must be an object")
    names = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(params) - set(names))
    missing = sorted(n for n, f in names.items()
                     if n not in params and f.default is MISSING and f.default_factory is MISSING)
    if unknown or missing:
        raise InputError(f"action {kind}: unknown params {unknown}, missing params {missing}")
    for name, value in params.items():
        if not isinstance(value, str | int | list | tuple) or isinstance(value, bool):
            raise InputError(f"action {kind}: param {name} has an unsupported type")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    return cls(**converted)

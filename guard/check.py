"""The Check base class: metadata as class attributes, results as frozen values."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from guard.models import DeployPlan, Finding, Severity, Unverified

if TYPE_CHECKING:
    from guard.context import CheckContext

Result = Finding | Unverified


class Check(ABC):
    """A pre-deploy check over a whole DeployPlan (so it can batch its lookups).

    A check never raises for a business condition: it yields findings. A lookup that could not be made
    yields `Unverified`. An exception escaping `run` is turned into a GRD000 unverified result.
    """

    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity]
    proves: ClassVar[str]
    cannot_prove: ClassVar[str]

    def __init__(self, severity: Severity | None = None) -> None:
        self.effective_severity = severity or self.severity

    def finding(self, target: str, message: str, *, severity: Severity | None = None,
                remediation: str = "", **evidence: str | int | bool | list[str] | None) -> Finding:
        """Build a finding of this check (default severity unless overridden)."""
        sev = severity if severity is not None else self.effective_severity
        return Finding(self.id, sev, target, message, evidence, remediation)

    def unverified(self, target: str, reason: object, code: str = "") -> Unverified:
        """Build an unverified outcome of this check."""
        return Unverified(self.id, target, str(reason), code or getattr(reason, "code", ""))

    @abstractmethod
    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterable[Result]:
        """Yield findings and unverified outcomes for the plan."""

"""The four exit codes, decided by one pure function."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from guard.models import Finding, Severity, Unverified


class ExitCode(IntEnum):
    """0 clean, 1 findings at or above --fail-on, 2 usage or input error, 3 could not verify."""

    CLEAN = 0
    FINDINGS = 1
    USAGE = 2
    UNVERIFIED = 3


def exit_code(findings: Iterable[Finding], unverified: Iterable[Unverified], *,
              fail_on: Severity = Severity.ERROR, allow_unverified: bool = False) -> ExitCode:
    """3 if anything is unverified (unless allowed), else 1 if a finding reaches `fail_on`, else 0."""
    if not allow_unverified and any(True for _ in unverified):
        return ExitCode.UNVERIFIED
    if any(f.severity.rank >= fail_on.rank for f in findings):
        return ExitCode.FINDINGS
    return ExitCode.CLEAN

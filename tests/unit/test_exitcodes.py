"""The exit-code function over its whole grid."""

from __future__ import annotations

import itertools

import pytest

from guard.exitcodes import ExitCode, exit_code
from guard.models import Finding, Severity, Unverified


def _f(sev: Severity) -> Finding:
    return Finding("IMG001", sev, "t", "m")


@pytest.mark.parametrize(
    ("worst", "unverified", "fail_on", "allow"),
    list(itertools.product([None, *Severity], [False, True], list(Severity), [False, True])),
)
def test_grid(worst: Severity | None, unverified: bool, fail_on: Severity, allow: bool) -> None:
    findings = [_f(worst)] if worst else []
    unv = [Unverified("IMG001", "t", "throttled")] if unverified else []
    got = exit_code(findings, unv, fail_on=fail_on, allow_unverified=allow)
    if unverified and not allow:
        assert got is ExitCode.UNVERIFIED
    elif worst is not None and worst.rank >= fail_on.rank:
        assert got is ExitCode.FINDINGS
    else:
        assert got is ExitCode.CLEAN


def test_values_are_the_documented_ones() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3]

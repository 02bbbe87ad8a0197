"""Real terraform in the tests: `guard.sandbox.terraform` does the work; this plugin says which tests need it.

A test needs terraform when it carries the `terraform` marker or its module uses the terraform helpers (this
module or `tests.support.tf_module`). Without terraform or the provider mirror such tests skip, naming what is
missing, and the run ends with "terraform: N tests ran, M skipped (reason)". The line is counted from the test
reports where they arrive (pytest-xdist's controller included), so it is right with `-n auto`.
"""

from __future__ import annotations

import inspect

import pytest

from guard.sandbox.terraform import Workspace, unavailable_reason, workspace

__all__ = ["Workspace", "skip_reason", "workspace"]

MARKER = "terraform"
_HELPERS = ("tests.support.terraform", "tests.support.tf_module")


def skip_reason() -> str | None:
    """Why tests that need real terraform skip here, or None."""
    return unavailable_reason()


def uses_terraform(module: object) -> bool:
    """Whether a test module uses the terraform helpers (imports one of them, or a name from one)."""
    return any(getattr(inspect.getmodule(value), "__name__", None) in _HELPERS for value in vars(module).values()
               if inspect.ismodule(value) or callable(value))


class TerraformTally:
    """A plugin object counting the terraform tests' reports: which ran (their call phase), which skipped, why."""

    def __init__(self) -> None:
        self.ran: set[str] = set()
        self.skipped: dict[str, str] = {}  # nodeid -> reason

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Count one report of a terraform test."""
        if MARKER not in report.keywords:
            return
        if report.when == "call":
            self.ran.add(report.nodeid)
        elif report.skipped and isinstance(report.longrepr, tuple):
            self.skipped[report.nodeid] = str(report.longrepr[2]).removeprefix("Skipped: ")

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """One line: how many terraform tests ran and how many skipped, and why (none when none were run)."""
        if not self.ran and not self.skipped:
            return
        reasons = sorted(set(self.skipped.values()))
        why = f" ({'; '.join(reasons)})" if reasons else ""
        terminalreporter.write_line(f"terraform: {len(self.ran)} tests ran, {len(self.skipped)} skipped{why}")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, and the tally where the reports arrive (not on pytest-xdist's workers)."""
    config.addinivalue_line("markers", f"{MARKER}: needs real terraform and the hashicorp/aws provider mirror")
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(TerraformTally(), "terraform-tally")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of modules that use the helpers; skip every marked test where terraform cannot run."""
    reason = skip_reason()
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and uses_terraform(module):
            item.add_marker(MARKER)
        if reason is not None and item.get_closest_marker(MARKER) is not None:
            item.add_marker(pytest.mark.skip(reason=reason))

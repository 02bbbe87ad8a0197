"""What each verb prints: the chosen format on stdout, workflow commands where the runner reads them."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from guard.gate import GateReport
    from guard.remediate import RemediationReport
    from guard.verify import VerifyReport
    from guard.watch import WatchReport


def emit_check(report: GateReport, fmt: str, console: Console) -> None:
    """The gate's report as a table or JSON, plus GitHub workflow commands and the job summary."""
    from guard.report.github import publish

    for line in publish(report):  # the runner reads workflow commands on both streams
        print(line, file=sys.stderr if fmt == "json" else sys.stdout)
    if fmt == "json":
        from guard.report.json_ import render_json

        print(render_json(report))
    else:
        from guard.report.table import render_table

        render_table(report, console)


def emit_watch(report: WatchReport, fmt: str, console: Console, *, verbose: bool = False,
               stamp: bool = False) -> None:
    """One sweep as a table (evidence with `verbose`, the sweep's time with `stamp`) or JSON."""
    from guard.report.watch import render_watch_json, render_watch_table

    if fmt == "json":
        print(render_watch_json(report))
    else:
        render_watch_table(report, console, verbose=verbose, stamp=stamp)


def emit_remediation(reports: Sequence[RemediationReport], fmt: str, dry_run: bool,
                     echo: Callable[[str], None]) -> None:
    """Each run's outcome and its actions, as lines or one JSON object."""
    if fmt == "json":
        echo(json.dumps({"version": 1, "remediations": [r.to_json() for r in reports]}, indent=2))
        return
    for r in reports:
        echo(f"{r.incident_id}: {r.status.value} (mode {r.mode.value}{', dry run' if dry_run else ''})")
        for res in r.results:
            echo(f"  {res.status:9} {res.action.get('description', res.action.get('kind'))}: {res.reason}")
        if r.postmortem_key:
            echo(f"  postmortem: {r.postmortem_key} (guard postmortem {r.incident_id})")
    if not reports:
        echo("no open incidents")


def emit_verify(report: VerifyReport, fmt: str, console: Console) -> None:
    """Each target's verdict as a table or JSON, plus workflow commands and the job summary."""
    import os
    from pathlib import Path

    from guard.report.verify import render_verify_table, verify_commands, verify_json, verify_summary

    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(verify_summary(report))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in verify_commands(report):
            print(line, file=sys.stderr if fmt == "json" else sys.stdout)
    if fmt == "json":
        print(verify_json(report))
    else:
        render_verify_table(report, console)

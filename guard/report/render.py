"""What each verb prints: the chosen format on stdout, workflow commands where the runner reads them."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from guard.gate import GateReport
    from guard.remediate import RemediationReport
    from guard.verify import VerifyReport
    from guard.watch import WatchReport


def emit_check(report: GateReport, fmt: str, console: Callable[[], Console]) -> None:
    """The gate's report as a table (on the console `console` makes) or JSON, plus workflow commands and summary."""
    from guard.report.github import publish

    for line in publish(report):  # the runner reads workflow commands on both streams
        print(line, file=sys.stderr if fmt == "json" else sys.stdout)
    if fmt == "json":
        from guard.report.json_ import render_json

        print(render_json(report))
    else:
        from guard.report.table import render_table

        render_table(report, console())


def emit_watch(report: WatchReport, fmt: str, console: Console, *, verbose: bool = False,
               stamp: bool = False) -> None:
    """One sweep as a table (evidence with `verbose`, the sweep's time with `stamp`) or JSON."""
    from guard.report.watch import render_watch_json, render_watch_table

    if fmt == "json":
        print(render_watch_json(report))
    else:
        render_watch_table(report, console, verbose=verbose, stamp=stamp)


def _wrap(console: Console, label: str, paragraphs: Sequence[tuple[str, str]], *, indent: int = 2,
          label_width: int = 11) -> None:
    """`label` then each (text, style) paragraph, wrapped at words to the console's width under a hanging indent
    (the label's width, or two spaces without a label).

    A word longer than the line (an ARN, an ID) is never split: it overflows instead."""
    from rich.text import Text

    hang = label_width if label else 2
    lines = [(line, style) for text, style in paragraphs
             for line in textwrap.wrap(text, max(console.width - indent - hang, 20), break_long_words=False,
                                       break_on_hyphens=False) or [""]]
    for n, (line, style) in enumerate(lines):
        head = " " * indent + (label.ljust(hang) if label else "") if n == 0 else " " * (indent + hang)
        console.print(Text(head) + Text(line, style=style), soft_wrap=True)


def emit_remediation(reports: Sequence[RemediationReport], fmt: str, dry_run: bool, console: Console) -> None:
    """Each run's outcome and its actions, wrapped at words to the console's width, or one JSON object."""
    if fmt == "json":
        print(json.dumps({"version": 1, "remediations": [r.to_json() for r in reports]}, indent=2))
        return
    for r in reports:
        _wrap(console, "", [(f"{r.incident_id} {r.status.value} (mode {r.mode.value}"
                             f"{', dry run' if dry_run else ''})", "bold")], indent=0)
        for res in r.results:
            what = str(res.action.get("description") or res.action.get("kind"))
            _wrap(console, res.status, [(what, ""), *([(res.reason, "dim")] if res.reason else [])])
        if r.postmortem_key:
            _wrap(console, "postmortem", [(r.postmortem_key, ""), (f"guard postmortem {r.incident_id}", "dim")])
    if not reports:
        console.print("no open incidents")


def line_printer(console: Console) -> Callable[[str], None]:
    """Print lines through `console`, wrapped at words to its width; continuation lines keep the indent."""

    def echo(line: str) -> None:
        text = line.lstrip(" ")
        _wrap(console, "", [(text, "")], indent=len(line) - len(text))

    return echo


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

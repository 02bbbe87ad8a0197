"""`guard verify` output: a table, the JSON report, workflow annotations and the Markdown job summary."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from guard.exitcodes import ExitCode
from guard.report.github import escape_data, escape_property
from guard.verify import Status, VerifyReport

_STYLE = {Status.OK: "bold green", Status.FAILED: "bold red", Status.ROLLED_BACK: "bold red",
          Status.TIMED_OUT: "bold magenta", Status.PENDING: "yellow"}
VERDICT = {ExitCode.CLEAN: ("VERIFIED", "every target reached its new revision"),
           ExitCode.FINDINGS: ("FAILED", "the deploy did not land"),
           ExitCode.UNVERIFIED: ("UNVERIFIED", "the deadline passed before every target was decided")}


def _rollback_text(rollback: object) -> str:
    if not isinstance(rollback, dict):
        return ""
    return f"rollback {rollback.get('status')}: {rollback.get('reason')}"


def verify_json(report: VerifyReport) -> str:
    """The JSON report, keys sorted."""
    return json.dumps(report.to_json(), indent=2, sort_keys=True, default=str)


def render_verify_table(report: VerifyReport, console: Console) -> None:
    """One row per target, then the verdict line."""
    table = Table(title="Post-deploy verification")
    for col in ("status", "target", "cause", "detail"):
        table.add_column(col, overflow="fold")
    for v in report.verdicts:
        detail = escape(v.message) + (f"\n[dim]{escape(_rollback_text(v.rollback))}[/]" if v.rollback else "")
        table.add_row(f"[{_STYLE[v.status]}]{v.status.value}[/]", escape(v.target.resource), v.cause or "-", detail)
    console.print(table)
    label, advice = VERDICT[report.exit_code]
    console.print(f"{label} {len(report.verdicts)} target(s) in {report.duration_s:.0f}s: {advice}")


def verify_commands(report: VerifyReport) -> list[str]:
    """`::error` per target that failed, was rolled back or timed out."""
    return [f"::error title=guard verify {escape_property(v.target.resource)}::"
            f"{escape_data(v.status.value + ': ' + v.message)}" for v in report.verdicts if v.status is not Status.OK]


def verify_summary(report: VerifyReport) -> str:
    """Markdown for GITHUB_STEP_SUMMARY."""
    label, advice = VERDICT[report.exit_code]
    out = [f"## deploy-guard verify: {label}", "", f"{len(report.verdicts)} target(s): {advice}", "",
           "| status | target | cause | detail |", "|---|---|---|---|"]
    for v in report.verdicts:
        detail = (v.message + ("; " + _rollback_text(v.rollback) if v.rollback else "")).replace("|", "\\|")
        out.append(f"| {v.status.value} | `{v.target.resource}` | {v.cause or '-'} | {detail.replace(chr(10), ' ')} |")
    return "\n".join(out) + "\n"

"""Human output: rich tables of findings and unverified outcomes, and a one-line verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from guard.exitcodes import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from guard.gate import GateReport
    from guard.models import Unverified

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
VERDICT = {
    ExitCode.CLEAN: ("[bold green]PASS[/]", "deploy may proceed"),
    ExitCode.FINDINGS: ("[bold red]BLOCKED[/]", "fix the findings above before deploying"),
    ExitCode.UNVERIFIED: ("[bold magenta]UNVERIFIED[/]",
                          "could not verify everything: failing closed (use --allow-unverified to override)"),
}


def render_unverified(unverified: Sequence[Unverified], console: Console) -> None:
    """The "Could not verify" table (nothing when everything was verified)."""
    from rich.markup import escape
    from rich.table import Table

    if unverified:
        table = Table(title="Could not verify", title_style="bold magenta")
        for col in ("source", "target", "reason"):
            table.add_column(col, overflow="fold")
        for u in unverified:
            table.add_row(u.check_id, escape(u.target), escape(u.reason))
        console.print(table)


def render_table(report: GateReport, console: Console) -> None:
    """Print findings, unverified outcomes and the verdict."""
    from rich.markup import escape
    from rich.table import Table

    if report.findings:
        table = Table(title="Findings", show_lines=False, expand=False)
        for col in ("severity", "check", "target", "message"):
            table.add_column(col, overflow="fold")
        for f in report.findings:
            msg = escape(f.message) + (f"\n[dim]→ {escape(f.remediation)}[/]" if f.remediation else "")
            table.add_row(f"[{_STYLE[f.severity.value]}]{f.severity.value}[/]", f.check_id, escape(f.target), msg)
        console.print(table)
    render_unverified(report.unverified, console)
    images = len({i.uri for t in report.targets for i in t.images})
    calls = report.stats.get("total", 0)
    label, advice = VERDICT[report.exit_code]
    console.print(f"{label} {len(report.targets)} target(s), {images} image(s), {len(report.findings)} "
                  f"finding(s), {len(report.unverified)} unverified; {calls} API call(s) in "
                  f"{report.duration_s:.2f}s: {advice}")

"""Human output: rich tables of findings and unverified outcomes, and a one-line verdict."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from guard.exitcodes import ExitCode
from guard.gate import GateReport

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
VERDICT = {
    ExitCode.CLEAN: ("[bold green]PASS[/]", "deploy may proceed"),
    ExitCode.FINDINGS: ("[bold red]BLOCKED[/]", "fix the findings above before deploying"),
    ExitCode.UNVERIFIED: ("[bold magenta]UNVERIFIED[/]",
                          "could not verify everything: failing closed (use --allow-unverified to override)"),
}


def render_table(report: GateReport, console: Console) -> None:
    """Print findings, unverified outcomes and the verdict."""
    if report.findings:
        table = Table(title="Findings", show_lines=False, expand=False)
        for col in ("severity", "check", "target", "message"):
            table.add_column(col, overflow="fold")
        for f in report.findings:
            msg = escape(f.message) + (f"\n[dim]→ {escape(f.remediation)}[/]" if f.remediation else "")
            table.add_row(f"[{_STYLE[f.severity.value]}]{f.severity.value}[/]", f.check_id, escape(f.target), msg)
        console.print(table)
    if report.unverified:
        table = Table(title="Could not verify", title_style="bold magenta")
        for col in ("check", "target", "reason"):
            table.add_column(col, overflow="fold")
        for u in report.unverified:
            table.add_row(u.check_id, escape(u.target), escape(u.reason))
        console.print(table)
    images = len({i.uri for t in report.targets for i in t.images})
    calls = report.stats.get("total", 0)
    label, advice = VERDICT[report.exit_code]
    console.print(f"{label} {len(report.targets)} target(s), {images} image(s), {len(report.findings)} "
                  f"finding(s), {len(report.unverified)} unverified; {calls} API call(s) in "
                  f"{report.duration_s:.2f}s: {advice}")

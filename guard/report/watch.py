"""Renderers for a watchdog sweep: JSON (schema version 1) and rich tables."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from guard.report.table import render_unverified
from guard.watch import WatchReport

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def watch_json(report: WatchReport) -> dict[str, Any]:
    """One object: version, incidents, changes this sweep, unverified, known-good updates, stats."""
    t = report.triage
    return {
        "version": 1,
        "swept_at": report.swept_at,
        "incidents": [i.to_json() for i in report.incidents],
        "opened": [i.id for i in t.opened],
        "updated": [i.id for i in t.updated],
        "resolved": [i.to_json() for i in t.resolved],
        "unverified": [u.to_json() for u in report.unverified],
        "known_good": list(report.known_good),
        "notifications": [{"route": r.route, "ok": r.ok, "error": r.error} for r in report.notifications],
        "summary": {"services": report.services, "functions": report.functions,
                    "open_incidents": len(report.incidents), "signals": len(report.signals)},
        "stats": {"api_calls": report.stats, "duration_s": report.duration_s},
        "exit_code": int(report.exit_code),
    }


def render_watch_json(report: WatchReport) -> str:
    """Serialise the sweep, keys sorted."""
    return json.dumps(watch_json(report), indent=2, sort_keys=True, default=str)


def render_watch_table(report: WatchReport, console: Console) -> None:
    """Incidents with what changed, unverified outcomes, and a one-line summary."""
    t = report.triage
    change = {i.id: "new" for i in t.opened} | {i.id: "updated" for i in t.updated}
    if report.incidents:
        table = Table(title="Open incidents")
        for col in ("severity", "incident", "", "cause", "affected", "evidence"):
            table.add_column(col, overflow="fold")
        for inc in report.incidents:
            evidence = "\n".join(escape(s.message) for s in inc.signals[:4])
            table.add_row(f"[{_STYLE[inc.severity.value]}]{inc.severity.value}[/]", inc.id,
                          change.get(inc.id, ""), escape(("latent " if inc.latent else "") + inc.cause.value
                                                         + ": " + inc.cause_key),
                          escape("\n".join(inc.resources)), evidence)
        console.print(table)
    for inc in t.resolved:
        console.print(f"[green]resolved[/] {inc.id}: {escape(inc.title)}")
    render_unverified(report.unverified, console)
    for r in report.notifications:
        if not r.ok:
            console.print(f"[bold red]notification route {escape(r.route)} failed:[/] {escape(r.error)}")
    console.print(f"swept {report.services} service(s), {report.functions} function(s): "
                  f"{len(report.incidents)} open incident(s) ({len(t.opened)} new, {len(t.updated)} updated, "
                  f"{len(t.resolved)} resolved); {report.stats.get('total', 0)} API call(s) in "
                  f"{report.duration_s:.2f}s")

"""Renderers for a watchdog sweep: JSON (schema version 1) and rich tables."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from guard.models import Incident
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


def _short_cause(incident: Incident) -> str:
    """`missing_image shop/app:e4f0a31`: the cause and its key, an ECR host left out."""
    key = incident.cause_key
    host, sep, rest = key.partition("/")
    if sep and ".dkr.ecr." in host:
        key = rest
    return f"{'latent ' if incident.latent else ''}{incident.cause.value} {key}"


def _affected(resources: Sequence[str], shown: int = 3) -> str:
    more = f" +{len(resources) - shown} more" if len(resources) > shown else ""
    return ", ".join(resources[:shown]) + more


def render_watch_table(report: WatchReport, console: Console, *, verbose: bool = False,
                       stamp: bool = False) -> None:
    """A few lines per open incident (evidence per resource with `verbose`), unverified outcomes, a summary."""
    t = report.triage
    change = {i.id: "new" for i in t.opened} | {i.id: "updated" for i in t.updated}
    if report.incidents:
        table = Table(title="Open incidents", box=None, show_header=False, pad_edge=False, title_justify="left")
        table.add_column("severity", no_wrap=True)
        table.add_column("incident", ratio=1, overflow="fold")
        for inc in report.incidents:
            status = change.get(inc.id, "open")
            table.add_row(f"[{_STYLE[inc.severity.value]}]{inc.severity.value}[/]",
                          f"[bold]{inc.id}[/] {status}  {escape(_short_cause(inc))}\n"
                          f"[dim]affected:[/] {escape(_affected(inc.resources))}")
        console.print(table)
        if verbose:
            for inc in report.incidents:
                again = f"; recurrence of {inc.previous}, which was resolved" if inc.previous else ""
                console.print(f"[bold]{inc.id}[/] {escape(inc.title)} (first seen {inc.first_seen}, last seen "
                              f"{inc.last_seen}{again})")
                for sig in inc.signals:
                    console.print(f"  {escape(sig.resource)} [{sig.watcher_id}]: {escape(sig.message)}")
        else:
            console.print("[dim]evidence per resource: guard watch --verbose[/]")
    for inc in t.resolved:
        console.print(f"[green]resolved[/] {inc.id}: {escape(inc.title)}")
    render_unverified(report.unverified, console)
    for r in report.notifications:
        if not r.ok:
            console.print(f"[bold red]notification route {escape(r.route)} failed:[/] {escape(r.error)}")
    when = f"[{report.swept_at}] " if stamp else ""
    console.print(f"{when}swept {report.services} service(s), {report.functions} function(s): "
                  f"{len(report.incidents)} open incident(s) ({len(t.opened)} new, {len(t.updated)} updated, "
                  f"{len(t.resolved)} resolved); {report.stats.get('total', 0)} API call(s) in "
                  f"{report.duration_s:.2f}s")

"""Triage: coalesce signals with one cause into incidents, and reconcile them with the open ones."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from guard.models import Cause, Incident, IncidentStatus, Severity, Signal

_TITLES = {
    Cause.MISSING_IMAGE: "image does not exist",
    Cause.WRONG_ARCH: "image built for the wrong CPU architecture",
    Cause.REGISTRY_AUTH: "cannot authenticate to the registry",
    Cause.NETWORK: "tasks cannot reach the network they need",
    Cause.SECRET: "secret or parameter cannot be fetched",
    Cause.EXECUTION_ROLE: "execution or task role missing or not permitted",
    Cause.CRASH: "essential container keeps exiting",
    Cause.ROLLOUT_FAILED: "deployment failed",
    Cause.STALLED: "deployment stalled",
    Cause.LAMBDA_FAILED: "Lambda function failed",
    Cause.IMAGE_EXPIRY: "lifecycle policy will expire an image in use",
    Cause.UNKNOWN: "tasks fail to start",
}


def incident_id(cause: Cause, key: str, previous: str = "") -> str:
    """Deterministic ID of an occurrence of (cause, key): the first one's, or the one after `previous` resolved."""
    after = f"|after {previous}" if previous else ""
    return "INC-" + hashlib.sha256(f"{cause.value}|{key}{after}".encode()).hexdigest()[:12]


def coalesce(signals: Sequence[Signal], now: datetime) -> list[Incident]:
    """One incident per (cause, key); a signal is latent only if every signal of its incident is."""
    groups: dict[tuple[Cause, str], list[Signal]] = {}
    for s in signals:
        groups.setdefault((s.cause, s.cause_key), []).append(s)
    out = []
    for (cause, key), group in sorted(groups.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
        resources = tuple(sorted({s.resource for s in group}))
        latent = all(s.latent for s in group)
        severity = max((s.severity for s in group), key=lambda v: v.rank)
        stamps = sorted(s.since for s in group if s.since)
        prefix = "latent: " if latent else ""
        title = f"{prefix}{_TITLES[cause]}: {key} ({len(resources)} affected: {', '.join(resources[:5])}" + \
            (", ..." if len(resources) > 5 else "") + ")"
        unique = {(s.watcher_id, s.resource, s.message): s for s in group}
        out.append(Incident(incident_id(cause, key), severity, cause, key, title, resources,
                            tuple(unique[k] for k in sorted(unique)), stamps[0] if stamps else now.isoformat(),
                            now.isoformat(), IncidentStatus.OPEN, latent))
    return out


@dataclass(frozen=True)
class TriageResult:
    """What changed this sweep; `state` is the new set of open incidents by ID."""

    state: dict[str, Incident]
    opened: tuple[Incident, ...] = ()
    updated: tuple[Incident, ...] = ()
    resolved: tuple[Incident, ...] = ()
    unchanged: tuple[Incident, ...] = field(default=())


def reconcile(previous: Mapping[str, Incident], current: Sequence[Incident], now: datetime, *,
              in_scope: Callable[[str], bool], allow_resolve: bool,
              last_resolved: Mapping[tuple[Cause, str], str] | None = None) -> TriageResult:
    """Open new incidents, update changed ones (never re-raise), resolve those gone from a full sweep.

    An open incident keeps its ID for as long as its cause is seen; a cause seen again after its incident
    was resolved (`last_resolved`: the last resolved ID per (cause, key)) opens a new ID linking that one."""
    open_by_cause = {(i.cause, i.cause_key): i for i in previous.values()}
    state: dict[str, Incident] = {}
    opened, updated, unchanged, resolved = [], [], [], []
    for seen in current:
        before = open_by_cause.get((seen.cause, seen.cause_key))
        if before is None:
            last = (last_resolved or {}).get((seen.cause, seen.cause_key), "")
            inc = replace(seen, id=incident_id(seen.cause, seen.cause_key, last), previous=last)
            state[inc.id] = inc
            opened.append(inc)
            continue
        inc = replace(seen, id=before.id, previous=before.previous)
        merged = replace(inc, first_seen=min(before.first_seen, inc.first_seen),
                         resources=tuple(sorted(set(inc.resources))))
        state[inc.id] = merged
        worse = inc.severity.rank > before.severity.rank
        spread = not set(inc.resources) <= set(before.resources)
        if worse or spread or (before.latent and not inc.latent):
            updated.append(merged)
        else:
            unchanged.append(merged)
    for inc_id, before in previous.items():
        if inc_id in state:
            continue
        if allow_resolve and all(in_scope(r) for r in before.resources):
            resolved.append(replace(before, status=IncidentStatus.RESOLVED, last_seen=now.isoformat()))
        else:
            state[inc_id] = before
    return TriageResult(state, tuple(opened), tuple(updated), tuple(resolved), tuple(unchanged))


def incident_from_json(doc: Mapping[str, Any]) -> Incident:
    """Rebuild an Incident stored by `Incident.to_json`."""
    signals = tuple(
        Signal(s["watcher_id"], Severity(s["severity"]), s["resource"], Cause(s["cause"]), s["cause_key"],
               s["message"], s.get("since", ""), s.get("evidence", {}), bool(s.get("latent", False)))
        for s in doc.get("signals", [])
    )
    return Incident(doc["id"], Severity(doc["severity"]), Cause(doc["cause"]), doc["cause_key"], doc["title"],
                    tuple(doc["resources"]), signals, doc["first_seen"], doc["last_seen"],
                    IncidentStatus(doc.get("status", "open")), bool(doc.get("latent", False)),
                    str(doc.get("previous") or ""))

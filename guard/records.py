"""Where deploy-guard keeps its state, and the typed records the watchdog, remediation and people share.

Keys in the state store (guard.state):

| key | written by | holds |
|---|---|---|
| `incidents/open.json` | the watchdog | every open incident, and the last resolution per cause (`Resolution`) |
| `heartbeat.json` | the watchdog | the last sweep's summary |
| `notify/undelivered.json` | the watchdog | notifications a route failed to take, retried next sweep |
| `known-good/ecs/<cluster>.json` | the watchdog | a `ServiceRecord` per service last seen healthy, and the
  history of revisions each was recorded healthy on |
| `known-good/lambda.json` | the watchdog | a `FunctionRecord` per function last seen healthy, and its history |
| `journal/<incident>/...` | remediation, `guard rollback` | the journal (guard.journal) |
| `journal/<incident>/postmortem.md` | remediation | the postmortem rendered from the journal |
| `remediate/rate.json` | the policy gate | action times of the last hour |

The watchdog, the remediator, the model planner and `guard rollback` read these through this module only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from guard.models import Cause, Incident, IncidentStatus, InputError
from guard.state import StateStore, read_json, update_json
from guard.triage import incident_from_json

INCIDENTS_KEY = "incidents/open.json"
HEARTBEAT_KEY = "heartbeat.json"
UNDELIVERED_KEY = "notify/undelivered.json"
RATE_KEY = "remediate/rate.json"
JOURNAL_PREFIX = "journal/"
_LAMBDA_KEY = "known-good/lambda.json"
# How many distinct healthy records a service or function keeps: the targets a rollback may restore.
HISTORY_LIMIT = 20
# How many resolutions (the last one per cause and key) the incident state keeps, most recent first.
RESOLVED_LIMIT = 200


def _ecs_key(cluster: str) -> str:
    return f"known-good/ecs/{cluster}.json"


def journal_base(incident_id: str) -> str:
    """The key prefix of an incident's journal (ends with '/')."""
    return f"{JOURNAL_PREFIX}{incident_id}/"


def postmortem_key(incident_id: str) -> str:
    """Where an incident's rendered postmortem is kept."""
    return f"{journal_base(incident_id)}postmortem.md"


# Incidents


def open_incidents(store: StateStore) -> list[Incident]:
    """Every open incident, in stored order."""
    doc, _ = read_json(store, INCIDENTS_KEY)
    return [incident_from_json(raw) for raw in (doc or {}).get("incidents", [])]


def open_incident_ids(store: StateStore) -> list[str]:
    """IDs of every open incident."""
    doc, _ = read_json(store, INCIDENTS_KEY)
    return [str(raw["id"]) for raw in (doc or {}).get("incidents", [])]


@dataclass(frozen=True)
class Resolution:
    """An incident the watchdog resolved; the last one per (cause, key) is kept so a recurrence gets a new ID."""

    id: str
    cause: Cause
    cause_key: str
    first_seen: str
    resolved_at: str
    previous: str = ""

    @classmethod
    def of(cls, incident: Incident) -> Resolution:
        """The record of a resolved incident (resolved when it was last seen)."""
        return cls(incident.id, incident.cause, incident.cause_key, incident.first_seen, incident.last_seen,
                   incident.previous)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Resolution:
        """Parse a stored record."""
        return cls(str(doc["id"]), Cause(doc["cause"]), str(doc["cause_key"]), str(doc.get("first_seen", "")),
                   str(doc.get("resolved_at", "")), str(doc.get("previous") or ""))

    def to_json(self) -> dict[str, Any]:
        """The stored shape."""
        return {**asdict(self), "cause": self.cause.value}


def resolutions(store: StateStore) -> list[Resolution]:
    """The kept resolutions, oldest first."""
    doc, _ = read_json(store, INCIDENTS_KEY)
    return [Resolution.from_json(raw) for raw in (doc or {}).get("resolved", [])]


def resolution(store: StateStore, incident_id: str) -> Resolution | None:
    """The resolution of `incident_id`, if it is still kept."""
    return next((r for r in resolutions(store) if r.id == incident_id), None)


def recurrence(store: StateStore, incident_id: str) -> str:
    """The ID of the incident that recurred after `incident_id` was resolved, or "" if none is known."""
    later = [(i.id, i.previous) for i in open_incidents(store)] + [(r.id, r.previous) for r in resolutions(store)]
    return next((later_id for later_id, previous in later if previous == incident_id), "")


def load_incident(store: StateStore, incident_id: str) -> Incident:
    """An open incident; a resolved or unknown ID is an input error that says which."""
    for incident in open_incidents(store):
        if incident.id == incident_id:
            return incident
    done = resolution(store, incident_id)
    if done is not None:
        after = recurrence(store, incident_id)
        hint = f"; its cause recurred as {after} (remediate that one)" if after else ""
        raise InputError(f"incident {incident_id} was resolved at {done.resolved_at}: nothing to remediate{hint}")
    raise InputError(f"no open incident {incident_id} in the watchdog state (run `guard watch --once` first)")


def update_incidents(store: StateStore, now: str,
                     fn: Callable[[dict[str, Incident], dict[tuple[Cause, str], str]], Iterable[Incident]]) -> None:
    """Replace the incidents with `fn(open ones by ID, last resolved ID by (cause, key))`, as one conditional write.

    The open incidents `fn` returns are kept; the resolved ones replace their cause's resolution record
    (RESOLVED_LIMIT kept). The write is retried on a lost race."""

    def apply(doc: Any) -> Any:
        previous = {str(raw["id"]): incident_from_json(raw) for raw in (doc or {}).get("incidents", [])}
        past = [Resolution.from_json(raw) for raw in (doc or {}).get("resolved", [])]
        returned = list(fn(previous, {(r.cause, r.cause_key): r.id for r in past}))
        current = sorted((i for i in returned if i.status is IncidentStatus.OPEN), key=lambda i: i.id)
        done = [Resolution.of(i) for i in returned if i.status is IncidentStatus.RESOLVED]
        causes = {(r.cause, r.cause_key) for r in done}
        kept = [*(r for r in past if (r.cause, r.cause_key) not in causes), *done][-RESOLVED_LIMIT:]
        return {"version": 1, "updated_at": now, "incidents": [i.to_json() for i in current],
                "resolved": [r.to_json() for r in kept]}

    update_json(store, INCIDENTS_KEY, apply)


# Known-good memory


@dataclass(frozen=True)
class ServiceRecord:
    """An ECS service seen steady with every image present: the target a rollback may restore."""

    task_definition: str
    images: Mapping[str, str] = field(default_factory=dict)
    deployment: str = ""
    observed_at: str = ""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ServiceRecord:
        """Parse a stored record."""
        return cls(str(doc["task_definition"]), {str(k): str(v) for k, v in dict(doc.get("images") or {}).items()},
                   str(doc.get("deployment", "")), str(doc.get("observed_at", "")))

    def to_json(self) -> dict[str, Any]:
        """The stored shape."""
        return {**asdict(self), "images": dict(self.images)}


@dataclass(frozen=True)
class FunctionRecord:
    """An image Lambda seen active on a present image: its image, digest, code hash and version."""

    image_uri: str
    image_digest: str
    code_sha256: str = ""
    version: str = ""
    observed_at: str = ""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FunctionRecord:
        """Parse a stored record."""
        return cls(str(doc["image_uri"]), str(doc.get("image_digest", "")), str(doc.get("code_sha256", "")),
                   str(doc.get("version", "")), str(doc.get("observed_at", "")))

    def to_json(self) -> dict[str, Any]:
        """The stored shape."""
        return asdict(self)


Record = ServiceRecord | FunctionRecord


def _same(a: Record | None, b: Record | None) -> bool:
    """Equal but for when they were observed."""
    if a is None or b is None:
        return a is b
    return {**a.to_json(), "observed_at": ""} == {**b.to_json(), "observed_at": ""}


def known_good_service(store: StateStore, cluster: str, service: str) -> ServiceRecord | None:
    """The last known-good record of an ECS service, if any."""
    doc, _ = read_json(store, _ecs_key(cluster))
    raw = ((doc or {}).get("services") or {}).get(service)
    return ServiceRecord.from_json(raw) if raw else None


def known_good_function(store: StateStore, function: str) -> FunctionRecord | None:
    """The last known-good record of a Lambda function, if any."""
    doc, _ = read_json(store, _LAMBDA_KEY)
    raw = ((doc or {}).get("functions") or {}).get(function)
    return FunctionRecord.from_json(raw) if raw else None


def _history(doc: Any, group: str, name: str) -> list[dict[str, Any]]:
    """Every record `name` was seen healthy with, oldest first (the current one last)."""
    kept = [dict(r) for r in ((doc or {}).get("history") or {}).get(name) or [] if isinstance(r, Mapping)]
    current = ((doc or {}).get(group) or {}).get(name)
    return [*kept, dict(current)] if current and not any(_key(group, r) == _key(group, current) for r in kept) \
        else kept


def _key(group: str, raw: Mapping[str, Any]) -> tuple[str, ...]:
    """What makes two healthy records the same target (a revision; a version, code hash and image digest)."""
    if group == "services":
        return (str(raw.get("task_definition", "")),)
    return tuple(str(raw.get(k, "")) for k in ("version", "code_sha256", "image_digest"))


def healthy_services(store: StateStore, cluster: str, service: str) -> tuple[ServiceRecord, ...]:
    """Every revision an ECS service was recorded healthy on (the targets a rollback may restore), oldest first."""
    doc, _ = read_json(store, _ecs_key(cluster))
    return tuple(ServiceRecord.from_json(r) for r in _history(doc, "services", service))


def healthy_functions(store: StateStore, function: str) -> tuple[FunctionRecord, ...]:
    """Every code a Lambda function was recorded healthy on, oldest first."""
    doc, _ = read_json(store, _LAMBDA_KEY)
    return tuple(FunctionRecord.from_json(r) for r in _history(doc, "functions", function))


def _merge(store: StateStore, key: str, group: str, records: Mapping[str, Record]) -> list[str]:
    """Write the records that differ from the stored ones (ignoring observed_at); their names.

    Each record also joins its name's history (distinct targets, the most recent HISTORY_LIMIT kept)."""
    doc, _ = read_json(store, key)
    stored = (doc or {}).get(group) or {}
    kind = ServiceRecord if group == "services" else FunctionRecord
    stale = {n: r for n, r in records.items()
             if not _same(r, kind.from_json(stored[n]) if n in stored else None)}
    if stale:
        def merge(current: Any) -> Any:
            merged = dict((current or {}).get(group) or {})
            history = dict((current or {}).get("history") or {})
            for name, record in stale.items():
                raw = record.to_json()
                past = [r for r in _history(current, group, name) if _key(group, r) != _key(group, raw)]
                history[name] = [*past, raw][-HISTORY_LIMIT:]
                merged[name] = raw
            return {"version": 1, group: merged, "history": history}

        update_json(store, key, merge)
    return sorted(stale)


def remember_known_good(store: StateStore, services: Mapping[tuple[str, str], ServiceRecord],
                        functions: Mapping[str, FunctionRecord]) -> tuple[str, ...]:
    """Record healthy revisions; returns the resources (`ecs:C/S`, `lambda:F`) whose record changed."""
    by_cluster: dict[str, dict[str, ServiceRecord]] = {}
    for (cluster, name), record in services.items():
        by_cluster.setdefault(cluster, {})[name] = record
    changed: list[str] = []
    for cluster, records in sorted(by_cluster.items()):
        changed += [f"ecs:{cluster}/{n}" for n in _merge(store, _ecs_key(cluster), "services", records)]
    if functions:
        changed += [f"lambda:{n}" for n in _merge(store, _LAMBDA_KEY, "functions", functions)]
    return tuple(changed)


# The policy gate's hourly rate


def action_times(store: StateStore) -> list[datetime]:
    """When recent actions were taken (any remediation run on this state)."""
    doc, _ = read_json(store, RATE_KEY)
    return [datetime.fromisoformat(t) for t in (doc or {}).get("actions", [])]


def add_action_time(store: StateStore, at: datetime, *, keep_after: datetime) -> None:
    """Append `at`, dropping times not after `keep_after` (a conditional write: concurrent runs all count)."""

    def add(doc: Any) -> Any:
        kept = [t for t in (doc or {}).get("actions", []) if datetime.fromisoformat(t) > keep_after]
        return {"actions": [*kept, at.isoformat()]}

    update_json(store, RATE_KEY, add)


# Watchdog bookkeeping


def write_heartbeat(store: StateStore, summary: Mapping[str, Any]) -> None:
    """The last sweep's summary (what `guard watch` last saw, and when)."""
    store.put(HEARTBEAT_KEY, json.dumps(dict(summary)).encode())


def undelivered(store: StateStore) -> list[dict[str, Any]]:
    """Notifications a route failed to take: `{"route": name, "notification": {...}}`."""
    doc, _ = read_json(store, UNDELIVERED_KEY)
    return list((doc or {}).get("undelivered", []))


def set_undelivered(store: StateStore, items: list[dict[str, Any]]) -> None:
    """Replace the retry list."""
    store.put(UNDELIVERED_KEY, json.dumps({"undelivered": items}).encode())

"""The incident state keeps the last resolution per cause, bounded, in the same write as the open incidents."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from guard.models import Cause, Incident, IncidentStatus, Severity
from guard.records import RESOLVED_LIMIT, open_incidents, resolution, resolutions, update_incidents
from guard.state import LocalStore


def _incident(n: int, key: str = "", status: IncidentStatus = IncidentStatus.OPEN) -> Incident:
    return Incident(f"INC-{n:012x}", Severity.ERROR, Cause.MISSING_IMAGE, key or f"shop/api:v{n}", "image gone",
                    ("ecs:prod/api",), (), "2026-11-23T03:00:00+00:00", f"2026-11-23T04:{n % 60:02d}:00+00:00",
                    status)


def test_resolved_incidents_leave_the_open_set_and_are_kept_per_cause(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    first = _incident(1, "shop/api:bad")
    update_incidents(store, "t1", lambda previous, last: [first])
    seen: list[dict[tuple[Cause, str], str]] = []
    update_incidents(store, "t2", lambda previous, last: seen.append(last) or
                     [replace(previous[first.id], status=IncidentStatus.RESOLVED)])
    assert open_incidents(store) == [] and seen == [{}]
    done = resolution(store, first.id)
    assert done is not None and (done.cause_key, done.resolved_at) == ("shop/api:bad", first.last_seen)
    again = replace(_incident(2, "shop/api:bad"), previous=first.id)
    update_incidents(store, "t3", lambda previous, last: seen.append(last) or [again])
    assert seen[-1] == {(Cause.MISSING_IMAGE, "shop/api:bad"): first.id}
    update_incidents(store, "t4", lambda previous, last: [replace(again, status=IncidentStatus.RESOLVED)])
    assert [(r.id, r.previous) for r in resolutions(store)] == [(again.id, first.id)]  # the last per cause


def test_the_resolution_record_is_bounded(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    many = [_incident(n, status=IncidentStatus.RESOLVED) for n in range(RESOLVED_LIMIT + 5)]
    update_incidents(store, "t1", lambda previous, last: many)
    kept = resolutions(store)
    assert len(kept) == RESOLVED_LIMIT and kept[-1].id == many[-1].id and kept[0].id == many[5].id

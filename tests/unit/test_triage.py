"""Triage: signals with one cause coalesce into one incident; reconcile opens, updates and resolves incidents."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from guard.models import Cause, Incident, IncidentStatus, Severity, Signal
from guard.triage import coalesce, incident_from_json, incident_id, reconcile

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop/api:v1"
ROLE = "arn:aws:iam::123456789012:role/api-exec"


def signal(resource: str, *, cause: Cause = Cause.MISSING_IMAGE, key: str = IMAGE, watcher: str = "ECS101",
           severity: Severity = Severity.ERROR, since: str = "", latent: bool = False,
           message: str = "tasks fail to start") -> Signal:
    """A signal with defaults for everything the test does not vary."""
    return Signal(watcher, severity, resource, cause, key, message, since, {"resource": resource}, latent)


def everywhere(resource: str) -> bool:
    """`in_scope` of a full sweep."""
    return True


# -- coalesce -----------------------------------------------------------------------------------------


def test_signals_of_one_cause_are_one_incident() -> None:
    signals = [
        signal("ecs:prod/api", since="2026-11-23T02:50:00+00:00"),
        signal("ecs:edge/web", watcher="ECS105", severity=Severity.WARNING, latent=True,
               message="image no longer exists"),
        signal("ecs:prod/api", watcher="ECS102", since="2026-11-23T02:40:00+00:00", message="rollout failed"),
    ]
    [inc] = coalesce(signals, NOW)
    assert inc.id == incident_id(Cause.MISSING_IMAGE, IMAGE)
    assert (inc.cause, inc.cause_key, inc.severity) == (Cause.MISSING_IMAGE, IMAGE, Severity.ERROR)
    assert inc.resources == ("ecs:edge/web", "ecs:prod/api")
    assert inc.signals == (signals[0], signals[2], signals[1])  # by watcher, resource, message
    assert (inc.first_seen, inc.last_seen) == ("2026-11-23T02:40:00+00:00", NOW.isoformat())
    assert inc.status is IncidentStatus.OPEN and not inc.latent
    assert inc.title == f"image does not exist: {IMAGE} (2 affected: ecs:edge/web, ecs:prod/api)"


def test_incident_id_is_stable_and_ignores_the_signals() -> None:
    assert incident_id(Cause.MISSING_IMAGE, IMAGE) == "INC-68207e6fa76b"  # persisted in state: never changes
    first = coalesce([signal("ecs:prod/api")], NOW)
    again = coalesce([signal("ecs:edge/web", watcher="ECS105", severity=Severity.WARNING)], LATER)
    assert first[0].id == again[0].id == "INC-68207e6fa76b"


def test_coalescing_does_not_depend_on_signal_order() -> None:
    signals = [signal(f"ecs:prod/svc{i}", watcher=w) for i in range(3) for w in ("ECS101", "ECS104")]
    signals.append(signal("ecs:prod/api", cause=Cause.EXECUTION_ROLE, key=ROLE))
    assert coalesce(signals, NOW) == coalesce(list(reversed(signals)), NOW)


def test_repeated_signals_are_kept_once() -> None:
    [inc] = coalesce([signal("ecs:prod/api"), signal("ecs:prod/api"), signal("ecs:prod/api", watcher="ECS102")],
                     NOW)
    assert [s.watcher_id for s in inc.signals] == ["ECS101", "ECS102"]


def test_different_causes_are_different_incidents() -> None:
    incidents = coalesce([
        signal("ecs:prod/api"),
        signal("ecs:prod/api", cause=Cause.WRONG_ARCH),
        signal("ecs:prod/api", key=IMAGE.replace(":v1", ":v2")),
        signal("ecs:prod/web", cause=Cause.EXECUTION_ROLE, key=ROLE),
    ], NOW)
    assert [(i.cause, i.cause_key) for i in incidents] == [
        (Cause.EXECUTION_ROLE, ROLE),
        (Cause.MISSING_IMAGE, IMAGE),
        (Cause.MISSING_IMAGE, IMAGE.replace(":v1", ":v2")),
        (Cause.WRONG_ARCH, IMAGE),
    ]
    assert len({i.id for i in incidents}) == 4
    assert all(i.resources == ("ecs:prod/api",) for i in incidents[1:])


def test_an_incident_is_latent_only_if_every_signal_is() -> None:
    [latent] = coalesce([signal("ecs:prod/api", latent=True), signal("ecs:edge/api", latent=True)], NOW)
    assert latent.latent and latent.title.startswith("latent: image does not exist")
    [live] = coalesce([signal("ecs:prod/api", latent=True), signal("ecs:edge/api")], NOW)
    assert not live.latent and live.title.startswith("image does not exist")


def test_without_a_since_the_incident_starts_now() -> None:
    [inc] = coalesce([signal("ecs:prod/api")], NOW)
    assert inc.first_seen == inc.last_seen == NOW.isoformat()


def test_the_title_names_at_most_five_resources() -> None:
    [inc] = coalesce([signal(f"ecs:prod/svc{i}") for i in range(7)], NOW)
    assert inc.title.endswith("(7 affected: ecs:prod/svc0, ecs:prod/svc1, ecs:prod/svc2, ecs:prod/svc3, "
                              "ecs:prod/svc4, ...)")
    assert len(inc.resources) == 7


def test_an_incident_survives_its_json_round_trip() -> None:
    [inc] = coalesce([signal("ecs:prod/api", since="2026-11-23T02:50:00+00:00"),
                      signal("lambda:thumbs", watcher="LMB102", latent=True)], NOW)
    assert incident_from_json(inc.to_json()) == inc
    resolved = replace(inc, status=IncidentStatus.RESOLVED)
    assert incident_from_json(resolved.to_json()) == resolved


# -- reconcile ----------------------------------------------------------------------------------------


def _one(*signals: Signal, now: datetime = NOW) -> Incident:
    [inc] = coalesce(signals, now)
    return inc


def test_new_incidents_are_opened() -> None:
    current = coalesce([signal("ecs:prod/api"), signal("ecs:prod/web", cause=Cause.EXECUTION_ROLE, key=ROLE)], NOW)
    result = reconcile({}, current, NOW, in_scope=everywhere, allow_resolve=True)
    assert result.opened == tuple(current)
    assert result.updated == result.resolved == result.unchanged == ()
    assert result.state == {i.id: i for i in current}


def test_an_incident_seen_again_is_unchanged_and_keeps_its_first_seen() -> None:
    before = _one(signal("ecs:prod/api", since="2026-11-23T02:40:00+00:00"))
    now = _one(signal("ecs:prod/api", since="2026-11-23T02:55:00+00:00"), now=LATER)
    result = reconcile({before.id: before}, [now], LATER, in_scope=everywhere, allow_resolve=True)
    [kept] = result.unchanged
    assert result.opened == result.updated == result.resolved == ()
    assert kept.first_seen == "2026-11-23T02:40:00+00:00" and kept.last_seen == LATER.isoformat()
    assert result.state == {before.id: kept}


def test_fewer_affected_resources_is_not_an_update() -> None:
    before = _one(signal("ecs:prod/api"), signal("ecs:prod/web"))
    now = _one(signal("ecs:prod/api"), now=LATER)
    result = reconcile({before.id: before}, [now], LATER, in_scope=everywhere, allow_resolve=True)
    assert result.updated == () and [i.resources for i in result.unchanged] == [("ecs:prod/api",)]


def test_worse_wider_or_no_longer_latent_is_an_update() -> None:
    before = _one(signal("ecs:prod/api", severity=Severity.WARNING, latent=True))
    changes = {
        "worse": _one(signal("ecs:prod/api", latent=True), now=LATER),
        "wider": _one(signal("ecs:prod/api", severity=Severity.WARNING, latent=True),
                      signal("ecs:edge/api", severity=Severity.WARNING, latent=True), now=LATER),
        "failing now": _one(signal("ecs:prod/api", severity=Severity.WARNING), now=LATER),
    }
    for what, now in changes.items():
        result = reconcile({before.id: before}, [now], LATER, in_scope=everywhere, allow_resolve=True)
        assert [i.id for i in result.updated] == [before.id], what
        assert result.opened == result.unchanged == result.resolved == (), what
        assert result.state[before.id].first_seen == before.first_seen, what


def test_an_incident_gone_from_a_full_sweep_is_resolved() -> None:
    gone = _one(signal("ecs:prod/api"))
    still = _one(signal("ecs:prod/web", cause=Cause.EXECUTION_ROLE, key=ROLE))
    result = reconcile({gone.id: gone, still.id: still}, [still], LATER, in_scope=everywhere, allow_resolve=True)
    [resolved] = result.resolved
    assert resolved == replace(gone, status=IncidentStatus.RESOLVED, last_seen=LATER.isoformat())
    assert set(result.state) == {still.id}


def test_an_incident_outside_the_swept_scope_stays_open() -> None:
    partly = _one(signal("ecs:prod/api"), signal("ecs:edge/api"))
    result = reconcile({partly.id: partly}, [], LATER, in_scope=lambda r: r.startswith("ecs:prod/"),
                       allow_resolve=True)
    assert result.resolved == () and result.state == {partly.id: partly}
    inside = reconcile({partly.id: partly}, [], LATER, in_scope=lambda r: r.startswith("ecs:"), allow_resolve=True)
    assert [i.id for i in inside.resolved] == [partly.id] and inside.state == {}


def test_nothing_is_resolved_when_resolving_is_not_allowed() -> None:
    gone = _one(signal("ecs:prod/api"))
    result = reconcile({gone.id: gone}, [], LATER, in_scope=everywhere, allow_resolve=False)
    assert result.resolved == () and result.state == {gone.id: gone}


# -- recurrence ---------------------------------------------------------------------------------------


def test_a_cause_seen_again_after_resolution_opens_a_new_incident_linking_the_old() -> None:
    first = _one(signal("ecs:prod/api"))
    again = reconcile({}, [_one(signal("ecs:prod/api"), now=LATER)], LATER, in_scope=everywhere, allow_resolve=True,
                      last_resolved={(Cause.MISSING_IMAGE, IMAGE): first.id})
    [opened] = again.opened
    assert opened.id != first.id and opened.previous == first.id
    assert opened.id == incident_id(Cause.MISSING_IMAGE, IMAGE, first.id)
    later = LATER + timedelta(minutes=5)
    kept = reconcile(again.state, [_one(signal("ecs:prod/api"), now=later)], later, in_scope=everywhere,
                     allow_resolve=True, last_resolved={(Cause.MISSING_IMAGE, IMAGE): first.id})
    assert [(i.id, i.previous) for i in kept.unchanged] == [(opened.id, first.id)] and kept.opened == ()


def test_an_open_incident_keeps_its_id_whatever_was_resolved_before() -> None:
    before = _one(signal("ecs:prod/api"))
    result = reconcile({before.id: before}, [_one(signal("ecs:prod/web"), now=LATER)], LATER, in_scope=everywhere,
                       allow_resolve=True, last_resolved={(Cause.MISSING_IMAGE, IMAGE): "INC-000000000000"})
    assert [i.id for i in result.updated] == [before.id] and result.opened == ()


def test_previous_survives_the_stored_shape() -> None:
    inc = replace(_one(signal("ecs:prod/api")), previous="INC-0123456789ab")
    assert incident_from_json(inc.to_json()) == inc
    assert "previous" not in _one(signal("ecs:prod/api")).to_json()  # only on a recurrence

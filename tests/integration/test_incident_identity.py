"""Incident identity on the sandbox: an open incident keeps its ID; a recurrence after resolution gets a new one."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from rich.console import Console

from guard.cli import main
from guard.config import Mode
from guard.models import Incident, InputError
from guard.postmortem import postmortem_from_journal
from guard.records import load_incident, resolution
from guard.report.watch import render_watch_json, render_watch_table
from guard.triage import incident_id
from tests.support.remedyrun import World, deploy

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "schema" / "report-v1.schema.json").read_text())


def _recover(world: World) -> None:
    """Put prod/api back on its first (good) revision and let the failed starts age out."""
    world.aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition="api:1")
    world.sim.tick(2)
    world.sim.advance(31 * 60)
    world.sim.tick(3)


def _open_resolve_recur(world: World) -> tuple[Incident, Incident]:
    """The first incident (remediated in observe mode, then resolved) and its recurrence (remediated too)."""
    deploy(world, "broken")
    [first] = world.sweep().incidents
    world.sim.tick()
    assert [i.id for i in world.sweep().incidents] == [first.id]  # open: the same ID across sweeps
    world.remediate(first, mode=Mode.OBSERVE)
    _recover(world)
    report = world.sweep()
    assert report.incidents == () and [i.id for i in report.triage.resolved] == [first.id]
    world.sim.advance(10 * 60)
    deploy(world, "broken")
    [again] = world.sweep().incidents
    world.remediate(again, mode=Mode.OBSERVE)
    return first, again


def test_a_recurrence_after_resolution_opens_a_new_incident_linking_the_old(world: World) -> None:
    first, again = _open_resolve_recur(world)
    assert (again.cause, again.cause_key) == (first.cause, first.cause_key)
    assert again.id != first.id and again.previous == first.id and not first.previous
    assert again.id == incident_id(again.cause, again.cause_key, first.id)
    done = resolution(world.store, first.id)
    assert done is not None and done.resolved_at > first.last_seen
    world.sim.tick()
    assert [(i.id, i.previous) for i in world.sweep().incidents] == [(again.id, first.id)]  # stable while open
    opened = [n for n in world.pager.received if n.incident_id == again.id]
    assert opened and f"Recurrence of {first.id}" in opened[0].summary


def test_the_old_postmortem_says_resolved_and_keeps_only_its_own_signals(world: World) -> None:
    first, again = _open_resolve_recur(world)
    old = postmortem_from_journal(world.store, first.id)
    done = resolution(world.store, first.id)
    assert done is not None
    assert f"| Status | resolved at {done.resolved_at}; its cause recurred as {again.id} |" in old
    assert "| Status | open" not in old and again.id in old
    new_since = {s.since for s in again.signals} - {s.since for s in first.signals}
    assert new_since and not any(stamp in old for stamp in new_since)
    new = postmortem_from_journal(world.store, again.id)
    assert "| Status | open |" in new and f"| Previous incident | {first.id} " in new
    assert any(stamp in new for stamp in new_since)


def test_remediating_the_resolved_id_after_a_recurrence_is_refused(world: World,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first, again = _open_resolve_recur(world)
    with pytest.raises(InputError, match=f"{first.id} was resolved at .*recurred as {again.id}"):
        load_incident(world.store, first.id)
    monkeypatch.chdir(world.root)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (world.root / "guard.toml").write_text(f'[watch]\nstate = "{world.root / "state"}"\n[notify]\nheartbeat = false\n')
    before = world.service()["taskDefinition"]
    out = CliRunner().invoke(main, ["remediate", first.id, "--mode", "act"])
    assert out.exit_code == 2 and f"recurred as {again.id}" in out.output
    assert world.service()["taskDefinition"] == before  # nothing done


def test_a_recurrence_report_validates_against_the_schema_and_the_table_names_it(world: World) -> None:
    first, again = _open_resolve_recur(world)
    report = world.sweep()
    out = io.StringIO()
    render_watch_table(report, Console(file=out, width=80, color_system=None), verbose=True)
    assert f"recurrence of {first.id}, which was resolved" in " ".join(out.getvalue().split())
    doc = json.loads(render_watch_json(report))
    assert [(i["id"], i["previous"]) for i in doc["incidents"]] == [(again.id, first.id)]
    assert SCHEMA["$defs"]["incident"]["properties"]["previous"]["pattern"] == "^INC-[0-9a-f]{12}$"
    jsonschema.validate(doc, {**SCHEMA, "oneOf": [{"$ref": "#/$defs/watchReport"}]})

"""ecs_rollback: a bad deploy is rolled back to the known-good task definition recorded by the watchdog."""

from __future__ import annotations

from guard.actions import make_action
from guard.config import Allow, Mode
from guard.journal import EntryKind, Journal
from guard.models import Cause
from tests.support.remedyrun import World, deploy


def test_bad_deploy_rolled_back_to_known_good(world: World) -> None:
    deploy(world, "broken")  # not a commit tag: no build to rerun, so the playbook rolls back
    [inc] = world.sweep().incidents
    assert inc.cause is Cause.MISSING_IMAGE
    report = world.remediate(inc)
    assert report.status == "repaired", report.to_json()
    [result] = report.results
    assert result.action["kind"] == "ecs_rollback" and result.status == "verified"
    svc = world.service()
    assert svc["taskDefinition"].endswith("task-definition/api:1")
    assert svc["runningCount"] == 2 and len(svc["deployments"]) == 1
    assert world.service("worker")["taskDefinition"].endswith("worker:1")  # untouched
    entries = Journal(world.store, inc.id).entries()
    assert [e.kind for e in entries if e.kind in (EntryKind.DECISION, EntryKind.ACTION_STARTED,
                                                  EntryKind.VERIFIED, EntryKind.ACTION_SUCCEEDED)] == [
        EntryKind.DECISION, EntryKind.ACTION_STARTED, EntryKind.VERIFIED, EntryKind.ACTION_SUCCEEDED]
    text = world.store.get(report.postmortem_key)
    assert text is not None and b"ecs_rollback" in text.data and b"Five-layer" in text.data


def test_observe_propose_and_dry_run_change_nothing(world: World) -> None:
    bad = deploy(world, "broken")
    [inc] = world.sweep().incidents
    for mode, dry_run, rule in ((Mode.OBSERVE, False, "mode"), (Mode.PROPOSE, False, "mode"),
                                (Mode.ACT, True, "dry_run")):
        report = world.remediate(inc, mode=mode, dry_run=dry_run)
        assert report.status == "refused" and report.results[0].reason.startswith(rule)
    assert world.service()["taskDefinition"] == bad
    assert world.calls("ecs:UpdateService") == 0
    refusals = [e for e in Journal(world.store, inc.id).entries() if e.kind is EntryKind.DECISION]
    assert [e.data["rule"] for e in refusals] == ["mode", "mode", "dry_run"]


def test_out_of_scope_service_is_refused_and_escalated(world: World) -> None:
    world.config = world.config.__class__(**{**world.config.__dict__,
                                             "allow": (Allow("ecs:prod/api", ("ecs_rollback",)),)})
    bad = deploy(world, "broken", ("worker",))
    [inc] = world.sweep().incidents
    report = world.remediate(inc)
    assert report.status == "escalated"
    assert [(r.action["kind"], r.status) for r in report.results] == [("ecs_rollback", "refused"),
                                                                       ("escalate", "verified")]
    assert "allowlist" in report.results[0].reason
    assert world.service("worker")["taskDefinition"] == bad and world.calls("ecs:UpdateService") == 0
    assert inc.id in world.notes.getvalue() and "a human" in world.notes.getvalue()


def test_per_incident_cap_then_hourly_rate(world: World) -> None:
    deploy(world, "broken")
    [inc] = world.sweep().incidents
    assert world.remediate(inc, max_actions_per_incident=1).status == "repaired"
    world.sim.advance(31 * 60)
    deploy(world, "broken")  # the same bad image again: the same incident, one action already spent on it
    [again] = [i for i in world.sweep().incidents if i.id == inc.id]
    report = world.remediate(again, max_actions_per_incident=1)
    assert report.status == "escalated" and report.results[0].reason.startswith("incident_cap")
    assert world.calls("ecs:UpdateService") == 1
    deploy(world, "broken-other")
    [other] = [i for i in world.sweep().incidents if i.cause_key.endswith(":broken-other")]
    report = world.remediate(other, max_actions_per_hour=1)
    assert report.status == "escalated" and report.results[0].reason.startswith("rate_limit")
    assert world.calls("ecs:UpdateService") == 1


def test_precondition_describes_the_service_once(world: World) -> None:
    good = world.service()["taskDefinition"]
    ctx = world.runtime().action_context()
    before = ctx.aws.stats.calls["ecs:DescribeServices"]
    outcome = make_action("ecs_rollback", cluster="prod", service="api", task_definition=good).precondition(ctx)
    assert outcome.ok and outcome.done_already  # steady on it: judged from the one DescribeServices answer
    assert ctx.aws.stats.calls["ecs:DescribeServices"] - before == 1

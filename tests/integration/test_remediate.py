"""The remediation engine's promises: one actor per incident, resume without repeating, the kill switch."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from guard.agent.playbook import PlanContext, Strategy, playbook_planner
from guard.config import Allow
from guard.journal import EntryKind, Journal
from guard.models import Incident
from guard.policy import KILL_SWITCH_ENV
from tests.support.remedyrun import ALLOW, BAD, REPO, World, deploy


def test_two_concurrent_remediations_take_exactly_one_action(world: World) -> None:
    deploy(world, "broken")
    [inc] = world.sweep().incidents
    barrier = threading.Barrier(2)
    reports: list[Any] = []

    def planner(incident: Incident, ctx: PlanContext, journal: Journal, actor: str) -> list[Strategy]:
        return playbook_planner(incident, ctx, journal, actor)

    def run(actor: str) -> None:
        rem = world.remediator(planner=planner, actor=actor)
        barrier.wait()
        reports.append(rem.run(inc.id, mode=rem.gate.config.mode))

    threads = [threading.Thread(target=run, args=(f"actor-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in reports) == ["claimed_elsewhere", "repaired"]
    assert world.calls("ecs:UpdateService") == 1
    started = [e for e in Journal(world.store, inc.id).entries() if e.kind is EntryKind.ACTION_STARTED]
    assert len(started) == 1


class Killed(BaseException):
    """The process dies (SIGKILL, Lambda timeout) in the middle of waiting for the rollback."""


def test_run_killed_mid_action_resumes_without_repeating(world: World) -> None:
    deploy(world, "broken")
    [inc] = world.sweep().incidents

    def die(_seconds: float) -> None:
        raise Killed

    with pytest.raises(Killed):
        world.remediate(inc, wait=die)
    entries = Journal(world.store, inc.id).entries()
    assert [e.kind for e in entries][-1] is EntryKind.ACTION_STARTED  # no outcome: the run died mid-action
    assert world.calls("ecs:UpdateService") == 1
    report = world.remediate(inc)
    assert report.status == "repaired", report.to_json()
    assert world.calls("ecs:UpdateService") == 1  # the rollback was verified, not repeated
    entries = Journal(world.store, inc.id).entries()
    assert sum(e.kind is EntryKind.ACTION_STARTED for e in entries) == 1
    assert sum(e.kind is EntryKind.PLAN for e in entries) == 1
    assert world.service()["taskDefinition"].endswith("api:1")


def test_kill_switch_set_between_plan_and_act_stops_the_action(world: World) -> None:
    bad = deploy(world, "broken")
    [inc] = world.sweep().incidents

    def planner(incident: Incident, ctx: PlanContext, journal: Journal, actor: str) -> list[Strategy]:
        plan = playbook_planner(incident, ctx, journal, actor)
        world.environ[KILL_SWITCH_ENV] = "on"  # a person flips the switch while the plan is being made
        return plan

    report = world.remediate(inc, planner=planner)
    assert report.status == "escalated"
    assert report.results[0].status == "refused" and "kill switch" in report.results[0].reason
    assert world.service()["taskDefinition"] == bad and world.calls("ecs:UpdateService") == 0


def test_kill_switch_in_ssm_is_checked_immediately_before_acting(world: World) -> None:
    bad = deploy(world, "broken")
    [inc] = world.sweep().incidents
    ssm = world.aws.client("ssm")
    ssm.put_parameter(Name="/deploy-guard/kill-switch", Value="off", Type="String")
    rem = world.remediator(kill_switch_parameter="/deploy-guard/kill-switch")
    decide = rem.gate.decide

    def decide_then_flip(*args: Any, **kwargs: Any) -> Any:
        decision = decide(*args, **kwargs)
        ssm.put_parameter(Name="/deploy-guard/kill-switch", Value="on", Type="String", Overwrite=True)
        return decision

    rem.gate.decide = decide_then_flip  # type: ignore[method-assign]
    report = rem.run(inc.id, mode=rem.gate.config.mode)
    assert report.results[0].status == "stopped" and "SSM parameter" in report.results[0].reason
    assert world.service()["taskDefinition"] == bad and world.calls("ecs:UpdateService") == 0
    kinds = [e.kind for e in Journal(world.store, inc.id).entries()]
    assert EntryKind.KILL_SWITCH in kinds


def test_unknown_incident_is_an_input_error(world: World) -> None:
    from guard.models import InputError

    with pytest.raises(InputError, match="no open incident"):
        world.remediator().run("INC-000000000000", mode=world.config.mode)


def test_dry_run_shows_every_decision_for_every_action(world: World) -> None:
    world.github.add_run(REPO, head_sha=BAD, conclusion="cancelled")
    deploy(world, BAD[:7], services=("api", "worker"))
    bad = world.service()["taskDefinition"]
    [inc] = world.sweep().incidents
    allow = (*(a for a in ALLOW if a.resource != "ecs:prod/*"), Allow("ecs:prod/*", ("ecs_rollback",)))
    report = world.remediate(inc, dry_run=True, allow=allow)
    assert report.status == "refused" and report.exit_code == 1
    verdicts = [(r.action["kind"], re.search(r"would act|would be refused \(\w+\)", r.reason)[0]  # type: ignore[index]
                 if r.status == "refused" else r.status) for r in report.results]
    assert verdicts == [("rerun_build", "would act"), ("redeploy", "would be refused (allowlist)"),
                        ("redeploy", "would be refused (allowlist)"), ("ecs_rollback", "would act"),
                        ("ecs_rollback", "would act"), ("escalate", "dry_run")], report.to_json()
    decisions = [e for e in Journal(world.store, inc.id).entries() if e.kind is EntryKind.DECISION]
    assert [d.data["rule"] for d in decisions] == ["dry_run"] * 5
    assert world.service()["taskDefinition"] == bad and world.calls("ecs:UpdateService") == 0
    assert not [r for r in world.github.requests if r.method == "POST"]

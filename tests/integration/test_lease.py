"""One owner for the whole action: the claim is renewed while its owner waits, and re-verified before acting.

Two actors on one incident, with waits longer than the lease, on local, S3 and DynamoDB state: one
UpdateService per action and one owner in the journal at any time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from guard.journal import Entry, EntryKind, Journal
from guard.remediate import RemediationReport
from tests.support.remedyrun import World, deploy

TTL = 60


@pytest.fixture(params=["local", "s3", "dynamodb"])
def shared(request: pytest.FixtureRequest, world: World) -> World:
    """The world with its state on one backend, known-good recorded and an incident open there."""
    if request.param == "s3":
        world.aws.client("s3").create_bucket(Bucket="guard-state")
        world.state = "s3://guard-state/deploy-guard"
    elif request.param == "dynamodb":
        world.aws.client("dynamodb").create_table(
            TableName="guard-state", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        world.state = "dynamodb://guard-state"
    world.config = world.config.__class__(**{**world.config.__dict__, "lock_ttl_seconds": TTL})
    if world.state:
        world.sweep()  # the known-good records, on this backend
    return world


def _incident(world: World) -> Any:
    deploy(world, "broken")
    [inc] = world.sweep().incidents
    return inc


def _entries(world: World, incident_id: str) -> list[Entry]:
    return Journal(world.runtime().store, incident_id).entries()


def _waiting(world: World, after: float, meanwhile: Callable[[], None]) -> Callable[[float], None]:
    """A sleeper for the first actor: time passes without the rollout progressing until `after` seconds have
    passed, then something else happens once; later waits let ECS converge."""
    start = world.sim.now()
    done = [False]

    def wait(seconds: float) -> None:
        if done[0]:
            world.tick(seconds)
            return
        world.sim.advance(seconds)
        if (world.sim.now() - start).total_seconds() >= after:
            done[0] = True
            meanwhile()

    return wait


def _owners(entries: list[Entry]) -> list[str]:
    """The actors of the journal's entries, consecutive repeats collapsed."""
    out: list[str] = []
    for entry in entries:
        if not out or out[-1] != entry.actor:
            out.append(entry.actor)
    return out


def test_an_owner_waiting_longer_than_the_lease_keeps_it(shared: World) -> None:
    inc = _incident(shared)
    second: list[RemediationReport] = []

    def another_actor() -> None:
        second.append(shared.remediate(inc, actor="actor-b"))

    report = shared.remediate(inc, actor="actor-a", wait=_waiting(shared, TTL * 2, another_actor))
    assert report.status == "repaired", report.to_json()
    [other] = second
    assert other.status == "claimed_elsewhere" and other.exit_code == 1
    assert "actor-a holds this incident until" in other.notes[0]
    assert shared.calls("ecs:UpdateService") == 1
    assert _owners(_entries(shared, inc.id)) == ["actor-a"]


def test_an_owner_that_lost_its_lease_stops_and_says_why(shared: World) -> None:
    inc = _incident(shared)
    second: list[RemediationReport] = []

    def stalled() -> None:  # the first actor stalls past its lease; the second takes over only after expiry
        shared.sim.advance(TTL * 2)
        second.append(shared.remediate(inc, actor="actor-b"))

    report = shared.remediate(inc, actor="actor-a", wait=_waiting(shared, 0, stalled))
    [other] = second
    assert other.status == "repaired", other.to_json()
    assert report.status == "claim_lost" and "actor-a lost its claim" in report.notes[0]
    assert shared.calls("ecs:UpdateService") == 1
    entries = _entries(shared, inc.id)
    assert _owners(entries) == ["actor-a", "actor-b", "actor-a"]
    assert entries[-1].kind is EntryKind.NOTE and "lost its claim" in entries[-1].data["text"]


def test_a_person_takes_over_explicitly(shared: World) -> None:
    inc = _incident(shared)
    second: list[RemediationReport] = []

    def person() -> None:  # the lease is still valid: only an explicit take-over gets it
        assert shared.remediate(inc, actor="person").status == "claimed_elsewhere"
        second.append(shared.remediator(actor="person").run(inc.id, mode=shared.config.mode, take_over=True))

    report = shared.remediate(inc, actor="actor-a", wait=_waiting(shared, 0, person))
    [taken] = second
    assert taken.status == "repaired" and report.status == "claim_lost"
    assert shared.calls("ecs:UpdateService") == 1
    entries = _entries(shared, inc.id)
    [note] = [e for e in entries if e.kind is EntryKind.NOTE and "take_over" in e.data]
    assert note.actor == "person" and note.data["from"] == "actor-a"
    assert _owners(entries) == ["actor-a", "person", "actor-a"]


def test_a_poll_longer_than_a_third_of_the_lease_is_refused() -> None:
    from guard.config import parse_remediate_config
    from guard.models import InputError

    assert parse_remediate_config({"lock_ttl_seconds": 60, "poll_seconds": 20}, "guard.toml").poll_seconds == 20
    with pytest.raises(InputError, match=r"poll_seconds \(21\) must be at most a third of lock_ttl_seconds \(60\)"):
        parse_remediate_config({"lock_ttl_seconds": 60, "poll_seconds": 21}, "guard.toml")

"""The incident journal on a directory, S3 and DynamoDB (moto over HTTP), checked against what the backend holds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from guard.gateways.aws import AwsSession, AwsSettings
from guard.journal import (
    ActionStatus,
    Entry,
    EntryKind,
    Journal,
    JournalConflict,
    JournalCorrupt,
    action_state,
    incidents_with_journals,
)
from guard.sandbox.scenarios import Scenario
from guard.state import DynamoStore, LocalStore, S3Store, StateStore
from tests.support.racing import race

BUCKET = "guard-journal"
TABLE = "guard-journal"
INC = "INC-0123456789ab"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RACERS = 8


@dataclass
class Backend:
    """A store plus direct access to the bytes the backend holds, bypassing the store."""

    store: StateStore
    read: Callable[[str], bytes | None]
    write: Callable[[str, bytes], None]
    remove: Callable[[str], None]


def _local(root: Path) -> Backend:
    def read(key: str) -> bytes | None:
        path = root / key
        return path.read_bytes() if path.is_file() else None

    def write(key: str, data: bytes) -> None:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)

    return Backend(LocalStore(root), read, write, lambda key: (root / key).unlink())


def _s3(aws: Scenario) -> Backend:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)

    def read(key: str) -> bytes | None:
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
        if key not in [obj["Key"] for obj in listed]:
            return None
        return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    return Backend(S3Store(AwsSession(AwsSettings(max_attempts=1)), BUCKET), read,
                   lambda key, data: s3.put_object(Bucket=BUCKET, Key=key, Body=data),
                   lambda key: s3.delete_object(Bucket=BUCKET, Key=key))


def _dynamodb(aws: Scenario) -> Backend:
    ddb = aws.client("dynamodb")
    ddb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")

    def read(key: str) -> bytes | None:
        item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
        return None if item is None else bytes(item["data"]["B"])

    def write(key: str, data: bytes) -> None:
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": key}, "data": {"B": data}, "version": {"S": "forged"}})

    return Backend(DynamoStore(AwsSession(AwsSettings(max_attempts=1)), TABLE), read, write,
                   lambda key: ddb.delete_item(TableName=TABLE, Key={"pk": {"S": key}}))


@pytest.fixture(params=["local", "s3", "dynamodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The same journal contract on every backend; S3 and DynamoDB on a freshly reset moto sandbox."""
    if request.param == "local":
        return _local(tmp_path)
    aws: Scenario = request.getfixturevalue("aws")
    return _s3(aws) if request.param == "s3" else _dynamodb(aws)


class Ticker:
    """An injected clock: T0, then one second later on every call."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        moment = self.now
        self.now += timedelta(seconds=1)
        return moment


def _journal(backend: Backend) -> Journal:
    return Journal(backend.store, INC, clock=Ticker())


def _head(backend: Backend) -> dict[str, Any]:
    raw = backend.read(f"journal/{INC}/head.json")
    assert raw is not None
    doc: dict[str, Any] = json.loads(raw)
    return doc


def _race(worker: Callable[[int], Any]) -> list[Any]:
    return race(worker, RACERS)


# Append and read


def test_round_trip_stores_content_addressed_objects_and_a_head(backend: Backend) -> None:
    journal = _journal(backend)
    written = [journal.append(EntryKind.INCIDENT, {"id": INC, "title": "image does not exist"}, "watchdog"),
               journal.append(EntryKind.PLAN, {"source": "playbook", "actions": ("a1",)}, "agent"),
               journal.append(EntryKind.ACTION_STARTED, {"action_id": "a1", "action": "rollback"}, "agent")]

    assert [e.parent for e in written] == ["", written[0].digest, written[1].digest]
    assert written[0].at == "2024-05-01T12:00:00+00:00" and written[2].at == "2024-05-01T12:00:02+00:00"
    assert written[1].data == {"source": "playbook", "actions": ["a1"]}  # stored as JSON, read back as JSON
    assert journal.entries() == written
    assert Journal(backend.store, INC).entries() == written

    head = _head(backend)
    assert head == {"seq": 3, "entries": [e.digest for e in written], "updated_at": written[2].at}
    for entry in written:
        raw = backend.read(f"journal/{INC}/objects/{entry.digest}.json")
        assert raw is not None and hashlib.sha256(raw).hexdigest() == entry.digest
        assert json.loads(raw) == entry.to_json()
    assert incidents_with_journals(backend.store) == [INC]


def test_incidents_with_journals_lists_only_heads(backend: Backend) -> None:
    for incident in ["INC-b", "INC-a"]:
        Journal(backend.store, incident, clock=Ticker()).append(EntryKind.NOTE, {"text": "hi"}, "me")
    Journal(backend.store, "INC-c", clock=Ticker()).claim("me", 60)
    backend.store.put("journal/stray.json", b"{}")

    assert incidents_with_journals(backend.store) == ["INC-a", "INC-b"]


def test_empty_journal_has_no_entries(backend: Backend) -> None:
    assert _journal(backend).entries() == []
    assert backend.read(f"journal/{INC}/head.json") is None


def test_invalid_entries_are_refused_before_anything_is_written(backend: Backend) -> None:
    journal = _journal(backend)
    journal.append(EntryKind.NOTE, {"text": "first"}, "me")
    before = _head(backend)

    with pytest.raises(ValueError, match="action_id"):
        journal.append(EntryKind.ACTION_STARTED, {"action": "rollback"}, "me")
    with pytest.raises(ValueError, match="allowed"):
        journal.append(EntryKind.DECISION, {"action_id": "a1", "allowed": "no"}, "me")
    with pytest.raises(ValueError, match="JSON"):
        journal.append(EntryKind.NOTE, {"x": float("nan")}, "me")
    with pytest.raises(ValueError, match="JSON"):
        journal.append(EntryKind.NOTE, {"x": {1, 2}}, "me")
    with pytest.raises(ValueError, match="timezone-aware"):
        Journal(backend.store, INC, clock=lambda: datetime(2024, 5, 1)).append(EntryKind.NOTE, {}, "me")

    assert _head(backend) == before
    assert len(backend.store.list(f"journal/{INC}/objects/")) == 1


def test_incident_id_must_be_one_key_segment(backend: Backend) -> None:
    for bad in ["a/b", "", "../x", ".hidden"]:
        with pytest.raises(ValueError):
            Journal(backend.store, bad)


# Verification


def test_tampered_object_is_corrupt(backend: Backend) -> None:
    journal = _journal(backend)
    journal.append(EntryKind.NOTE, {"text": "one"}, "me")
    second = journal.append(EntryKind.DECISION, {"action_id": "a1", "allowed": False, "rule": "allowlist"}, "gate")
    key = f"journal/{INC}/objects/{second.digest}.json"
    forged = dict(second.to_json(), data={"action_id": "a1", "allowed": True, "rule": "allowlist"})
    backend.write(key, json.dumps(forged).encode())

    with pytest.raises(JournalCorrupt, match="hashes to"):
        Journal(backend.store, INC).entries()


def test_garbage_object_is_corrupt(backend: Backend) -> None:
    entry = _journal(backend).append(EntryKind.NOTE, {"text": "one"}, "me")
    backend.write(f"journal/{INC}/objects/{entry.digest}.json", b"not json")

    with pytest.raises(JournalCorrupt):
        Journal(backend.store, INC).entries()


def test_missing_object_is_corrupt(backend: Backend) -> None:
    journal = _journal(backend)
    first = journal.append(EntryKind.NOTE, {"text": "one"}, "me")
    journal.append(EntryKind.NOTE, {"text": "two"}, "me")
    backend.remove(f"journal/{INC}/objects/{first.digest}.json")

    with pytest.raises(JournalCorrupt, match="entry 1 is missing"):
        Journal(backend.store, INC).entries()


def test_reordered_head_breaks_the_parent_chain(backend: Backend) -> None:
    journal = _journal(backend)
    entries = [journal.append(EntryKind.NOTE, {"text": str(n)}, "me") for n in range(3)]
    head = _head(backend)
    head["entries"] = [entries[0].digest, entries[2].digest, entries[1].digest]
    backend.write(f"journal/{INC}/head.json", json.dumps(head).encode())

    with pytest.raises(JournalCorrupt, match="parent"):
        Journal(backend.store, INC).entries()


def test_dropped_entry_breaks_the_parent_chain(backend: Backend) -> None:
    journal = _journal(backend)
    entries = [journal.append(EntryKind.NOTE, {"text": str(n)}, "me") for n in range(3)]
    backend.write(f"journal/{INC}/head.json",
                  json.dumps({"seq": 2, "entries": [entries[0].digest, entries[2].digest]}).encode())

    with pytest.raises(JournalCorrupt, match="parent"):
        Journal(backend.store, INC).entries()


@pytest.mark.parametrize("head", [b"{", b'{"seq": 2, "entries": []}', b'{"seq": 1, "entries": ["abc"]}', b"[]"])
def test_unreadable_head_is_corrupt(backend: Backend, head: bytes) -> None:
    backend.write(f"journal/{INC}/head.json", head)

    with pytest.raises(JournalCorrupt, match="head"):
        Journal(backend.store, INC).entries()


# Concurrency: one head, one winner


def test_two_appenders_on_one_head_one_wins_then_both_land_in_order(backend: Backend) -> None:
    first, second = _journal(backend), Journal(backend.store, INC, clock=Ticker(T0 + timedelta(minutes=1)))
    assert first.entries() == second.entries() == []

    a1 = first.append(EntryKind.PROPOSAL, {"action_id": "a1", "action": "rollback"}, "watchdog-1")
    with pytest.raises(JournalConflict):  # both created the first head: only one create wins
        second.append(EntryKind.PROPOSAL, {"action_id": "b1", "action": "rollback"}, "watchdog-2")
    with pytest.raises(JournalConflict):  # retrying without re-reading keeps losing
        second.append(EntryKind.PROPOSAL, {"action_id": "b1", "action": "rollback"}, "watchdog-2")

    assert second.entries() == [a1]
    b1 = second.append(EntryKind.PROPOSAL, {"action_id": "b1", "action": "rollback"}, "watchdog-2")
    with pytest.raises(JournalConflict):  # now the compare-and-swap of an existing head loses
        first.append(EntryKind.ACTION_STARTED, {"action_id": "a1"}, "watchdog-1")

    assert first.entries() == [a1, b1]
    a2 = first.append(EntryKind.ACTION_STARTED, {"action_id": "a1"}, "watchdog-1")

    assert Journal(backend.store, INC).entries() == [a1, b1, a2]
    assert [e.parent for e in (a1, b1, a2)] == ["", a1.digest, b1.digest]
    assert _head(backend)["seq"] == 3


@pytest.mark.parametrize("seeded", [False, True], ids=["first-head", "next-head"])
def test_racing_appenders_exactly_one_wins(backend: Backend, seeded: bool) -> None:
    seed = [_journal(backend).append(EntryKind.NOTE, {"text": "seed"}, "me")] if seeded else []
    racers = [Journal(backend.store, INC, clock=Ticker()) for _ in range(RACERS)]
    for racer in racers:
        assert racer.entries() == seed

    results = _race(lambda i: racers[i].append(EntryKind.ACTION_STARTED, {"action_id": f"a{i}"}, f"w{i}"))

    winners = [r for r in results if isinstance(r, Entry)]
    assert len(winners) == 1, results
    assert all(isinstance(r, JournalConflict) for r in results if r is not winners[0])
    assert Journal(backend.store, INC).entries() == [*seed, winners[0]]
    assert _head(backend)["seq"] == len(seed) + 1


# Ownership


def test_racing_claims_exactly_one_wins(backend: Backend) -> None:
    journals = [Journal(backend.store, INC) for _ in range(RACERS)]

    results = _race(lambda i: journals[i].claim(f"watchdog-{i}", 300, T0))

    assert sorted(results) == [False] * (RACERS - 1) + [True]
    raw = backend.read(f"journal/{INC}/owner.json")
    assert raw is not None
    assert json.loads(raw) == {"actor": f"watchdog-{results.index(True)}",
                               "expires_at": (T0 + timedelta(seconds=300)).isoformat()}


def test_claim_renew_expire_take_over_and_release(backend: Backend) -> None:
    journal = _journal(backend)

    def owner() -> dict[str, str]:
        raw = backend.read(f"journal/{INC}/owner.json")
        assert raw is not None
        doc: dict[str, str] = json.loads(raw)
        return doc

    assert journal.claim("a", 60, T0)
    assert not journal.claim("b", 60, T0 + timedelta(seconds=30))
    assert journal.claim("a", 60, T0 + timedelta(seconds=30))  # renewal
    assert owner() == {"actor": "a", "expires_at": "2024-05-01T12:01:30+00:00"}
    assert not journal.claim("b", 60, T0 + timedelta(seconds=61))  # would have expired without the renewal
    assert journal.claim("b", 60, T0 + timedelta(seconds=90))  # expired: taken over
    assert owner()["actor"] == "b"
    assert not journal.claim("a", 60, T0 + timedelta(seconds=91))

    assert not journal.release("a", T0 + timedelta(seconds=92))
    assert owner()["actor"] == "b"
    assert journal.release("b", T0 + timedelta(seconds=92))
    assert journal.claim("a", 60, T0 + timedelta(seconds=92))  # released: free at once
    assert owner() == {"actor": "a", "expires_at": "2024-05-01T12:02:32+00:00"}


def test_claim_uses_the_injected_clock(backend: Backend) -> None:
    journal = Journal(backend.store, INC, clock=lambda: T0)

    assert journal.claim("a", 10)
    raw = backend.read(f"journal/{INC}/owner.json")
    assert raw is not None and json.loads(raw)["expires_at"] == "2024-05-01T12:00:10+00:00"
    with pytest.raises(ValueError, match="positive"):
        journal.claim("a", 0)


def test_unreadable_owner_record_fails_closed(backend: Backend) -> None:
    backend.write(f"journal/{INC}/owner.json", b"{}")

    with pytest.raises(JournalCorrupt, match="owner"):
        _journal(backend).claim("a", 60, T0)


# Resume


@pytest.fixture
def crashed_run(backend: Backend) -> Journal:
    """A run that finished a1, failed a2, retried a3 successfully, and crashed in the middle of a4."""
    journal = _journal(backend)
    for kind, action_id in [(EntryKind.ACTION_STARTED, "a1"), (EntryKind.ACTION_SUCCEEDED, "a1"),
                            (EntryKind.VERIFIED, "a1"), (EntryKind.ACTION_STARTED, "a2"),
                            (EntryKind.ACTION_FAILED, "a2"), (EntryKind.ACTION_STARTED, "a3"),
                            (EntryKind.ACTION_FAILED, "a3"), (EntryKind.ACTION_STARTED, "a3"),
                            (EntryKind.ACTION_SUCCEEDED, "a3"), (EntryKind.DECISION, "a4"),
                            (EntryKind.ACTION_STARTED, "a4")]:
        data: dict[str, Any] = {"action_id": action_id}
        if kind is EntryKind.DECISION:
            data["allowed"] = True
        journal.append(kind, data, "watchdog-1")
    return Journal(backend.store, INC, clock=Ticker(T0 + timedelta(hours=1)))


def test_action_state_after_a_crash(crashed_run: Journal) -> None:
    state = action_state(crashed_run.entries())

    assert state == {"a1": "succeeded", "a2": "failed", "a3": "succeeded", "a4": "started"}
    assert list(state) == ["a1", "a2", "a3", "a4"]
    assert state["a4"] is ActionStatus.STARTED


def test_resumed_run_continues_the_same_chain(backend: Backend, crashed_run: Journal) -> None:
    before = crashed_run.entries()
    assert crashed_run.claim("watchdog-2", 60, T0 + timedelta(hours=1))

    resumed = crashed_run.append(EntryKind.VERIFIED, {"action_id": "a4", "ok": True}, "watchdog-2")
    crashed_run.append(EntryKind.ACTION_SUCCEEDED, {"action_id": "a4"}, "watchdog-2")

    after = Journal(backend.store, INC).entries()
    assert after[: len(before)] == before and after[len(before)] == resumed
    assert resumed.parent == before[-1].digest
    assert action_state(after)["a4"] is ActionStatus.SUCCEEDED

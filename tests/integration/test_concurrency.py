"""Independent reads run on a bounded pool, at the minimum call count, with results in a deterministic order.

Concurrency is proven without timing: a botocore hook makes each request wait at a barrier that only opens
when enough requests are in flight at once, so sequential code breaks the barrier.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from guard.gateways.aws import AwsSession
from guard.gateways.ecr import Boto3Ecr, ImageInfo, ImageStatus
from guard.gateways.refs import Boto3Refs, RefStatus, pooled
from guard.models import ImageRef
from guard.runtime import Runtime
from guard.sandbox.scenarios import Scenario
from guard.watch import WatchScope


def _meet(client: Any, operation: str, parties: int) -> threading.Barrier:
    """Hold each `operation` request on `client` until `parties` of them are in flight together."""
    barrier = threading.Barrier(parties, timeout=10)
    event = f"before-send.{client.meta.service_model.service_name}.{operation}"

    def hold(**kwargs: Any) -> None:  # a before-send hook that returns nothing lets the request go on
        barrier.wait()

    client.meta.events.register(event, hold)
    return barrier


def test_pooled_keeps_key_order_and_runs_calls_together() -> None:
    barrier = threading.Barrier(3, timeout=10)
    assert list(pooled(lambda k: (barrier.wait(), k * 2)[1], [3, 1, 2], workers=3).items()) == [(3, 6), (1, 2),
                                                                                                 (2, 4)]
    with pytest.raises(threading.BrokenBarrierError):
        pooled(lambda k: threading.Barrier(2, timeout=0.5).wait(), [1, 2], workers=1)


def test_log_groups_are_looked_up_50_per_call_with_batches_concurrent(aws: Scenario) -> None:
    names = [f"/ecs/g{i:03}" for i in range(120)]
    for name in names[::2]:
        aws.log_group(name)
    Scenario(aws.sandbox, region="eu-west-1").log_group("/ecs/g000")
    session = AwsSession()
    asked: list[list[str]] = []
    logs = session.client("logs")
    logs.meta.events.register("before-parameter-build.logs.DescribeLogGroups",
                              lambda params, **kw: asked.append(params["logGroupIdentifiers"]))
    _meet(logs, "DescribeLogGroups", 3)  # 120 groups: three batches in flight together

    found = Boto3Refs(session, workers=4).log_groups([*((None, n) for n in reversed(names)), (None, names[0]),
                                                      ("eu-west-1", "/ecs/g000"), ("eu-west-1", "/ecs/g001")])

    assert list(found) == [*((None, n) for n in names), ("eu-west-1", "/ecs/g000"), ("eu-west-1", "/ecs/g001")]
    assert [found[(None, n)] for n in names] == [RefStatus.EXISTS, RefStatus.MISSING] * 60
    assert (found[("eu-west-1", "/ecs/g000")], found[("eu-west-1", "/ecs/g001")]) == (RefStatus.EXISTS,
                                                                                     RefStatus.MISSING)
    assert sorted(len(a) for a in asked) == [20, 50, 50]  # the eu-west-1 client is another client
    assert sorted(n for a in asked for n in a) == names
    assert session.stats.calls["logs:DescribeLogGroups"] == 4


def test_one_client_per_service_and_region_and_a_creation_never_holds_up_cached_clients(
        aws: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    session = AwsSession()
    ecr = session.client("ecr")
    assert session.client("ecr", aws.sandbox.region) is ecr and session.client("ecr", "eu-west-1") is not ecr
    creating, release = threading.Event(), threading.Event()
    create = session._session_for

    def slow(account: str) -> Any:
        creating.set()
        release.wait(10)
        return create(account)

    monkeypatch.setattr(session, "_session_for", slow)
    logs = threading.Thread(target=session.client, args=("logs",))
    logs.start()
    assert creating.wait(10)
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(session.client("ecr")))
    reader.start()
    reader.join(10)
    assert got == [ecr]  # answered while the logs client was still being created
    release.set()
    logs.join(10)
    monkeypatch.setattr(session, "_session_for", create)
    made = pooled(lambda _: session.client("sts"), range(8), workers=8)
    assert len({id(c) for c in made.values()}) == 1


class _Watched:
    """A lock that says when the thread named `name` has released it (made its decision under it)."""

    def __init__(self, lock: Any, name: str, released: threading.Event) -> None:
        self.lock, self.name, self.released = lock, name, released

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
        if threading.current_thread().name == self.name:
            self.released.set()


def test_an_image_asked_for_while_its_lookup_is_in_flight_is_waited_for_not_asked_again(aws: Scenario) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    session = AwsSession()
    reader = Boto3Ecr(session)
    ref = ImageRef.parse(f"{repo}:v1")
    decided = threading.Event()
    reader._lock = _Watched(reader._lock, "second", decided)  # type: ignore[assignment]
    answers: list[dict[str, Any]] = []
    second = threading.Thread(target=lambda: answers.append(reader.lookup([ref])), name="second")

    def in_flight(**kwargs: Any) -> None:  # the first lookup's request is held until the second one has decided
        if not second.is_alive() and not answers:
            second.start()
            assert decided.wait(10)

    session.client("ecr").meta.events.register("before-send.ecr.BatchGetImage", in_flight)
    first = reader.lookup([ref])
    second.join(10)
    assert answers == [first] and isinstance(info := first[ref.uri], ImageInfo) and info.status is ImageStatus.PRESENT
    assert session.stats.calls["ecr:BatchGetImage"] == 1


def test_secrets_and_roles_are_deduplicated_and_concurrent(aws: Scenario) -> None:
    db, api = aws.secret("db"), aws.secret("api")
    role = aws.role("exec")
    session = AwsSession()
    _meet(session.client("secretsmanager"), "DescribeSecret", 2)
    refs = Boto3Refs(session, workers=4)
    found = refs.secrets([f"{db}:password::", f"{db}:username::", api, db])
    assert found == dict.fromkeys(sorted([f"{db}:password::", f"{db}:username::", api, db]), RefStatus.EXISTS)
    assert session.stats.calls["secretsmanager:DescribeSecret"] == 2  # one per secret, whatever the JSON key
    pathed = role.replace(":role/", ":role/team/")
    roles = refs.roles([role, pathed, role.replace("exec", "gone")])
    assert roles == {role: RefStatus.EXISTS, pathed: RefStatus.EXISTS,
                     role.replace("exec", "gone"): RefStatus.MISSING}
    assert session.stats.calls["iam:GetRole"] == 2  # one per distinct role name


def test_sweep_describes_a_clusters_services_concurrently(aws: Scenario, tmp_path: Path) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    aws.cluster("prod")
    tds = [aws.task_definition(f"td{i}", [("app", f"{repo}:v1")]) for i in range(3)]
    for i in range(25):
        aws.service("prod", f"s{i:02}", tds[i % 3], desired=1)
    runtime = Runtime(state=str(tmp_path))
    dog = runtime.watchdog(heartbeat=False)
    _meet(dog.aws.client("ecs"), "DescribeServices", 3)  # 25 services: three chunks in flight together
    _meet(dog.aws.client("ecs"), "DescribeTaskDefinition", 3)
    snap = dog.collect(WatchScope(functions=()))
    assert [s.name for s in snap.services] == [f"s{i:02}" for i in range(25)]
    assert sorted(snap.task_definitions) == sorted(tds)
    calls = dog.aws.stats.calls
    assert (calls["ecs:ListServices"], calls["ecs:DescribeServices"], calls["ecs:DescribeTaskDefinition"]) == (1, 3, 3)
    assert snap.errors == ()

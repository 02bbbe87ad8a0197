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
from guard.gateways.refs import Boto3Refs, RefStatus, pooled
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


def test_log_groups_are_looked_up_concurrently(aws: Scenario) -> None:
    aws.log_group("/ecs/b")
    session = AwsSession()
    _meet(session.client("logs"), "DescribeLogGroups", 3)
    found = Boto3Refs(session, workers=4).log_groups([(None, "/ecs/c"), (None, "/ecs/a"), (None, "/ecs/b"),
                                                      (None, "/ecs/a")])
    assert list(found.items()) == [((None, "/ecs/a"), RefStatus.MISSING), ((None, "/ecs/b"), RefStatus.EXISTS),
                                   ((None, "/ecs/c"), RefStatus.MISSING)]
    assert session.stats.calls["logs:DescribeLogGroups"] == 3


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

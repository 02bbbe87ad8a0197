"""State stores: the same contract on a directory, S3 and DynamoDB (moto over HTTP), checked on the backend."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from guard.errors import GatewayError, Unreachable
from guard.gateways.aws import AwsSession, AwsSettings
from guard.sandbox.scenarios import Scenario
from guard.state import (
    Conflict,
    DynamoStore,
    LocalStore,
    S3Store,
    StateStore,
    StoreUnavailable,
    Versioned,
    read_json,
    store_from_url,
    update_json,
)
from tests.support.racing import race

BUCKET = "guard-state"
TABLE = "guard-state"
PREFIX = "watchdog"
RACERS = 8
BAD_KEYS = ["", "/abs", "..", ".", "a/../b", "a/./b", "a//b", "a/", ".hidden", "a/.tmp", "-flag", "a b",
            "a\\b", "ключ", "a:b", "a\nb", "x" * 600]


@dataclass
class Backend:
    """A store and a way to read what the backend itself holds for a key."""

    name: str
    store: StateStore
    raw: Callable[[str], bytes | None]
    session: AwsSession | None = None


def _session() -> AwsSession:
    return AwsSession(AwsSettings(max_attempts=1))


def _local(root: Path) -> Backend:
    def raw(key: str) -> bytes | None:
        path = root / key
        return path.read_bytes() if path.is_file() else None

    return Backend("local", LocalStore(root), raw)


def _s3(aws: Scenario, **kw: Any) -> Backend:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)

    def raw(key: str) -> bytes | None:
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{key}").get("Contents", [])
        if f"{PREFIX}/{key}" not in [obj["Key"] for obj in listed]:
            return None
        return bytes(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}")["Body"].read())

    session = _session()
    return Backend("s3", S3Store(session, BUCKET, PREFIX, **kw), raw, session)


def _dynamodb(aws: Scenario, **kw: Any) -> Backend:
    ddb = aws.client("dynamodb")
    ddb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")

    def raw(key: str) -> bytes | None:
        item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
        if item is None:
            return None
        assert set(item) == {"pk", "data", "version"}
        assert len(item["version"]["S"]) == 32
        return bytes(item["data"]["B"])

    session = _session()
    return Backend("dynamodb", DynamoStore(session, TABLE, **kw), raw, session)


@pytest.fixture(params=["local", "s3", "dynamodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each backend, empty; S3 and DynamoDB on a freshly reset sandbox."""
    if request.param == "local":
        return _local(tmp_path / "state")
    aws: Scenario = request.getfixturevalue("aws")
    return _s3(aws) if request.param == "s3" else _dynamodb(aws)


def _race(worker: Callable[[int], Any]) -> list[Any]:
    return race(worker, RACERS)


# The contract, on every backend


def test_put_then_get_returns_the_bytes_and_the_version_put_returned(backend: Backend) -> None:
    store = backend.store
    assert store.get("incidents/inc-1") is None

    first = store.put("incidents/inc-1", b"one")
    assert store.get("incidents/inc-1") == Versioned(b"one", first)
    assert backend.raw("incidents/inc-1") == b"one"

    second = store.put("incidents/inc-1", b"two")
    assert second != first
    assert store.get("incidents/inc-1") == Versioned(b"two", second)
    assert backend.raw("incidents/inc-1") == b"two"


def test_empty_and_binary_objects_round_trip(backend: Backend) -> None:
    payload = bytes(range(256))
    version = backend.store.put("blob", payload)
    assert backend.store.create("empty", b"") is True

    assert backend.store.get("blob") == Versioned(payload, version)
    empty = backend.store.get("empty")
    assert empty is not None and empty.data == b""
    assert backend.raw("blob") == payload
    assert backend.raw("empty") == b""


def test_create_is_exclusive_and_never_overwrites(backend: Backend) -> None:
    store = backend.store
    assert store.create("heads/inc-1/0001", b"first") is True
    before = store.get("heads/inc-1/0001")

    assert store.create("heads/inc-1/0001", b"second") is False

    assert store.get("heads/inc-1/0001") == before
    assert backend.raw("heads/inc-1/0001") == b"first"


def test_compare_and_swap_wins_with_the_current_version_and_loses_with_a_stale_one(backend: Backend) -> None:
    store = backend.store
    v1 = store.put("known-good/web", b"td:1")
    v2 = store.put("known-good/web", b"td:2", if_version=v1)
    assert store.get("known-good/web") == Versioned(b"td:2", v2)

    with pytest.raises(Conflict):
        store.put("known-good/web", b"td:3", if_version=v1)

    assert store.get("known-good/web") == Versioned(b"td:2", v2)
    assert backend.raw("known-good/web") == b"td:2"


def test_compare_and_swap_on_an_absent_key_conflicts_and_creates_nothing(backend: Backend) -> None:
    version = backend.store.put("gone", b"x")
    backend.store.delete("gone")

    with pytest.raises(Conflict):
        backend.store.put("gone", b"y", if_version=version)

    assert backend.store.get("gone") is None
    assert backend.raw("gone") is None


def test_list_returns_sorted_keys_under_a_prefix(backend: Backend) -> None:
    store = backend.store
    for key in ["incidents/b", "incidents/a", "journal/a/evidence", "incidents-old/x", "heartbeat"]:
        store.put(key, key.encode())

    assert store.list("incidents/") == ["incidents/a", "incidents/b"]
    assert store.list("incidents") == ["incidents-old/x", "incidents/a", "incidents/b"]
    assert store.list("incidents/a") == ["incidents/a"]
    assert store.list("") == ["heartbeat", "incidents-old/x", "incidents/a", "incidents/b", "journal/a/evidence"]
    assert store.list("journal/a/") == ["journal/a/evidence"]
    assert store.list("nothing/") == []


def test_delete_removes_the_key_and_ignores_absent_keys(backend: Backend) -> None:
    store = backend.store
    store.put("locks/web", b"held")
    store.put("locks/api", b"held")

    store.delete("locks/web")
    store.delete("locks/web")
    store.delete("never/was")

    assert store.get("locks/web") is None
    assert backend.raw("locks/web") is None
    assert store.list("locks/") == ["locks/api"]
    assert store.create("locks/web", b"again") is True


def test_eight_concurrent_creates_of_one_key_have_exactly_one_winner(backend: Backend) -> None:
    results = _race(lambda i: backend.store.create("heads/inc-7/0002", f"runner-{i}".encode()))

    assert sorted(map(repr, results)) == sorted(["True"] + ["False"] * (RACERS - 1))
    winner = results.index(True)
    assert backend.raw("heads/inc-7/0002") == f"runner-{winner}".encode()


def test_eight_concurrent_increments_lose_no_update(backend: Backend) -> None:
    # Each lost race means another racer won, so RACERS attempts always suffice.
    results = _race(lambda _: update_json(backend.store, "stats/actions", lambda n: (n or 0) + 1,
                                          attempts=RACERS))

    assert sorted(results) == list(range(1, RACERS + 1))
    value, version = read_json(backend.store, "stats/actions")
    assert value == RACERS and version is not None
    assert json.loads(backend.raw("stats/actions") or b"null") == RACERS


def test_read_json_and_update_json_create_when_absent(backend: Backend) -> None:
    store = backend.store
    assert read_json(store, "incidents/open") == (None, None)

    seen: list[Any] = []

    def add(current: Any) -> Any:
        seen.append(current)
        return {**(current or {}), f"inc-{len(seen)}": {"severity": "high"}}

    assert update_json(store, "incidents/open", add) == {"inc-1": {"severity": "high"}}
    assert update_json(store, "incidents/open", add) == {"inc-1": {"severity": "high"},
                                                          "inc-2": {"severity": "high"}}
    assert seen == [None, {"inc-1": {"severity": "high"}}]
    value, version = read_json(store, "incidents/open")
    assert value == {"inc-1": {"severity": "high"}, "inc-2": {"severity": "high"}}
    stored = store.get("incidents/open")
    assert stored is not None and version == stored.version
    assert json.loads(backend.raw("incidents/open") or b"null") == value


def test_update_json_gives_up_with_conflict_when_every_attempt_loses(backend: Backend) -> None:
    store = backend.store
    store.put("heartbeat", b"0")
    interferences = 0

    def meddle(current: Any) -> Any:
        nonlocal interferences
        interferences += 1
        store.put("heartbeat", str(1000 + interferences).encode())
        return current + 1

    with pytest.raises(Conflict):
        update_json(store, "heartbeat", meddle, attempts=3)

    assert interferences == 3
    assert backend.raw("heartbeat") == b"1003"


def test_invalid_keys_are_rejected_before_touching_the_backend(backend: Backend) -> None:
    store = backend.store
    for key in BAD_KEYS:
        for operation in (lambda k: store.get(k), lambda k: store.put(k, b"x"), lambda k: store.create(k, b"x"),
                          lambda k: store.delete(k), lambda k: store.put(k, b"x", if_version="v")):
            with pytest.raises(ValueError, match="invalid state key"):
                operation(key)
    for prefix in ["../", "/", "a//", ".state/"]:
        with pytest.raises(ValueError):
            store.list(prefix)
    assert store.list("") == []

    assert store.create("Svc_1/td-2.json", b"ok") is True
    assert store.list("") == ["Svc_1/td-2.json"]


# LocalStore


def test_local_versions_are_content_hashes_and_objects_are_plain_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    version = store.put("a/b/c", b"data")
    assert version == hashlib.sha256(b"data").hexdigest()
    assert (tmp_path / "a" / "b" / "c").read_bytes() == b"data"


def test_local_store_never_leaves_temp_files_behind(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    version = store.put("k", b"1")
    assert store.create("k", b"2") is False
    with pytest.raises(Conflict):
        store.put("k", b"3", if_version="stale")
    store.put("k", b"4", if_version=version)
    assert store.create("other", b"5") is True
    update_json(store, "n", lambda n: (n or 0) + 1)
    store.delete("other")

    assert list((tmp_path / ".state" / "tmp").iterdir()) == []
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                   if p.is_file() and ".state" not in p.parts)
    assert files == ["k", "n"]
    assert (tmp_path / "k").read_bytes() == b"4"


def test_local_store_hides_internal_and_crash_leftover_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("k", b"1")
    (tmp_path / ".state" / "tmp" / "obj-crashed").write_bytes(b"half")

    assert store.list("") == ["k"]
    assert store.get("k") == Versioned(b"1", hashlib.sha256(b"1").hexdigest())


def test_local_compare_and_swap_holds_its_lock_from_compare_to_rename(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Widen the window between the version check and the rename: only the lock keeps racers out of it.
    makedirs = LocalStore._makedirs

    def slow_makedirs(self: LocalStore, directory: Path) -> None:
        time.sleep(0.005)
        makedirs(self, directory)

    monkeypatch.setattr(LocalStore, "_makedirs", slow_makedirs)
    store = LocalStore(tmp_path)
    store.put("counter", b"0")

    results = _race(lambda _: update_json(store, "counter", lambda n: (n or 0) + 1, attempts=RACERS))

    assert sorted(results) == list(range(1, RACERS + 1))
    assert (tmp_path / "counter").read_bytes() == b"8"


def _increment_in_process(root: str, times: int) -> None:
    store = LocalStore(Path(root))
    for _ in range(times):
        update_json(store, "counter", lambda n: (n or 0) + 1, attempts=50)


def test_local_compare_and_swap_is_atomic_across_processes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_increment_in_process, args=(str(tmp_path), 10)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    assert json.loads((tmp_path / "counter").read_bytes()) == 30


# S3 and DynamoDB specifics


def test_s3_objects_live_under_the_prefix_and_foreign_objects_are_not_listed(aws: Scenario) -> None:
    backend = _s3(aws)
    s3 = aws.client("s3")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/k", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/bad key", Body=b"x")

    version = backend.store.put("k", b"mine")

    head = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}/k")
    assert head["ETag"] == version
    assert backend.store.list("") == ["k"]
    assert S3Store(_session(), BUCKET, f"/{PREFIX}/").list("") == ["k"]


@pytest.mark.parametrize("make", [_s3, _dynamodb], ids=["s3", "dynamodb"])
def test_list_follows_pagination(aws: Scenario, make: Callable[..., Backend]) -> None:
    backend = make(aws, page_size=2)
    keys = [f"incidents/inc-{i}" for i in range(5)]
    for key in reversed(keys):
        backend.store.put(key, b"x")
    backend.store.put("other", b"x")
    assert backend.session is not None
    before = dict(backend.session.stats.calls)

    assert backend.store.list("incidents/") == keys

    api = "s3:ListObjectsV2" if backend.name == "s3" else "dynamodb:Scan"
    assert backend.session.stats.calls[api] - before.get(api, 0) >= 3  # 5 of 6 keys, 2 per page


STORE_OPERATIONS: dict[str, Callable[[StateStore], object]] = {
    "get": lambda store: store.get("k"),
    "put": lambda store: store.put("k", b"x"),
    "cas": lambda store: store.put("k", b"x", if_version="v"),
    "create": lambda store: store.create("k", b"x"),
    "list": lambda store: store.list(""),
    "delete": lambda store: store.delete("k"),
}


@pytest.mark.parametrize("operation", sorted(STORE_OPERATIONS))
def test_missing_bucket_or_table_is_a_gateway_error_not_an_empty_store(aws: Scenario, operation: str) -> None:
    session = _session()
    missing: list[tuple[StateStore, str, str]] = [(S3Store(session, "no-such-bucket"), "S3", "NoSuchBucket"),
                                                  (DynamoStore(session, "no-such-table"), "DynamoDB",
                                                   "ResourceNotFoundException")]
    for store, service, code in missing:
        with pytest.raises(StoreUnavailable) as caught:
            STORE_OPERATIONS[operation](store)
        assert isinstance(caught.value, GatewayError)
        assert (caught.value.service, caught.value.code) == (service, code)
    assert aws.client("s3").list_buckets()["Buckets"] == []


def test_unreachable_endpoint_maps_to_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    session = _session()
    with pytest.raises(Unreachable):
        S3Store(session, BUCKET).get("k")
    with pytest.raises(Unreachable):
        DynamoStore(session, TABLE).create("k", b"x")


# store_from_url


def test_store_from_url_picks_the_backend(tmp_path: Path) -> None:
    session = _session()
    local = store_from_url(str(tmp_path / "a"), session)
    assert isinstance(local, LocalStore) and local.root == tmp_path / "a"
    file_url = store_from_url(f"file://{tmp_path}/b%20c")
    assert isinstance(file_url, LocalStore) and file_url.root == tmp_path / "b c"
    relative = store_from_url("state-dir")
    assert isinstance(relative, LocalStore) and relative.root == Path("state-dir")

    s3 = store_from_url("s3://guard-state/env/prod/", session)
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("guard-state", "env/prod/")
    bare = store_from_url("s3://guard-state", session)
    assert isinstance(bare, S3Store) and bare.prefix == ""

    ddb = store_from_url("dynamodb://guard-state", session)
    assert isinstance(ddb, DynamoStore) and ddb.table == "guard-state"


@pytest.mark.parametrize("url", ["", "gs://bucket/x", "http://example.com/state", "s3://", "s3:///prefix",
                                 "s3://bucket/../x", "dynamodb://", "dynamodb://table/extra",
                                 "file://otherhost/path", "file://", "s3://bucket/p?versionId=1"])
def test_store_from_url_rejects_what_it_cannot_serve(url: str) -> None:
    with pytest.raises(ValueError):
        store_from_url(url, _session())

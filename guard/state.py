"""Durable key-value state with conditional writes: a local directory, an S3 prefix or a DynamoDB table.

The watchdog (open incidents, known-good task definitions, heartbeat) and the remediation journal keep
their state here. Every backend offers the same two preconditions, and both are atomic on the backend
itself, so two concurrent watchdog invocations can never both win:

- `create(key, data)` is create-exclusive: True if this call made the key, False if it already existed
  (the existing object is never overwritten);
- `put(key, data, if_version=token)` is compare-and-swap: it writes only while the key still holds the
  version `token` (from `get` or an earlier `put`) and raises Conflict otherwise, also when the key is gone.
  `put(key, data)` without `if_version` writes unconditionally.

Keys are '/'-separated relative paths; each segment starts with a letter or digit and continues with
letters, digits, '.', '_' or '-' (so '.', '..' and absolute paths are impossible, and dot-names stay free
for LocalStore's own temp and lock files). Versions are opaque tokens: the sha256 of the content for
LocalStore, the ETag for S3Store and a random UUID for DynamoStore.

Missing buckets or tables and other refusals of the store surface as StoreUnavailable, a GatewayError:
state that cannot be read means the caller could not verify, never an empty store.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import json
import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from botocore.exceptions import ClientError

from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call, error_code, map_error

MAX_KEY_LENGTH = 512
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}"
_KEY = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_INTERNAL = ".state"
_BACKOFF_S = 0.005
_MAX_BACKOFF_S = 0.2


class Conflict(Exception):
    """A conditional write lost: someone else wrote first."""


class StoreUnavailable(GatewayError):
    """The store refused the request or does not exist (e.g. no such bucket or table)."""

    kind = "StoreUnavailable"


@dataclass(frozen=True)
class Versioned:
    """An object's bytes and the opaque version token a compare-and-swap must name."""

    data: bytes
    version: str


class StateStore(Protocol):
    """Key-value state with create-exclusive and compare-and-swap writes."""

    def get(self, key: str) -> Versioned | None:
        """The object at `key` with its version, or None when absent."""
        ...

    def put(self, key: str, data: bytes, *, if_version: str | None = None) -> str:
        """Write `key` (only while it holds `if_version`, when given) and return the new version."""
        ...

    def create(self, key: str, data: bytes) -> bool:
        """Write `key` only if absent; False (and nothing written) when it already exists."""
        ...

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys starting with `prefix`, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; absent keys are ignored."""
        ...


def check_key(key: str) -> str:
    """Return `key` if it is a valid state key, else raise ValueError."""
    if len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise ValueError(f"invalid state key {key!r}: use '/'-separated segments of [A-Za-z0-9._-] "
                         f"that start with a letter or digit, at most {MAX_KEY_LENGTH} characters")
    return key


def _check_prefix(prefix: str) -> str:
    """Return `prefix` if some valid key could start with it ("" lists everything), else ValueError."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix


# Local directory


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore:
    """Files under `root`; writes publish a fsynced temp file by link (create) or rename (put).

    Compare-and-swap, plain put and delete hold a per-key `flock` lock file, so they are atomic against
    other threads and processes on this machine (not across NFS). Temp and lock files live under
    `root/.state/`; a crash can leave a temp file there but never a half-written object. A key cannot be
    both an object and a prefix of other keys ('a' and 'a/b'), as in any file system.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _makedirs(self, directory: Path) -> None:
        """Create `directory` and its missing parents, fsyncing each new entry's parent."""
        missing: builtins.list[Path] = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):
                new.mkdir()
            _fsync_dir(new.parent)

    def _write_temp(self, data: bytes) -> Path:
        """A fsynced temp file holding `data` (created O_CREAT|O_EXCL by mkstemp)."""
        tmp_dir = self.root / _INTERNAL / "tmp"
        self._makedirs(tmp_dir)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="obj-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            os.unlink(name)
            raise
        return Path(name)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """Hold the exclusive flock of `key` (lock files are kept: removing them would race)."""
        lock_dir = self.root / _INTERNAL / "locks"
        self._makedirs(lock_dir)
        fd = os.open(lock_dir / f"{_sha256(key.encode())[:40]}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def get(self, key: str) -> Versioned | None:
        """The object at `key` with its version, or None when absent."""
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Versioned(data, _sha256(data))

    def put(self, key: str, data: bytes, *, if_version: str | None = None) -> str:
        """Write `key` (only while it holds `if_version`, when given) and return the new version."""
        path = self._path(key)
        tmp = self._write_temp(data)
        try:
            with self._locked(key):
                if if_version is not None:
                    current = self.get(key)
                    if current is None or current.version != if_version:
                        raise Conflict(f"{key}: version changed since it was read")
                self._makedirs(path.parent)
                os.replace(tmp, path)
                _fsync_dir(path.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return _sha256(data)

    def create(self, key: str, data: bytes) -> bool:
        """Write `key` only if absent; False (and nothing written) when it already exists."""
        path = self._path(key)
        tmp = self._write_temp(data)
        try:
            self._makedirs(path.parent)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            _fsync_dir(path.parent)
            return True
        finally:
            tmp.unlink()

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys starting with `prefix`, sorted."""
        base = self.root.joinpath(*_check_prefix(prefix).split("/")[:-1])
        keys: builtins.list[str] = []
        for directory, subdirs, files in os.walk(base):
            if Path(directory) == self.root:
                subdirs[:] = [name for name in subdirs if name != _INTERNAL]
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix) and _KEY.fullmatch(key):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Remove `key`; absent keys are ignored."""
        path = self._path(key)
        with self._locked(key):
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                return
            _fsync_dir(path.parent)


# AWS plumbing


def _send(client: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
    """call(), with the business errors it leaves alone turned into StoreUnavailable."""
    try:
        return call(client, operation, **kwargs)
    except ClientError as exc:
        meta = exc.response.get("ResponseMetadata", {})
        message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
        raise StoreUnavailable(client.meta.service_model.service_id, operation, message,
                               error_code(exc), str(meta.get("RequestId", ""))) from exc


def _try_send(client: Any, operation: str, absorb: frozenset[str], **kwargs: Any) -> dict[str, Any] | None:
    """_send(), but None when the store answers with one of the error codes in `absorb`."""
    try:
        return _send(client, operation, **kwargs)
    except StoreUnavailable as exc:
        if exc.code in absorb:
            return None
        raise


# S3


_S3_LOST = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class S3Store:
    """Objects under `prefix` in `bucket`; ETags are versions, S3 conditional writes are the locks.

    create is PutObject with If-None-Match: *, compare-and-swap PutObject with If-Match: ETag. S3 answers
    412 when the precondition fails and 409 while another conditional write to the key is in flight; both
    count as lost.
    """

    def __init__(self, aws: AwsSession, bucket: str, prefix: str = "", *, page_size: int = 1000) -> None:
        if not bucket:
            raise ValueError("S3Store needs a bucket name")
        prefix = prefix.strip("/")
        self.bucket = bucket
        self.prefix = f"{check_key(prefix)}/" if prefix else ""
        self.page_size = page_size
        self._s3 = aws.client("s3")

    def _object(self, key: str) -> str:
        return self.prefix + check_key(key)

    def get(self, key: str) -> Versioned | None:
        """The object at `key` with its version, or None when absent."""
        response = _try_send(self._s3, "GetObject", frozenset({"NoSuchKey"}),
                             Bucket=self.bucket, Key=self._object(key))
        if response is None:
            return None
        try:
            data = bytes(response["Body"].read())
        except Exception as exc:
            mapped = map_error(exc, "S3", "GetObject")
            if mapped is not None:
                raise mapped from exc
            raise
        return Versioned(data, str(response["ETag"]))

    def put(self, key: str, data: bytes, *, if_version: str | None = None) -> str:
        """Write `key` (only while it holds `if_version`, when given) and return the new version."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self._object(key), "Body": data}
        if if_version is None:
            return str(_send(self._s3, "PutObject", **request)["ETag"])
        response = _try_send(self._s3, "PutObject", _S3_LOST | {"NoSuchKey"}, IfMatch=if_version, **request)
        if response is None:
            raise Conflict(f"{key}: version changed since it was read")
        return str(response["ETag"])

    def create(self, key: str, data: bytes) -> bool:
        """Write `key` only if absent; False (and nothing written) when it already exists."""
        response = _try_send(self._s3, "PutObject", _S3_LOST, Bucket=self.bucket, Key=self._object(key),
                             Body=data, IfNoneMatch="*")
        return response is not None

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys starting with `prefix`, sorted."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + _check_prefix(prefix),
                                   "MaxKeys": self.page_size}
        keys: builtins.list[str] = []
        while True:
            page = _send(self._s3, "ListObjectsV2", **request)
            keys.extend(str(obj["Key"])[len(self.prefix):] for obj in page.get("Contents", ()))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return sorted(key for key in keys if _KEY.fullmatch(key))
            request["ContinuationToken"] = token

    def delete(self, key: str) -> None:
        """Remove `key`; absent keys are ignored."""
        _send(self._s3, "DeleteObject", Bucket=self.bucket, Key=self._object(key))


# DynamoDB


_DDB_LOST = frozenset({"ConditionalCheckFailedException"})


class DynamoStore:
    """Items {pk: key, data: Binary, version: String UUID} in `table` (hash key `pk`, String).

    create is PutItem with attribute_not_exists(pk), compare-and-swap PutItem with version = :v; reads
    are strongly consistent. `list` is a paginated Scan with begins_with(pk, prefix): the state is small
    (tens to thousands of items) and a hash-only table keeps every key independently lockable, where a
    shared partition with a sort key would put all state on one partition's write throughput.
    Objects are limited by DynamoDB's 400 KB item size.
    """

    def __init__(self, aws: AwsSession, table: str, *, page_size: int = 1000) -> None:
        if not table:
            raise ValueError("DynamoStore needs a table name")
        self.table = table
        self.page_size = page_size
        self._ddb = aws.client("dynamodb")

    def _item(self, key: str, data: bytes) -> tuple[dict[str, Any], str]:
        version = uuid.uuid4().hex
        return {"pk": {"S": check_key(key)}, "data": {"B": data}, "version": {"S": version}}, version

    def get(self, key: str) -> Versioned | None:
        """The object at `key` with its version, or None when absent."""
        item = _send(self._ddb, "GetItem", TableName=self.table, Key={"pk": {"S": check_key(key)}},
                     ConsistentRead=True).get("Item")
        if item is None:
            return None
        return Versioned(bytes(item["data"]["B"]), str(item["version"]["S"]))

    def put(self, key: str, data: bytes, *, if_version: str | None = None) -> str:
        """Write `key` (only while it holds `if_version`, when given) and return the new version."""
        item, version = self._item(key, data)
        if if_version is None:
            _send(self._ddb, "PutItem", TableName=self.table, Item=item)
        elif _try_send(self._ddb, "PutItem", _DDB_LOST, TableName=self.table, Item=item,
                       ConditionExpression="#v = :v", ExpressionAttributeNames={"#v": "version"},
                       ExpressionAttributeValues={":v": {"S": if_version}}) is None:
            raise Conflict(f"{key}: version changed since it was read")
        return version

    def create(self, key: str, data: bytes) -> bool:
        """Write `key` only if absent; False (and nothing written) when it already exists."""
        item, _ = self._item(key, data)
        return _try_send(self._ddb, "PutItem", _DDB_LOST, TableName=self.table, Item=item,
                         ConditionExpression="attribute_not_exists(pk)") is not None

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys starting with `prefix`, sorted."""
        request: dict[str, Any] = {"TableName": self.table, "ProjectionExpression": "pk",
                                   "ConsistentRead": True, "Limit": self.page_size}
        if _check_prefix(prefix):
            request["FilterExpression"] = "begins_with(pk, :p)"
            request["ExpressionAttributeValues"] = {":p": {"S": prefix}}
        keys: builtins.list[str] = []
        while True:
            page = _send(self._ddb, "Scan", **request)
            keys.extend(str(item["pk"]["S"]) for item in page.get("Items", ()))
            if "LastEvaluatedKey" not in page:
                return sorted(keys)
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete(self, key: str) -> None:
        """Remove `key`; absent keys are ignored."""
        _send(self._ddb, "DeleteItem", TableName=self.table, Key={"pk": {"S": check_key(key)}})


# Construction and JSON helpers


def store_from_url(url: str, aws: AwsSession | None = None) -> StateStore:
    """A store for a path, file:///path, s3://bucket[/prefix] or dynamodb://table (AWS from `aws`)."""
    usage = "use a directory path, file:///path, s3://bucket[/prefix] or dynamodb://table"
    if not url:
        raise ValueError(f"empty state URL: {usage}")
    if not _SCHEME.match(url):
        return LocalStore(Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise ValueError(f"state URL {url!r} must not carry a query or fragment")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(f"state URL {url!r} must name a local path: file:///path")
        return LocalStore(Path(unquote(parts.path)))
    if scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"state URL {url!r} has no bucket: s3://bucket[/prefix]")
        return S3Store(aws or AwsSession(), parts.netloc, parts.path)
    if scheme == "dynamodb":
        if not parts.netloc or parts.path.strip("/"):
            raise ValueError(f"state URL {url!r} must be dynamodb://table")
        return DynamoStore(aws or AwsSession(), parts.netloc)
    raise ValueError(f"unsupported state URL scheme {scheme!r} in {url!r}: {usage}")


def _dump(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def read_json(store: StateStore, key: str) -> tuple[Any, str] | tuple[None, None]:
    """The decoded JSON at `key` with its version, or (None, None) when absent."""
    found = store.get(key)
    if found is None:
        return None, None
    return json.loads(found.data), found.version


def update_json(store: StateStore, key: str, fn: Callable[[Any | None], Any], attempts: int = 5) -> Any:
    """Read-modify-write `key` as JSON through `fn` (None when absent), retrying lost races; the new value.

    Each lost race means another writer won, so N concurrent writers of one key all succeed within N
    attempts. Raises Conflict when every attempt lost.
    """
    for attempt in range(attempts):
        current, version = read_json(store, key)
        value = fn(current)
        if version is None:
            if store.create(key, _dump(value)):
                return value
        else:
            try:
                store.put(key, _dump(value), if_version=version)
            except Conflict:
                pass
            else:
                return value
        if attempt + 1 < attempts:
            time.sleep(random.uniform(0, min(_MAX_BACKOFF_S, _BACKOFF_S * 2 ** attempt)))
    raise Conflict(f"{key}: still contended after {attempts} attempts")

"""The embedded AWS: moto's server on a free local port, behind faithful fills for the moto gaps we need.

Fills (each follows AWS's documented request and response shapes):
- ECR `GetDownloadUrlForLayer` (moto 5.2 answers 500): answers `{"downloadUrl", "layerDigest"}` for a
  blob referenced by an image of the repository, `RepositoryNotFoundException`,
  `LayersNotFoundException` (unknown digest), `LayerInaccessibleException` (a stored blob that no image
  references) or `InvalidParameterException`, as JSON errors with HTTP 400. The URL is presigned-looking
  and points back at this server, which serves the blob bytes.
- ECR `PutImage` moving a tag to a new manifest: moto deletes the image that held the tag; ECR keeps it,
  untagged (still pullable by digest). The fill puts such an image back, untagged. Moving an immutable
  tag answers `ImageTagAlreadyExistsException` (moto says `ImageAlreadyExistsException`).
- ECR `PutLifecyclePolicy`: moto checks the policy's JSON schema only; ECR also refuses what its evaluator
  cannot run (see `guard.sandbox.lifecycle.parse_policy`: `tagged` without exactly one of tagPrefixList and
  tagPatternList, duplicate priorities, two untagged rules, an `any` rule that is not last, a countUnit that
  does not fit the countType). Those answer `InvalidParameterException` (HTTP 400); moto stores the rest.
  Applying policies is `guard.sandbox.lifecycle.apply_lifecycle_policies` (moto never does). moto refuses a
  rule whose action is `transition` (to the archive storage class), which ECR accepts: the fill stores it.
- ECR `StartLifecyclePolicyPreview` / `GetLifecyclePolicyPreview` (moto 5.2 answers 500): a preview of the given
  `lifecyclePolicyText`, else of the repository's policy (`LifecyclePolicyNotFoundException` without either),
  computed by `guard.sandbox.lifecycle.preview` when started. `LifecyclePolicyPreviewInProgressException`
  while one runs; the first Get after the start answers `IN_PROGRESS` (so clients poll), later ones `COMPLETE`
  with `previewResults` (filtered by `imageIds` or `filter.tagStatus`, paged by `maxResults` / `nextToken`, not
  both with `imageIds`), `summary.expiringImageTotalCount` and the policy text; `LifecyclePolicyPreviewNotFound
  Exception` without a preview. `AwsSandbox.fills.lifecycle_preview = False` turns the fill off (moto answers);
  `AwsSandbox.fills.now` is the preview's clock, for tests that move time forward.
- CloudWatch Logs `DescribeLogGroups` with `logGroupIdentifiers` (moto 5.2 ignores the parameter and lists
  every group): answers only the named groups (names, or ARNs of the caller's account and region), sorted by
  name; more than 50 identifiers, or identifiers with a name prefix or pattern, answer
  `InvalidParameterException` (HTTP 400).
- Conditional writes are atomic: moto evaluates a DynamoDB `ConditionExpression` or an S3 `If-None-Match` /
  `If-Match` and then writes, with no lock between, so two concurrent writers can both win. DynamoDB and S3
  decide each conditional write atomically; the fill passes those requests to moto one at a time.

moto keeps its state in process-wide globals: two sandboxes in one process share it (and `reset()`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode

import boto3
from botocore.config import Config

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
DUMMY_KEY = "testing"

_ECR_DOWNLOAD_TARGET = "AmazonEC2ContainerRegistry_V20150921.GetDownloadUrlForLayer"
_ECR_PUT_IMAGE_TARGET = "AmazonEC2ContainerRegistry_V20150921.PutImage"
_ECR_PUT_LIFECYCLE_TARGET = "AmazonEC2ContainerRegistry_V20150921.PutLifecyclePolicy"
_ECR_START_PREVIEW_TARGET = "AmazonEC2ContainerRegistry_V20150921.StartLifecyclePolicyPreview"
_ECR_GET_PREVIEW_TARGET = "AmazonEC2ContainerRegistry_V20150921.GetLifecyclePolicyPreview"
_LOGS_DESCRIBE_GROUPS_TARGET = "Logs_20140328.DescribeLogGroups"
_DDB_WRITE_TARGETS = frozenset(f"DynamoDB_20120810.{op}" for op in
                               ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"))
_LOG_GROUP_IDENTIFIERS_MAX = 50
_INVOKE_PATH = re.compile(r"/2015-03-31/functions/([^/]+)/invocations")
_BLOB_PREFIX = "/_sandbox/blobs/"
_URL_TTL_S = 3600
_CREDENTIAL = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/")
_REPOSITORY_NAME = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
_DIGEST = re.compile(r"[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+")
_REGISTRY_ID = re.compile(r"[0-9]{12}")

BlobKey = tuple[str, str, str, str]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class BlobStore:
    """Thread-safe registry blobs keyed by (account, region, repository, digest)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[BlobKey, bytes] = {}

    def put(self, account: str, region: str, repository: str, data: bytes) -> str:
        """Store `data` and return its digest ("sha256:...")."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._lock:
            self._blobs[(account, region, repository, digest)] = data
        return digest

    def get(self, key: BlobKey) -> bytes | None:
        """The blob's bytes, or None."""
        with self._lock:
            return self._blobs.get(key)

    def clear(self) -> None:
        """Forget every blob."""
        with self._lock:
            self._blobs.clear()


class _AwsError(Exception):
    """An AWS JSON-protocol error answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _referenced_digests(repository: Any) -> set[str]:
    """Config and layer digests referenced by the image manifests of a moto ECR repository."""
    found: set[str] = set()
    for image in list(repository.images):
        try:
            manifest = json.loads(image.image_manifest)
        except ValueError:
            continue
        if not isinstance(manifest, dict):
            continue
        config = manifest.get("config")
        if isinstance(config, dict) and isinstance(config.get("digest"), str):
            found.add(config["digest"])
        for layer in manifest.get("layers") or ():
            if isinstance(layer, dict) and isinstance(layer.get("digest"), str):
                found.add(layer["digest"])
    return found


@dataclass
class Fills:
    """Switches for fills a test may turn off, to see the product meet moto's own answer."""

    lifecycle_preview: bool = True
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # the preview's "now" (age rules)
    latency_s: float = 0.0  # held before answering every request: a remote endpoint's round trip, no CPU spent
    sleep: Callable[[float], None] = time.sleep  # how the latency is held (in the request's own thread)


@dataclass
class _Preview:
    """One repository's lifecycle policy preview: its policy text, results, and whether a Get has seen it run."""

    text: str
    results: list[dict[str, Any]]
    polled: bool = False


class _FillsApp:
    """WSGI middleware: answers the filled operations itself and passes everything else to moto."""

    def __init__(self, moto_app: WsgiApp, blobs: BlobStore, invocations: list[tuple[str, bytes]],
                 fills: Fills | None = None) -> None:
        self._moto = moto_app
        self._blobs = blobs
        self._invocations = invocations
        self.fills = fills or Fills()
        self.previews: dict[tuple[str, str, str], _Preview] = {}
        self._url_key = secrets.token_bytes(32)
        self._writes = threading.Lock()
        self._previews_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.fills.latency_s:
            self.fills.sleep(self.fills.latency_s)
        path = str(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") == "GET" and path.startswith(_BLOB_PREFIX):
            return self._serve_blob(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target == _ECR_DOWNLOAD_TARGET:
            return self._get_download_url(environ, start_response)
        if target == _ECR_PUT_IMAGE_TARGET:
            return self._put_image(environ, start_response)
        if target == _ECR_PUT_LIFECYCLE_TARGET:
            return self._put_lifecycle_policy(environ, start_response)
        if target in (_ECR_START_PREVIEW_TARGET, _ECR_GET_PREVIEW_TARGET) and self.fills.lifecycle_preview:
            return self._lifecycle_preview(environ, start_response, target == _ECR_START_PREVIEW_TARGET)
        if target == _LOGS_DESCRIBE_GROUPS_TARGET:
            return self._describe_log_groups(environ, start_response)
        if target in _DDB_WRITE_TARGETS or (environ.get("REQUEST_METHOD") == "PUT" and (
                "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ)):
            with self._writes:  # moto checks then writes: one conditional write at a time, as AWS decides them
                return list(self._moto(environ, start_response))
        invoke = _INVOKE_PATH.fullmatch(path)
        if invoke and environ.get("REQUEST_METHOD") == "POST" and environ.get("HTTP_X_AMZ_INVOCATION_TYPE") == "Event":
            return self._invoke_async(environ, start_response, invoke.group(1))
        return self._moto(environ, start_response)

    def _invoke_async(self, environ: dict[str, Any], start_response: StartResponse, name: str) -> Iterable[bytes]:
        """Lambda Invoke with InvocationType Event: queue it and answer 202, as Lambda does (moto would run
        the image in Docker). The payloads are kept for the tests; nothing is executed."""
        from urllib.parse import unquote

        from moto.backends import get_backend

        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        account, region = _caller(environ)
        function = unquote(name).rsplit(":function:", 1)[-1]
        if function not in get_backend("lambda")[account][region]._lambdas._functions:
            return _json(start_response, "404 Not Found", {
                "__type": "ResourceNotFoundException",
                "Message": f"Function not found: arn:aws:lambda:{region}:{account}:function:{function}"})
        self._invocations.append((function, body))
        start_response("202 Accepted", [("Content-Length", "0"), ("x-amzn-RequestId", secrets.token_hex(16))])
        return [b""]

    def _put_lifecycle_policy(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Refuse a policy ECR would refuse and moto would store; pass everything else to moto."""
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            text = json.loads(body)["lifecyclePolicyText"]
        except (ValueError, TypeError, KeyError):
            return self._moto(environ, start_response)
        from guard.sandbox.lifecycle import parse_policy

        try:
            rules = parse_policy(text) if isinstance(text, str) else ()
        except ValueError as err:
            return _json(start_response, "400 Bad Request", {
                "__type": "InvalidParameterException",
                "message": f"Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '{err}'",
            })
        if any(r.action == "transition" for r in rules):
            try:
                repository = self._repository(environ, json.loads(body))
            except _AwsError as err:
                return _json(start_response, "400 Bad Request", {"__type": err.code, "message": err.message})
            repository.lifecycle_policy = text
            return _json(start_response, "200 OK", {"registryId": repository.registry_id,
                                                    "repositoryName": repository.name, "lifecyclePolicyText": text})
        return self._moto(environ, start_response)

    @staticmethod
    def _repository(environ: dict[str, Any], request: dict[str, Any]) -> Any:
        """The moto ECR repository a JSON request names, in the caller's registry (as moto's ECR calls look)."""
        from moto.backends import get_backend

        caller, region = _caller(environ)
        name, registry = request.get("repositoryName"), request.get("registryId") or caller
        repository = get_backend("ecr")[caller][region].repositories.get(name) if isinstance(name, str) else None
        if repository is None or repository.registry_id != registry:
            raise _AwsError("RepositoryNotFoundException",
                            f"The repository with name '{name}' does not exist in the registry with id '{registry}'")
        return repository

    def _lifecycle_preview(self, environ: dict[str, Any], start_response: StartResponse,
                           start: bool) -> list[bytes]:
        try:
            request = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
            if not isinstance(request, dict):
                raise _AwsError("SerializationException", "request body must be a JSON object")
            repository = self._repository(environ, request)
            key = (repository.registry_id, _caller(environ)[1], repository.name)
            with self._previews_lock:
                answer = self._start_preview(key, repository, request) if start else self._get_preview(key, request)
        except ValueError as exc:
            return _json(start_response, "400 Bad Request", {"__type": "InvalidParameterException",
                                                             "message": str(exc)})
        except _AwsError as err:
            return _json(start_response, "400 Bad Request", {"__type": err.code, "message": err.message})
        data = json.dumps({"registryId": key[0], "repositoryName": key[2], **answer}).encode()
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data))),
                                  ("x-amzn-RequestId", str(uuid.uuid4()))])
        return [data]

    def _start_preview(self, key: tuple[str, str, str], repository: Any, request: dict[str, Any]) -> dict[str, Any]:
        from guard.sandbox.lifecycle import preview

        running = self.previews.get(key)
        if running is not None and not running.polled:
            raise _AwsError("LifecyclePolicyPreviewInProgressException",
                            f"Previous lifecycle policy preview request has not completed for repository '{key[2]}'")
        text = request.get("lifecyclePolicyText") or repository.lifecycle_policy
        if not text:
            raise _AwsError("LifecyclePolicyNotFoundException", "Lifecycle policy does not exist for the repository "
                            f"with name '{key[2]}' in the registry with id '{key[0]}'")
        self.previews[key] = _Preview(str(text), preview(repository, str(text), self.fills.now()))
        return {"lifecyclePolicyText": text, "status": "IN_PROGRESS"}

    def _get_preview(self, key: tuple[str, str, str], request: dict[str, Any]) -> dict[str, Any]:
        found = self.previews.get(key)
        if found is None:
            raise _AwsError("LifecyclePolicyPreviewNotFoundException",
                            f"There is no lifecycle policy preview for the repository with name '{key[2]}' in the "
                            f"registry with id '{key[0]}'")
        if not found.polled:
            found.polled = True
            return {"lifecyclePolicyText": found.text, "status": "IN_PROGRESS", "previewResults": []}
        ids, wanted = request.get("imageIds"), (request.get("filter") or {}).get("tagStatus")
        limit, token = request.get("maxResults"), request.get("nextToken")
        if ids is not None and (limit is not None or token is not None):
            raise ValueError("maxResults and nextToken cannot be used with imageIds")
        results = found.results
        if ids is not None:
            digests = {i.get("imageDigest") for i in ids}
            tags = {i.get("imageTag") for i in ids}
            results = [r for r in results if r["imageDigest"] in digests or tags & set(r["imageTags"])]
        if wanted in ("tagged", "untagged"):
            results = [r for r in results if bool(r["imageTags"]) == (wanted == "tagged")]
        start = int(token) if isinstance(token, str) and token.isdigit() else 0
        size = limit if isinstance(limit, int) and 1 <= limit <= 100 else 100
        page = results[start:start + size]
        more = {"nextToken": str(start + size)} if ids is None and start + size < len(results) else {}
        return {"lifecyclePolicyText": found.text, "status": "COMPLETE", "previewResults": page, **more,
                "summary": {"expiringImageTotalCount": sum(r["action"]["type"] == "EXPIRE" for r in found.results)}}

    def _describe_log_groups(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer `logGroupIdentifiers` requests with the named groups only; pass every other request to moto."""
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            request = json.loads(body or b"{}")
            identifiers = request.get("logGroupIdentifiers")
        except (ValueError, AttributeError):
            return self._moto(environ, start_response)
        if identifiers is None:
            return self._moto(environ, start_response)
        if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= _LOG_GROUP_IDENTIFIERS_MAX:
            return _json(start_response, "400 Bad Request", {
                "__type": "InvalidParameterException",
                "message": "1 validation error detected: Value at 'logGroupIdentifiers' failed to satisfy "
                           f"constraint: Member must have length between 1 and {_LOG_GROUP_IDENTIFIERS_MAX}"})
        if request.get("logGroupNamePrefix") or request.get("logGroupNamePattern"):
            return _json(start_response, "400 Bad Request", {
                "__type": "InvalidParameterException",
                "message": "logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern"})
        from moto.backends import get_backend

        account, region = _caller(environ)
        arn_prefix = f"arn:aws:logs:{region}:{account}:log-group:"
        names = {str(i).removeprefix(arn_prefix) for i in identifiers}
        groups = get_backend("logs")[account][region].groups
        found = [groups[n].to_describe_dict() for n in sorted(names) if n in groups]
        data = json.dumps({"logGroups": found}).encode()
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data))),
                                  ("x-amzn-RequestId", str(uuid.uuid4()))])
        return [data]

    def _put_image(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Let moto put the image, then restore (untagged) any image it deleted to move the tag."""
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            request = json.loads(body)
            name, tag = request["repositoryName"], request["imageTag"]
        except (ValueError, TypeError, KeyError):
            return self._moto(environ, start_response)
        from moto.backends import get_backend

        account, region = _caller(environ)
        repository: Any = get_backend("ecr")[account][region].repositories.get(name)
        if repository is None:
            return self._moto(environ, start_response)
        held = [(i, image) for i, image in enumerate(repository.images) if tag in image.image_tags]
        replies: list[tuple[str, list[tuple[str, str]]]] = []
        answer = b"".join(self._moto(environ, lambda status, headers, *_: replies.append((status, headers))))
        status, headers = replies[0]
        if status.startswith("400") and b"ImageAlreadyExistsException" in answer \
                and any(image.image_manifest != request.get("imageManifest") for _, image in held):
            return _json(start_response, "400 Bad Request", {
                "__type": "ImageTagAlreadyExistsException",
                "message": f"The image tag '{tag}' already exists in the '{name}' repository and cannot be "
                           "overwritten because the repository is immutable.",
            })
        for position, image in held:
            if image not in repository.images:
                image.image_tag, image.image_tags = None, []
                repository.images.insert(position, image)
        start_response(status, headers)
        return [answer]

    def _sign(self, path: str, date: str) -> str:
        message = f"{path}\n{date}\n{_URL_TTL_S}".encode()
        return hmac.new(self._url_key, message, hashlib.sha256).hexdigest()

    def _get_download_url(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        try:
            answer = self._download_url(environ)
        except _AwsError as err:
            return _json(start_response, "400 Bad Request", {"__type": err.code, "message": err.message})
        return _json(start_response, "200 OK", answer)

    def _download_url(self, environ: dict[str, Any]) -> dict[str, str]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except ValueError as exc:
            raise _AwsError("SerializationException", "request body is not valid JSON") from exc
        if not isinstance(request, dict):
            raise _AwsError("SerializationException", "request body must be a JSON object")
        name, digest = request.get("repositoryName"), request.get("layerDigest")
        registry = request.get("registryId")
        if not isinstance(name, str) or not _REPOSITORY_NAME.fullmatch(name) or not 2 <= len(name) <= 256:
            raise _AwsError("InvalidParameterException", "Invalid parameter at 'repositoryName'")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise _AwsError("InvalidParameterException", "Invalid parameter at 'layerDigest'")
        if registry is not None and (not isinstance(registry, str) or not _REGISTRY_ID.fullmatch(registry)):
            raise _AwsError("InvalidParameterException", "Invalid parameter at 'registryId'")
        caller, region = _caller(environ)
        account = registry or caller
        from moto.backends import get_backend

        # Like moto's other ECR calls: look in the caller's registry, so another registryId is not found.
        repository = get_backend("ecr")[caller][region].repositories.get(name)
        if repository is None or repository.registry_id != account:
            raise _AwsError(
                "RepositoryNotFoundException",
                f"The repository with name '{name}' does not exist in the registry with id '{account}'",
            )
        blob = self._blobs.get((account, region, name, digest))
        referenced = digest in _referenced_digests(repository)
        if blob is not None and not referenced:
            raise _AwsError(
                "LayerInaccessibleException",
                f"The layer with digest {digest} is not associated with an image in the repository "
                f"with name '{name}' in the registry with id '{account}'",
            )
        if blob is None or not referenced:
            raise _AwsError(
                "LayersNotFoundException",
                f"The layer with digest {digest} does not exist within the repository with name "
                f"'{name}' in the registry with id '{account}'",
            )
        path = f"{_BLOB_PREFIX}{account}/{region}/{name}/{digest}"
        date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        query = urlencode({
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Date": date,
            "X-Amz-Expires": str(_URL_TTL_S),
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": self._sign(path, date),
        })
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        return {"downloadUrl": f"http://{host}{path}?{query}", "layerDigest": digest}

    def _serve_blob(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        date = query.get("X-Amz-Date", [""])[0]
        signature = query.get("X-Amz-Signature", [""])[0]
        if not hmac.compare_digest(signature, self._sign(path, date)):
            return _xml_error(start_response, "403 Forbidden", "SignatureDoesNotMatch",
                              "The request signature we calculated does not match the signature "
                              "you provided.")
        account, region, rest = path[len(_BLOB_PREFIX):].split("/", 2)
        repository, _, digest = rest.rpartition("/")
        blob = self._blobs.get((account, region, repository, digest))
        if blob is None:
            return _xml_error(start_response, "404 Not Found", "NoSuchKey",
                              "The specified key does not exist.")
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(blob)))])
        return [blob]


def _caller(environ: dict[str, Any]) -> tuple[str, str]:
    """The calling account and the signed region, resolved the way moto resolves them."""
    match = _CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    region = match.group(2) if match else DEFAULT_REGION
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"], region
    if "HTTP_X_MOTO_ACCOUNT_ID" in environ:
        return str(environ["HTTP_X_MOTO_ACCOUNT_ID"]), region
    from moto.iam.models import get_account_id_from

    return str(get_account_id_from(match.group(1) if match else "")), region


def _json(start_response: StartResponse, status: str, body: dict[str, str]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.1"),
                            ("Content-Length", str(len(data))),
                            ("x-amzn-RequestId", str(uuid.uuid4()))])
    return [data]


def _xml_error(start_response: StartResponse, status: str, code: str, message: str) -> list[bytes]:
    data = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(data)))])
    return [data]


def _dispatcher(create_app: Callable[[Any], Any]) -> WsgiApp:
    """moto's host dispatcher, minus the work it repeats per request with the same answer every time: it lists
    moto's package directory to resolve a Host header, and inspects the response class for its action methods.
    Both answers are memoised, so the sandbox's CPU per request is closer to moto's own handling."""
    import moto.core.responses as responses
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    names = getattr(responses, "method_names_from_class", None)
    if names is not None and not hasattr(names, "cache_info"):
        setattr(responses, "method_names_from_class", functools.cache(names))  # noqa: B010 (not exported)

    class Dispatcher(DomainDispatcherApplication):
        @functools.cache  # noqa: B019 (one dispatcher per sandbox; hosts are few)
        def get_backend_for_host(self, host: str | None) -> Any:
            return super().get_backend_for_host(host)

    return Dispatcher(create_app)


def _keep_alive_handler() -> type:
    """moto's request handler, keeping HTTP/1.1 connections open as AWS endpoints do.

    werkzeug's development server closes every connection, so each call would pay a TCP connect on the client
    and a new server thread here: CPU that a client of AWS does not spend. This handler drops werkzeug's
    `Connection: close`; hides the socket from werkzeug's drain after each answer (it reads whatever arrived,
    which on a kept connection is the next request); and reads what the application left of the request body
    before the next request line (Nagle off: headers and body go out in two writes). A chunked request body
    still closes its connection."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.wsgi import LimitedStream

    class KeepAlive(MotoRequestHandler):
        disable_nagle_algorithm = True  # werkzeug writes headers and body apart: no delayed-ACK stall between
        _body: LimitedStream | None = None
        _socket_file: Any = None
        _chunked = False

        def make_environ(self) -> dict[str, Any]:
            environ = super().make_environ()
            self._chunked = bool(environ.get("wsgi.input_terminated"))
            length = int(environ.get("CONTENT_LENGTH") or 0)
            self._body = None if self._chunked or not length else LimitedStream(environ["wsgi.input"], length)
            if self._body is not None:
                environ["wsgi.input"] = self._body
            self._socket_file, self.rfile = self.rfile, io.BytesIO()
            return dict(environ)

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() != "connection" or value.lower() != "close":
                super().send_header(keyword, value)

        def run_wsgi(self) -> None:
            try:
                super().run_wsgi()
            finally:
                if self._socket_file is not None:
                    self.rfile, self._socket_file = self._socket_file, None
            if self._chunked:
                self.close_connection = True
            elif self._body is not None:
                self._body.exhaust()

    return KeepAlive


class AwsSandbox:
    """moto's server on 127.0.0.1 (free port) in a daemon thread, behind our fills."""

    def __init__(self, region: str = DEFAULT_REGION) -> None:
        self.region = region
        self.blobs = BlobStore()
        self.invocations: list[tuple[str, bytes]] = []  # asynchronous Lambda invocations, in order
        self.fills = Fills()
        self._app: _FillsApp | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._session: Any = None

    def __enter__(self) -> AwsSandbox:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving; a no-op when already started."""
        if self._server is not None:
            return
        from moto.moto_server.werkzeug_app import create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = _FillsApp(_dispatcher(create_backend_app), self.blobs, self.invocations, self.fills)
        self._app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_keep_alive_handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-sandbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server, self._thread = None, None

    @property
    def endpoint_url(self) -> str:
        """http://127.0.0.1:PORT."""
        if self._server is None:
            raise RuntimeError("AwsSandbox is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    def reset(self) -> None:
        """Forget all AWS state (moto's, the blobs, queued invocations); assumed-role credentials die with it."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        self.blobs.clear()
        self.invocations.clear()
        self.fills.lifecycle_preview, self.fills.now = True, Fills().now
        if self._app is not None:
            self._app.previews.clear()

    def put_blob(self, account: str, region: str, repository: str, data: bytes) -> str:
        """Store a registry blob (config or layer) and return its digest."""
        return self.blobs.put(account, region, repository, data)

    def environ(self) -> dict[str, str]:
        """Environment variables that point a standard AWS client at the sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": DUMMY_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        }

    def client(self, service: str, region: str | None = None, **kw: Any) -> Any:
        """A boto3 client of the default account bound to the sandbox, without retries."""
        return self.session().client(service, region_name=region or self.region,
                                     endpoint_url=self.endpoint_url,
                                     config=Config(retries={"total_max_attempts": 1}), **kw)

    def session(self) -> Any:
        """The boto3 session of the default account (123456789012), created once."""
        if self._session is None:
            self._session = boto3.Session(aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY,
                                          region_name=self.region)
        return self._session

    def account_session(self, account_id: str) -> Any:
        """A boto3 session acting in `account_id`, via STS AssumeRole (valid until the next reset)."""
        if account_id == DEFAULT_ACCOUNT:
            return self.session()
        creds = self.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/sandbox-admin", RoleSessionName="sandbox",
        )["Credentials"]
        return boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                             aws_secret_access_key=creds["SecretAccessKey"],
                             aws_session_token=creds["SessionToken"], region_name=self.region)

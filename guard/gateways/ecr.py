"""ECR read port: image existence in batches of 100 IDs per repository, and image platforms."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from botocore.exceptions import ClientError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from guard.errors import GatewayError, Unreachable
from guard.gateways.aws import AwsSession, call, error_code
from guard.lifecycle_policy import EcrImage, PolicyPreview, RepoKey, RepositoryLifecycle
from guard.models import ImageRef
from guard.progress import next_poll

BATCH = 100
PREVIEW_POLL_S = 5.0  # longest pause between GetLifecyclePolicyPreview polls (they start 1 s apart)
INDEX_TYPES = frozenset({
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
})
ACCEPTED_TYPES = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    *sorted(INDEX_TYPES),
]


class ImageStatus(StrEnum):
    """What ECR said about one image reference."""

    PRESENT = "present"
    ABSENT = "absent"
    NO_REPOSITORY = "no_repository"


@dataclass(frozen=True)
class ImageInfo:
    """The answer for one image reference: present with its manifest, or absent."""

    ref: ImageRef
    status: ImageStatus
    digest: str | None = None
    media_type: str | None = None
    manifest: str | None = None

    @property
    def is_index(self) -> bool:
        """True for a multi-platform image index / manifest list."""
        return self.media_type in INDEX_TYPES


Lookup = ImageInfo | GatewayError


class EcrReader(Protocol):
    """What checks need from ECR."""

    def lookup(self, refs: Iterable[ImageRef]) -> dict[str, Lookup]:
        """Answer for every ECR reference, keyed by URI (batched, cached)."""

    def platforms(self, info: ImageInfo) -> frozenset[str] | GatewayError:
        """The `os/arch` platforms an image runs on (from its index or its config blob)."""

    def labels(self, info: ImageInfo) -> dict[str, str] | GatewayError:
        """The image's OCI config labels (an index: its own annotations, then its first platform's labels)."""

    def lifecycles(self, keys: Iterable[RepoKey]) -> dict[RepoKey, RepositoryLifecycle | GatewayError]:
        """Each repository's lifecycle policy and, when it has one, its images (cached)."""

    def preview(self, repo: RepositoryLifecycle, digests: Collection[str], wait_s: float) -> PolicyPreview:
        """ECR's lifecycle policy preview of the repository's current policy for `digests`, within `wait_s`."""


def _chunks(items: list[dict[str, str]], size: int) -> Iterator[list[dict[str, str]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _same_policy(text: object, policy: str | None) -> bool:
    """Whether a preview's policy text is `policy` (as JSON: ECR may not keep the whitespace)."""
    try:
        return isinstance(text, str) and policy is not None and json.loads(text) == json.loads(policy)
    except ValueError:
        return False


def _image_id(ref: ImageRef) -> dict[str, str]:
    # A `repo:tag@digest` reference is resolved by digest, as ECS and Lambda do.
    return {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}


class Boto3Ecr:
    """ECR adapter: one BatchGetImage per 100 IDs per repository, repositories in parallel."""

    def __init__(self, aws: AwsSession, workers: int = 8, blob_timeout: float = 15.0,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.aws = aws
        self.workers = workers
        self.blob_timeout = blob_timeout
        self.sleep = sleep or time.sleep  # between lifecycle preview polls (the sandbox injects its own)
        self._lock = threading.Lock()
        self._images: dict[str, Lookup] = {}
        self._asking: dict[str, threading.Event] = {}  # URIs being looked up, set when answered
        self._platforms: dict[tuple[str, str, str, str], frozenset[str] | GatewayError] = {}
        self._configs: dict[tuple[str, str, str, str], dict[str, Any] | GatewayError] = {}
        self._config_locks: dict[tuple[str, str, str, str], threading.Lock] = {}
        self._lifecycles: dict[RepoKey, RepositoryLifecycle | GatewayError] = {}

    def lookup(self, refs: Iterable[ImageRef]) -> dict[str, Lookup]:
        """Answer for every ECR reference, keyed by URI; each distinct image ID is asked for once."""
        wanted = {r.uri: r for r in refs if r.is_ecr}
        done = threading.Event()
        with self._lock:  # an image another thread is asking for already is waited for, not asked again
            todo = [r for uri, r in wanted.items() if uri not in self._images and uri not in self._asking]
            waits = {self._asking[uri] for uri in wanted if uri in self._asking}
            self._asking.update(dict.fromkeys((r.uri for r in todo), done))
        groups: dict[tuple[str, str, str], list[ImageRef]] = {}
        for ref in todo:
            groups.setdefault(ref.key, []).append(ref)
        try:
            if groups:
                with ThreadPoolExecutor(max_workers=min(self.workers, len(groups))) as pool:
                    for answers in pool.map(self._lookup_repository, groups.values()):
                        with self._lock:
                            self._images.update(answers)
        finally:
            with self._lock:
                for ref in todo:
                    del self._asking[ref.uri]
            done.set()
        for event in waits:
            event.wait()
        with self._lock:
            return {uri: self._images[uri] for uri in wanted}

    def _lookup_repository(self, refs: list[ImageRef]) -> dict[str, Lookup]:
        first = refs[0]
        client = self.aws.client("ecr", first.region, first.account)
        ids: dict[tuple[str, str], dict[str, str]] = {}
        for ref in refs:
            iid = _image_id(ref)
            ids.setdefault(next(iter(iid.items())), iid)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        try:
            for chunk in _chunks(list(ids.values()), BATCH):
                self.aws.stats.batch("ecr:BatchGetImage", len(chunk))
                resp = call(client, "BatchGetImage", registryId=first.account, repositoryName=first.repository,
                            imageIds=chunk, acceptedMediaTypes=ACCEPTED_TYPES)
                for image in resp.get("images", []):
                    iid = image.get("imageId", {})
                    if "imageTag" in iid:
                        found[("imageTag", iid["imageTag"])] = image
                    if "imageDigest" in iid:
                        found[("imageDigest", iid["imageDigest"])] = image
        except GatewayError as exc:
            return {r.uri: exc for r in refs}
        except ClientError as exc:
            if error_code(exc) == "RepositoryNotFoundException":
                return {r.uri: ImageInfo(r, ImageStatus.NO_REPOSITORY) for r in refs}
            return {r.uri: GatewayError("ECR", "BatchGetImage", str(exc), error_code(exc)) for r in refs}
        out: dict[str, Lookup] = {}
        for ref in refs:
            image = found.get(next(iter(_image_id(ref).items())))
            if image is None:
                out[ref.uri] = ImageInfo(ref, ImageStatus.ABSENT)
            else:
                out[ref.uri] = ImageInfo(ref, ImageStatus.PRESENT, image["imageId"].get("imageDigest"),
                                         image.get("imageManifestMediaType"), image.get("imageManifest"))
        return out

    def lifecycles(self, keys: Iterable[RepoKey]) -> dict[RepoKey, RepositoryLifecycle | GatewayError]:
        """One GetLifecyclePolicy per repository; with a policy, its DescribeImages pages and one BatchGetImage per
        100 image indexes (to learn the images they keep alive). Repositories in parallel, each read once."""
        wanted = list(dict.fromkeys(keys))
        with self._lock:
            todo = [k for k in wanted if k not in self._lifecycles]
        if todo:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(todo))) as pool:
                for key, answer in zip(todo, pool.map(self._read_lifecycle, todo), strict=True):
                    with self._lock:
                        self._lifecycles[key] = answer
        with self._lock:
            return {k: self._lifecycles[k] for k in wanted}

    def _read_lifecycle(self, key: RepoKey) -> RepositoryLifecycle | GatewayError:
        account, region, repository = key
        client = self.aws.client("ecr", region, account)
        try:
            try:
                text = call(client, "GetLifecyclePolicy", registryId=account,
                            repositoryName=repository)["lifecyclePolicyText"]
            except ClientError as exc:
                if error_code(exc) in ("LifecyclePolicyNotFoundException", "RepositoryNotFoundException"):
                    return RepositoryLifecycle(key, None)
                return GatewayError("ECR", "GetLifecyclePolicy", str(exc), error_code(exc))
            details: list[dict[str, Any]] = []
            page: dict[str, Any] = {}
            while True:
                token = {"nextToken": page["nextToken"]} if page.get("nextToken") else {}
                page = call(client, "DescribeImages", registryId=account, repositoryName=repository,
                            maxResults=1000, **token)
                details += page.get("imageDetails", [])
                if not page.get("nextToken"):
                    break
            indexes = [{"imageDigest": str(d["imageDigest"])} for d in details
                       if d.get("imageManifestMediaType") in INDEX_TYPES]
            children: dict[str, str] = {}
            for chunk in _chunks(indexes, BATCH):
                self.aws.stats.batch("ecr:BatchGetImage", len(chunk))
                resp = call(client, "BatchGetImage", registryId=account, repositoryName=repository,
                            imageIds=chunk, acceptedMediaTypes=ACCEPTED_TYPES)
                for image in resp.get("images", []):
                    for entry in json.loads(image.get("imageManifest") or "{}").get("manifests", []):
                        children[str(entry.get("digest"))] = str(image["imageId"]["imageDigest"])
        except GatewayError as exc:
            return exc
        except (ClientError, json.JSONDecodeError) as exc:
            code = error_code(exc) if isinstance(exc, ClientError) else "BadManifest"
            return GatewayError("ECR", "DescribeImages", str(exc), code)
        images = tuple(EcrImage(str(d["imageDigest"]), tuple(d.get("imageTags", ())), d["imagePushedAt"])
                       for d in details if d["imageDigest"] not in children)
        return RepositoryLifecycle(key, str(text), images, children)

    def preview(self, repo: RepositoryLifecycle, digests: Collection[str], wait_s: float) -> PolicyPreview:
        """One StartLifecyclePolicyPreview (of the policy in force), then GetLifecyclePolicyPreview with `imageIds`
        = `digests` (100 per call) polled `next_poll` apart until COMPLETE or `wait_s` seconds of waiting.

        A preview someone else started (LifecyclePolicyPreviewInProgressException) is polled and used only if it
        previews the policy `repo` was read with. Every failure (not supported, denied, throttled, timed out,
        another policy's preview) is an `unavailable` reason, never an error: the evaluator then answers.
        """
        account, region, repository = repo.key
        where = {"registryId": account, "repositoryName": repository}
        ids = [{"imageDigest": d} for d in sorted(digests)]
        client = self.aws.client("ecr", region, account)
        try:
            try:
                call(client, "StartLifecyclePolicyPreview", **where)
            except ClientError as exc:
                if error_code(exc) != "LifecyclePolicyPreviewInProgressException":
                    return PolicyPreview(unavailable=f"StartLifecyclePolicyPreview: {error_code(exc)}")
            waited = 0.0
            while True:
                delay = min(next_poll(waited, PREVIEW_POLL_S), wait_s - waited)
                if delay <= 0:
                    return PolicyPreview(unavailable=f"no complete preview within {wait_s:g}s")
                self.sleep(delay)
                waited += delay
                pages = [call(client, "GetLifecyclePolicyPreview", **where, imageIds=ids[:BATCH])]
                if not _same_policy(pages[0].get("lifecyclePolicyText"), repo.policy):
                    return PolicyPreview(unavailable="the preview running on the repository is of another policy")
                status = pages[0].get("status")
                if status in ("FAILED", "EXPIRED"):
                    return PolicyPreview(unavailable=f"the preview ended {status}")
                if status == "COMPLETE":
                    pages += [call(client, "GetLifecyclePolicyPreview", **where, imageIds=chunk)
                              for chunk in _chunks(ids[BATCH:], BATCH)]
                    return PolicyPreview({str(r["imageDigest"]): (str(r["action"]["type"]),
                                                                  int(r["appliedRulePriority"]))
                                          for page in pages for r in page.get("previewResults", [])})
        except GatewayError as exc:
            return PolicyPreview(unavailable=f"{exc.operation}: {exc.code}")
        except ClientError as exc:
            return PolicyPreview(unavailable=f"GetLifecyclePolicyPreview: {error_code(exc)}")

    def platforms(self, info: ImageInfo) -> frozenset[str] | GatewayError:
        """Platforms from the index entries (attestations skipped) or from the config blob."""
        key = (*info.ref.key, info.digest or "")
        with self._lock:
            cached = self._platforms.get(key)
        if cached is None:
            cached = self._read_platforms(info)
            with self._lock:
                self._platforms[key] = cached
        return cached

    def _read_platforms(self, info: ImageInfo) -> frozenset[str] | GatewayError:
        try:
            manifest = json.loads(info.manifest or "{}")
        except json.JSONDecodeError:
            return Unreachable("ECR", "BatchGetImage", "image manifest is not valid JSON", "BadManifest")
        if info.is_index:
            plats = set()
            for entry in manifest.get("manifests", []):
                p = entry.get("platform") or {}
                if p.get("architecture") and p.get("architecture") != "unknown":
                    plats.add(f"{p.get('os', 'linux')}/{p['architecture']}")
            return frozenset(plats)
        if "architecture" in manifest:  # Docker schema 1 carries it inline
            return frozenset({f"linux/{manifest['architecture']}"})
        config_digest = (manifest.get("config") or {}).get("digest")
        if not config_digest:
            return Unreachable("ECR", "BatchGetImage", "manifest has no config descriptor", "BadManifest")
        config = self._config(info.ref, config_digest)
        if isinstance(config, GatewayError):
            return config
        return frozenset({f"{config.get('os', 'linux')}/{config.get('architecture', 'unknown')}"})

    def labels(self, info: ImageInfo) -> dict[str, str] | GatewayError:
        """Labels from the config blob; for an index, its annotations overlaid by its first platform's labels."""
        try:
            manifest = json.loads(info.manifest or "{}")
        except json.JSONDecodeError:
            return Unreachable("ECR", "BatchGetImage", "image manifest is not valid JSON", "BadManifest")
        if info.is_index:
            found = dict(manifest.get("annotations") or {})
            child = next((e for e in manifest.get("manifests", [])
                          if (e.get("platform") or {}).get("architecture") not in (None, "unknown")), None)
            if child is None:
                return found
            ref = info.ref
            child_ref = ImageRef(uri=f"{ref.registry}/{ref.repository}@{child['digest']}", registry=ref.registry,
                                 repository=ref.repository, digest=child["digest"], account=ref.account,
                                 region=ref.region)
            answer = self.lookup([child_ref])[child_ref.uri]
            if isinstance(answer, GatewayError):
                return answer
            if answer.status is not ImageStatus.PRESENT or answer.is_index:
                return found
            inner = self.labels(answer)
            return inner if isinstance(inner, GatewayError) else {**found, **inner}
        config_digest = (manifest.get("config") or {}).get("digest")
        if not config_digest:
            return {}
        config = self._config(info.ref, config_digest)
        if isinstance(config, GatewayError):
            return config
        labels = (config.get("config") or {}).get("Labels") or {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    def _config(self, ref: ImageRef, digest: str) -> dict[str, Any] | GatewayError:
        """The config blob `digest`, downloaded once per repository."""
        key = (*ref.key, digest)
        with self._lock:  # one download per blob even when two checks ask at once
            gate = self._config_locks.setdefault(key, threading.Lock())
        with gate:
            cached = self._configs.get(key)
            if cached is None:
                try:
                    cached = self._config_blob(ref, digest)
                except GatewayError as exc:
                    cached = exc
                self._configs[key] = cached
        return cached

    def _config_blob(self, ref: ImageRef, digest: str) -> dict[str, Any]:
        client = self.aws.client("ecr", ref.region, ref.account)
        try:
            url = call(client, "GetDownloadUrlForLayer", registryId=ref.account, repositoryName=ref.repository,
                       layerDigest=digest)["downloadUrl"]
        except ClientError as exc:
            raise GatewayError("ECR", "GetDownloadUrlForLayer", f"config blob {digest}: {exc}",
                               error_code(exc)) from exc
        self.aws.stats.call("ecr:LayerDownload")
        try:
            blob = self._download(url)
            parsed: dict[str, Any] = json.loads(blob)
        except (urllib.error.URLError, OSError, json.JSONDecodeError, ValueError) as exc:
            raise Unreachable("ECR", "LayerDownload", f"could not read config blob {digest}: {exc}") from exc
        return parsed

    @retry(retry=retry_if_exception_type((urllib.error.URLError, ConnectionError, TimeoutError)),
           stop=stop_after_attempt(3), wait=wait_random_exponential(multiplier=0.05, max=1.0), reraise=True)
    def _download(self, url: str) -> bytes:
        self.aws.stats.attempt("ecr:LayerDownload")
        with urllib.request.urlopen(url, timeout=self.blob_timeout) as resp:
            data: bytes = resp.read(4 * 1024 * 1024)
            return data

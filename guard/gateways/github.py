"""GitHub port (workflow runs of a commit) and its PyGithub adapter: counted, bounded retries, mapped errors."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from guard.errors import AccessDenied, GatewayError, NoCredentials, Throttled, Unreachable
from guard.gateways.stats import ApiStats

if TYPE_CHECKING:
    from github.WorkflowRun import WorkflowRun as GithubRun

SERVICE = "github"
DEFAULT_API_URL = "https://api.github.com"
MAX_RETRY_AFTER = 30  # seconds; a longer Retry-After is capped, a primary rate limit is never waited for
PER_PAGE = 100
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
_T = TypeVar("_T")

# The (stats, "github:Operation") of the call running in this thread, so that retries are counted against it.
_CURRENT: ContextVar[tuple[ApiStats, str] | None] = ContextVar("github_current_call", default=None)


@dataclass(frozen=True)
class WorkflowRun:
    """One GitHub Actions workflow run, as the product reads it."""

    id: int
    name: str
    path: str
    head_sha: str
    head_branch: str
    status: str
    conclusion: str | None
    html_url: str
    run_attempt: int
    event: str
    created_at: str
    workflow_id: int = 0  # in every payload; `name` and `path` are absent from older ones ("" here)


@dataclass(frozen=True)
class Job:
    """One job of a workflow run's latest attempt."""

    id: int
    name: str
    status: str
    conclusion: str | None
    run_attempt: int
    html_url: str


@dataclass(frozen=True)
class Workflow:
    """A workflow's display name and file path (`.github/workflows/build.yml`)."""

    id: int
    name: str
    path: str


@dataclass(frozen=True)
class Provenance:
    """What one artifact attestation's in-toto statement says about the build of a digest (not its signature)."""

    predicate_type: str
    subjects: tuple[str, ...]  # "sha256:<hex>" of every subject
    repository: str  # "owner/name" from the workflow's repository URL, "" when the predicate has none
    workflow_path: str
    commit: str


class GitHubReader(Protocol):
    """What the product reads from GitHub."""

    def runs_for_commit(self, repo: str, sha: str) -> list[WorkflowRun]:
        """Every workflow run of commit `sha` in `repo` ("owner/name"), newest first."""
        ...

    def jobs(self, repo: str, run_id: int) -> list[Job]:
        """The jobs of a run's latest attempt."""
        ...

    def workflow(self, repo: str, workflow_id: int) -> Workflow:
        """A workflow's name and path, for runs whose payload lacks them."""
        ...

    def attestations(self, repo: str, digest: str) -> list[Provenance]:
        """The provenance statements of the artifact attestations stored in `repo` for `digest`."""
        ...


class _CountingRetry(Retry):
    """urllib3 Retry that counts each retry as an HTTP attempt and honours Retry-After on 403 (secondary limits)."""

    RETRY_AFTER_STATUS_CODES = frozenset({403, 413, 429, 503})

    def increment(self, method: str | None = None, url: str | None = None,
                  response: BaseHTTPResponse | None = None, error: Exception | None = None,
                  _pool: ConnectionPool | None = None, _stacktrace: TracebackType | None = None) -> Self:
        """Advance the retry state (raising when exhausted) and count the coming retry."""
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        current = _CURRENT.get()
        if current is not None:
            stats, operation = current
            stats.attempt(operation)
        return retry

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """The server's Retry-After in seconds, capped at MAX_RETRY_AFTER."""
        after = super().get_retry_after(response)
        return None if after is None else min(after, MAX_RETRY_AFTER)


class PyGithubGateway:
    """GitHubReader over PyGithub: throttling off, bounded urllib3 retries, every HTTP request counted."""

    def __init__(self, api_url: str, token: str, stats: ApiStats, timeout: int = 15, retries: int = 3,
                 backoff: float = 0.5) -> None:
        from github import Auth, Github  # PyGithub is slow to import: only when a gateway is built

        self._api_url = api_url.rstrip("/")
        self._stats = stats
        retry = _CountingRetry(total=retries, backoff_factor=backoff, backoff_jitter=backoff,
                               status_forcelist=(429, 500, 502, 503, 504), raise_on_status=False)
        self._github = Github(base_url=self._api_url, auth=Auth.Token(token), timeout=timeout, retry=retry,
                              per_page=PER_PAGE, seconds_between_requests=0, seconds_between_writes=0,
                              user_agent="deploy-guard", lazy=True)

    @classmethod
    def from_env(cls, stats: ApiStats) -> PyGithubGateway:
        """Build from GITHUB_API_URL (default api.github.com) and GITHUB_TOKEN."""
        token = os.environ.get("GITHUB_TOKEN", "").strip()
        if not token:
            raise NoCredentials(SERVICE, "auth", "GITHUB_TOKEN is not set")
        return cls(os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL, token, stats)

    def runs_for_commit(self, repo: str, sha: str) -> list[WorkflowRun]:
        """Every workflow run of commit `sha` in `repo` ("owner/name"), newest first, all pages read."""
        operation = "ListWorkflowRuns"
        with self._call(operation, repo):
            pages = self._github.get_repo(repo).get_workflow_runs(head_sha=sha)
            found: dict[int, WorkflowRun] = {}  # keyed by id: a run created mid-listing shifts pages
            page = 0
            while True:
                self._count(operation)
                batch = pages.get_page(page)
                for run in batch:
                    found.setdefault(run.id, _to_run(run))
                page += 1
                if len(batch) < PER_PAGE or page * PER_PAGE >= pages.totalCount:
                    return list(found.values())

    def jobs(self, repo: str, run_id: int) -> list[Job]:
        """The jobs of the run's latest attempt, all pages read."""
        operation = "ListJobsForWorkflowRun"
        url = f"{self._api_url}/repos/{repo}/actions/runs/{run_id}/jobs"
        with self._call(operation, repo):
            out: list[Job] = []
            page = 1
            while True:
                self._count(operation)
                _, data = self._github.requester.requestJsonAndCheck(
                    "GET", url, parameters={"per_page": PER_PAGE, "page": page})
                batch = data["jobs"]
                out += [Job(int(j["id"]), str(j["name"]), str(j["status"]), j.get("conclusion"),
                            int(j.get("run_attempt") or 1), str(j.get("html_url") or "")) for j in batch]
                if len(batch) < PER_PAGE or len(out) >= int(data.get("total_count", 0)):
                    return out
                page += 1

    def workflow(self, repo: str, workflow_id: int) -> Workflow:
        """A workflow's name and path (GET /actions/workflows/ID)."""
        with self._call("GetWorkflow", repo):
            self._count("GetWorkflow")
            wf = self._github.get_repo(repo).get_workflow(workflow_id)
            return Workflow(workflow_id, wf.name or "", wf.path or "")

    def attestations(self, repo: str, digest: str) -> list[Provenance]:
        """Provenance of the attestations for `digest` in `repo` (GitHub answers 404 when there are none)."""
        from github.GithubException import UnknownObjectException

        operation = "ListAttestations"
        url = f"{self._api_url}/repos/{repo}/attestations/{digest}"
        with self._call(operation, repo):
            self._count(operation)
            try:
                _, data = self._github.requester.requestJsonAndCheck("GET", url, parameters={"per_page": PER_PAGE})
            except UnknownObjectException:
                return []
            return [p for p in (provenance(a.get("bundle") or {}) for a in data["attestations"]) if p is not None]

    def run(self, repo: str, run_id: int) -> WorkflowRun:
        """One workflow run, as it is now."""
        with self._call("GetWorkflowRun", repo):
            self._count("GetWorkflowRun")
            return _to_run(self._github.get_repo(repo).get_workflow_run(run_id))

    def recent_runs(self, repo: str) -> list[WorkflowRun]:
        """The newest 100 workflow runs of `repo` (one page), newest first."""
        with self._call("ListWorkflowRuns", repo):
            self._count("ListWorkflowRuns")
            return [_to_run(r) for r in self._github.get_repo(repo).get_workflow_runs().get_page(0)]

    def rerun(self, repo: str, run_id: int) -> None:
        """POST the run's rerun URL; a refusal raises (AccessDenied names the permission the token lacks).

        PyGithub's `WorkflowRun.rerun()` only returns False on refusal, so the request goes through its
        requester, which raises with GitHub's status and headers. POSTs are never retried.
        """
        with self._call("ReRunWorkflow", repo):
            self._count("ReRunWorkflow")
            url = f"{self._api_url}/repos/{repo}/actions/runs/{run_id}/rerun"
            self._github.requester.requestJsonAndCheck("POST", url)

    def _count(self, operation: str) -> None:
        name = f"{SERVICE}:{operation}"
        self._stats.call(name)
        self._stats.attempt(name)

    @contextmanager
    def _call(self, operation: str, repo: str) -> Iterator[None]:
        marker = _CURRENT.set((self._stats, f"{SERVICE}:{operation}"))
        try:
            yield
        except Exception as exc:
            mapped = _map_error(exc, operation, repo, self._api_url)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            _CURRENT.reset(marker)


def _to_run(run: GithubRun) -> WorkflowRun:
    # Optional fields come from the payload as served: PyGithub would GET the run again for a field it lacks.
    raw: dict[str, Any] = run._rawData
    return WorkflowRun(
        id=run.id, name=_optional(raw, "name", str, ""), path=_optional(raw, "path", str, ""),
        head_sha=run.head_sha, head_branch=run.head_branch, status=run.status, conclusion=run.conclusion,
        html_url=run.html_url, run_attempt=_optional(raw, "run_attempt", int, 1), event=run.event,
        created_at=run.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        workflow_id=_optional(raw, "workflow_id", int, 0))


def _optional(raw: Mapping[str, Any], key: str, kind: type[_T], default: _T) -> _T:
    """A field an older payload may lack (or send as null); any other type is a bad response (TypeError)."""
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"workflow run field {key} is {type(value).__name__}, not {kind.__name__}")
    return value


def provenance(bundle: Mapping[str, Any]) -> Provenance | None:
    """The SLSA provenance a Sigstore bundle's DSSE envelope carries, or None for another kind of statement.

    Reads GitHub's `https://slsa.dev/provenance/v1` predicate (actions/attest-build-provenance): the
    workflow's repository and path from `buildDefinition.externalParameters.workflow`, the commit from
    `resolvedDependencies[].digest.gitCommit`. The signature is not verified here.
    """
    envelope = bundle.get("dsseEnvelope") or {}
    try:
        statement = json.loads(base64.b64decode(str(envelope.get("payload", "")), validate=True))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(statement, dict) or not str(statement.get("predicateType", "")).startswith(SLSA_PROVENANCE):
        return None
    subjects = tuple(f"sha256:{s['digest']['sha256']}" for s in statement.get("subject") or []
                     if isinstance(s, dict) and isinstance(s.get("digest"), dict) and "sha256" in s["digest"])
    build = (statement.get("predicate") or {}).get("buildDefinition") or {}
    workflow = (build.get("externalParameters") or {}).get("workflow") or {}
    repository = str(workflow.get("repository", ""))
    repository = repository.split("://", 1)[-1].split("/", 1)[-1] if "://" in repository else repository
    commits = [str(d["digest"]["gitCommit"]) for d in build.get("resolvedDependencies") or []
               if isinstance(d, dict) and isinstance(d.get("digest"), dict) and "gitCommit" in d["digest"]]
    return Provenance(str(statement["predicateType"]), subjects, repository.removesuffix(".git"),
                      str(workflow.get("path", "")), commits[0] if commits else "")


def _map_error(exc: Exception, operation: str, repo: str, api_url: str) -> GatewayError | None:
    """Translate a PyGithub/requests/urllib3 exception into a could-not-look error (never quoting the token)."""
    import requests
    import urllib3.exceptions
    from github.GithubException import (
        BadAttributeException,
        BadCredentialsException,
        GithubException,
        RateLimitExceededException,
    )

    if isinstance(exc, requests.RequestException | urllib3.exceptions.HTTPError):
        return Unreachable(SERVICE, operation, f"GitHub at {api_url} did not answer ({type(exc).__name__})")
    if isinstance(exc, TypeError | AttributeError | KeyError | ValueError | BadAttributeException):
        return GatewayError(SERVICE, operation, f"GitHub at {api_url} answered a body that is not what the REST API "
                            f"returns ({type(exc).__name__})", "BadResponse")
    if not isinstance(exc, GithubException):
        return None
    headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
    request_id = headers.get("x-github-request-id", "")
    data: Any = exc.data
    message = str(data.get("message", "")) if isinstance(data, dict) else ""
    status = exc.status
    if isinstance(exc, BadCredentialsException) or status == 401:
        return AccessDenied(SERVICE, operation, "GitHub rejected the token (bad credentials)", "401", request_id)
    if isinstance(exc, RateLimitExceededException) or status == 429:
        reset = headers.get("x-ratelimit-reset")
        hint = f"; the limit resets at epoch {reset}" if reset else ""
        return Throttled(SERVICE, operation, f"rate limited by GitHub after retries{hint}", str(status),
                         request_id)
    if status == 403:
        needed = headers.get("x-accepted-github-permissions")
        hint = f" (the token needs {needed})" if needed else ""
        return AccessDenied(SERVICE, operation, f"{message or 'forbidden'}{hint}", "403", request_id)
    if status == 404:
        return AccessDenied(SERVICE, operation, f"repository {repo} not found or the token cannot see it", "404",
                            request_id)
    if status >= 500:
        return Unreachable(SERVICE, operation, f"GitHub answered {status} after retries", str(status), request_id)
    return GatewayError(SERVICE, operation, f"GitHub answered {status}: {message}", str(status), request_id)

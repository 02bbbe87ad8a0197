"""GitHub port (workflow runs of a commit) and its PyGithub adapter: counted, bounded retries, mapped errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

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


class GitHubReader(Protocol):
    """What the product reads from GitHub."""

    def runs_for_commit(self, repo: str, sha: str) -> list[WorkflowRun]:
        """Every workflow run of commit `sha` in `repo` ("owner/name"), newest first."""
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
    return WorkflowRun(
        id=run.id, name=run.name, path=run.path, head_sha=run.head_sha, head_branch=run.head_branch,
        status=run.status, conclusion=run.conclusion, html_url=run.html_url, run_attempt=run.run_attempt,
        event=run.event, created_at=run.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


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

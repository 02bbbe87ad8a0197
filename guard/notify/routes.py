"""Notification routes (stdout, Slack, SNS, GitHub issues and commit statuses), dispatch and self-test.

Route errors never quote secrets (a webhook URL's path, a token).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import tenacity
from botocore.exceptions import ClientError

from guard.config import (
    REPO_PATTERN,
    SHA_PATTERN,
    SNS_ARN_PATTERN,
    GitHubIssueConfig,
    NotifyConfig,
    SlackConfig,
    SnsConfig,
)
from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call
from guard.gateways.stats import ApiStats
from guard.models import InputError
from guard.notify.messages import (
    TEST_TITLE,
    Notification,
    NotificationKind,
    clip,
    render_markdown,
    render_text,
    route_test_notification,
    slack_payload,
    sns_subject,
)

if TYPE_CHECKING:
    from github.Issue import Issue
    from github.Repository import Repository

_log = logging.getLogger(__name__)

DEFAULT_GITHUB_API_URL = "https://api.github.com"


class NotifyError(Exception):
    """A route could not deliver a notification; the reason never quotes a secret."""

    def __init__(self, route: str, reason: str) -> None:
        super().__init__(route, reason)
        self.route = route
        self.reason = reason

    def __str__(self) -> str:
        return f"notification route {self.route}: {self.reason}"


class Route(Protocol):
    """Somewhere notifications go."""

    @property
    def name(self) -> str:
        """Stable name, shown in results."""
        ...

    def send(self, n: Notification) -> None:
        """Deliver `n` or raise NotifyError."""
        ...


class StdoutRoute:
    """One JSON line per notification on a stream (stdout by default): always on, for logs."""

    def __init__(self, stream: TextIO, name: str = "stdout") -> None:
        self.stream = stream
        self.name = name

    def send(self, n: Notification) -> None:
        """Write `n` as one JSON line."""
        try:
            self.stream.write(json.dumps({"notification": n.to_json()}, sort_keys=True) + "\n")
            self.stream.flush()
        except (OSError, ValueError) as exc:
            raise NotifyError(self.name, f"could not write ({type(exc).__name__})") from None


class _Transient(Exception):
    """A failure worth another attempt (5xx, 429, connection trouble)."""


class SlackRoute:
    """Slack incoming webhook: POST JSON; 5xx, 429 and connection errors retried a bounded number of times."""

    def __init__(self, url: str, *, name: str = "slack", timeout: float = 5.0, attempts: int = 3,
                 backoff: float = 0.5) -> None:
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:  # an unbalanced "[" (IPv6 literal) makes urlsplit raise
            parts = urllib.parse.urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"notification route {name}: the webhook URL is not an http(s) URL")
        self._url = url
        self.name = name
        self.host = parts.hostname
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff

    def send(self, n: Notification) -> None:
        """POST `n`; NotifyError at once on 4xx (revoked or edited webhook), after retries otherwise."""
        body = json.dumps(slack_payload(n)).encode()
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.backoff, max=max(self.backoff * 8, 0.0)),
            retry=tenacity.retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            retrying(self._post, body)
        except _Transient as exc:
            raise NotifyError(self.name, f"{exc} after {self.attempts} attempt(s)") from None

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self._url, data=body, method="POST",
                                         headers={"Content-Type": "application/json; charset=utf-8",
                                                  "User-Agent": "deploy-guard"})
        where = f"webhook on {self.host}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            try:
                detail = self._detail(exc.read(500))
            except (OSError, http.client.HTTPException):
                detail = ""
            finally:
                exc.close()
            reason = f"{where} answered HTTP {exc.code}{detail}"
            if exc.code >= 500 or exc.code == 429:
                raise _Transient(reason) from None
            hint = " (the webhook was revoked, or its URL is wrong)" if exc.code in (403, 404, 410) else ""
            raise NotifyError(self.name, reason + hint) from None
        except (OSError, http.client.HTTPException) as exc:
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise _Transient(f"{where} did not answer ({type(cause).__name__})") from None

    def _detail(self, raw: bytes) -> str:
        text = " ".join(raw.decode("utf-8", "replace").split())[:100]
        path = urllib.parse.urlsplit(self._url).path
        if path.strip("/"):
            text = text.replace(path.strip("/"), "<redacted>")
        return f": {text}" if text else ""


class SnsRoute:
    """Amazon SNS topic: Publish with a Subject, the text rendering as Message, and a severity attribute."""

    def __init__(self, aws: AwsSession, topic_arn: str, *, name: str = "sns") -> None:
        match = SNS_ARN_PATTERN.fullmatch(topic_arn)
        if match is None:
            raise InputError(f"notification route {name}: {topic_arn!r} is not an SNS topic ARN")
        self.aws = aws
        self.topic_arn = topic_arn
        self.region = match.group("region")
        self.name = name

    def send(self, n: Notification) -> None:
        """Publish `n`; an AWS failure becomes NotifyError."""
        attributes = {"severity": {"DataType": "String", "StringValue": n.severity.value},
                      "kind": {"DataType": "String", "StringValue": n.kind.value}}
        if n.incident_id:
            attributes["incident_id"] = {"DataType": "String", "StringValue": n.incident_id}
        message = render_text(n).encode()[:250_000].decode("utf-8", "ignore")
        try:
            call(self.aws.client("sns", region=self.region), "Publish", TopicArn=self.topic_arn,
                 Subject=sns_subject(n), Message=message, MessageAttributes=attributes)
        except GatewayError as exc:
            raise NotifyError(self.name, f"SNS publish to {self.topic_arn} failed: {exc}") from None
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise NotifyError(self.name, f"SNS publish to {self.topic_arn} refused: "
                                         f"{err.get('Code', '')}: {err.get('Message', '')}") from None


class _GitHubRoute:
    """Shared PyGithub plumbing: throttling off, bounded retries of idempotent requests, mapped errors."""

    def __init__(self, repo: str, api_url: str, token: str, name: str, stats: ApiStats | None,
                 timeout: int, retries: int, backoff: float) -> None:
        from github import Auth, Github  # PyGithub is slow to import: only when a GitHub route is built
        from urllib3.util.retry import Retry

        if not REPO_PATTERN.fullmatch(repo):
            raise InputError(f"notification route {name}: repository must be owner/name, got {repo!r}")
        self.repo = repo
        self.name = name
        self.api_url = api_url.rstrip("/")
        self._stats = stats or ApiStats()
        # POST/PATCH are not retried on 5xx (urllib3's default methods): a retried create could duplicate.
        retry = Retry(total=retries, backoff_factor=backoff, status_forcelist=(429, 500, 502, 503, 504),
                      raise_on_status=False)
        self._github = Github(base_url=self.api_url, auth=Auth.Token(token), timeout=timeout, retry=retry,
                              seconds_between_requests=0, seconds_between_writes=0, per_page=100,
                              user_agent="deploy-guard", lazy=True)

    def _repository(self) -> Repository:
        return self._github.get_repo(self.repo)

    def _do(self, operation: str, fn: Callable[[], Any]) -> Any:
        """Run one GitHub operation, counted; failures become NotifyError without the token."""
        import requests
        from github.GithubException import GithubException

        label = f"github:{operation}"
        self._stats.call(label)
        self._stats.attempt(label)
        try:
            return fn()
        except GithubException as exc:
            data = exc.data if isinstance(exc.data, dict) else {}
            message = str(data.get("message", "")) or "no message"
            hint = {401: " (the token was rejected)", 403: " (the token lacks a permission)",
                    404: f" (repository {self.repo} not found or not visible to the token)"}.get(exc.status, "")
            raise NotifyError(self.name, f"GitHub {operation} answered {exc.status}: {message}{hint}") from None
        except requests.RequestException as exc:
            raise NotifyError(self.name, f"GitHub at {self.api_url} did not answer {operation} "
                                         f"({type(exc).__name__})") from None


_ID_CHARS = r"[\w-]"


class GitHubIssueRoute(_GitHubRoute):
    """One GitHub issue per incident: opened, then commented on; closed with a comment when resolved."""

    def __init__(self, repo: str, api_url: str, token: str, labels: Sequence[str] = ("deploy-guard", "incident"),
                 *, name: str = "github_issue", stats: ApiStats | None = None, timeout: int = 15,
                 retries: int = 3, backoff: float = 0.5) -> None:
        super().__init__(repo, api_url, token, name, stats, timeout, retries, backoff)
        self.labels = tuple(labels)

    def send(self, n: Notification) -> None:
        """Open, comment on, or close the incident's issue; a test opens and closes one; heartbeats are skipped."""
        repo = self._repository()
        body = render_markdown(n)
        if n.kind is NotificationKind.TEST:
            self._close(self._create(repo, f"{TEST_TITLE} ({self.name})", body))
            return
        if n.incident_id is None:
            return
        issue = self.open_issue(n.incident_id)
        if issue is None:
            if n.kind is not NotificationKind.INCIDENT_RESOLVED:  # resolved, no open issue: nothing to close
                self._create(repo, clip(f"[{n.severity.value.upper()}] {n.title}", 256), body)
            return
        self._do("CreateIssueComment", lambda: issue.create_comment(body))
        if n.kind is NotificationKind.INCIDENT_RESOLVED:
            self._close(issue)

    def open_issue(self, incident_id: str) -> Issue | None:
        """The open issue with our labels whose title names `incident_id`, if any."""
        pattern = re.compile(rf"(?<!{_ID_CHARS}){re.escape(incident_id)}(?!{_ID_CHARS})")

        def find() -> Issue | None:
            for issue in self._repository().get_issues(state="open", labels=list(self.labels)):
                if issue.pull_request is None and pattern.search(issue.title):
                    return issue
            return None

        found: Issue | None = self._do("ListIssues", find)
        return found

    def _close(self, issue: Issue) -> None:
        self._do("UpdateIssue", lambda: issue.edit(state="closed", state_reason="completed"))

    def _create(self, repo: Repository, title: str, body: str) -> Issue:
        issue: Issue = self._do("CreateIssue",
                                lambda: repo.create_issue(title=title, body=body, labels=list(self.labels)))
        return issue


class GitHubStatusRoute(_GitHubRoute):
    """A commit status per incident on the deployed commit: failure while open, success once resolved.

    The context is `<context>/<incident id>`, so one incident's resolution never paints another one green.
    """

    def __init__(self, repo: str, sha: str, api_url: str, token: str, context: str = "deploy-guard/watch", *,
                 name: str = "github_status", stats: ApiStats | None = None, timeout: int = 15,
                 retries: int = 3, backoff: float = 0.5) -> None:
        if not SHA_PATTERN.fullmatch(sha):
            raise InputError(f"notification route {name}: sha must be a full 40-hex commit SHA, got {sha!r}")
        super().__init__(repo, api_url, token, name, stats, timeout, retries, backoff)
        self.sha = sha
        self.context = context

    def send(self, n: Notification) -> None:
        """Create the status for `n`; heartbeats are skipped, a test posts success under `<context>/route-test`."""
        if n.kind is NotificationKind.TEST:
            state, context = "success", f"{self.context}/route-test"
        elif n.incident_id is None:
            return
        else:
            resolved = n.kind is NotificationKind.INCIDENT_RESOLVED
            state, context = ("success" if resolved else "failure"), f"{self.context}/{n.incident_id}"
        commit = self._repository().get_commit(self.sha)
        self._do("CreateCommitStatus", lambda: commit.create_status(
            state=state, description=clip(n.title, 140), context=context))


# ---- dispatch ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteResult:
    """The outcome of one route for one notification."""

    route: str
    ok: bool
    error: str = ""


def _send_one(route: Route, n: Notification) -> RouteResult:
    try:
        route.send(n)
    except NotifyError as exc:
        return RouteResult(route.name, False, str(exc))
    except Exception as exc:  # a crashing route is a result, never a reason to skip the others
        _log.debug("notification route %s crashed", route.name, exc_info=True)
        return RouteResult(route.name, False, f"notification route {route.name}: crashed ({type(exc).__name__})")
    return RouteResult(route.name, True)


def _send_all(jobs: Sequence[tuple[Route, Notification]]) -> list[RouteResult]:
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="notify") as pool:
        return list(pool.map(lambda job: _send_one(*job), jobs))


def dispatch(routes: Iterable[Route], n: Notification) -> list[RouteResult]:
    """Send `n` through every route concurrently; one failing route never hides the others."""
    return _send_all([(route, n) for route in routes])


def notify_test(routes: Iterable[Route]) -> list[RouteResult]:
    """Send each route its own test notification ("if you can read this, route X works")."""
    return _send_all([(route, route_test_notification(route.name)) for route in routes])


def _need_env(environ: Mapping[str, str], var: str, route: str, what: str) -> str:
    value = environ.get(var, "").strip()
    if not value:
        raise InputError(f"notification route {route}: {what} comes from {var}, which is not set")
    return value


def build_routes(config: NotifyConfig, aws: AwsSession, stats: ApiStats,
                 environ: Mapping[str, str] | None = None) -> list[Route]:
    """Build the configured routes (not stdout: the caller adds it); secrets come from the environment."""
    env = os.environ if environ is None else environ
    routes: list[Route] = []
    for rc in config.routes:
        if isinstance(rc, SlackConfig):
            url = rc.url or _need_env(env, rc.url_env, rc.name, "the webhook URL")
            routes.append(SlackRoute(url, name=rc.name))
        elif isinstance(rc, SnsConfig):
            routes.append(SnsRoute(aws, rc.topic_arn, name=rc.name))
        else:
            repo = rc.repository or _need_env(env, "GITHUB_REPOSITORY", rc.name, "the repository")
            token = _need_env(env, "GITHUB_TOKEN", rc.name, "the GitHub token")
            api_url = env.get("GITHUB_API_URL") or DEFAULT_GITHUB_API_URL
            if isinstance(rc, GitHubIssueConfig):
                routes.append(GitHubIssueRoute(repo, api_url, token, rc.labels, name=rc.name, stats=stats))
            else:
                sha = rc.sha or _need_env(env, "GITHUB_SHA", rc.name, "the commit SHA")
                routes.append(GitHubStatusRoute(repo, sha, api_url, token, rc.context, name=rc.name,
                                                stats=stats))
    return routes

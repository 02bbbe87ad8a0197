"""Notifications: what was seen, the evidence, what was done and who must act; routes, self-test, heartbeat.

Messages never claim ownership ("acknowledged", "on it"): a human must always read them as a call to act.
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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import tenacity
from botocore.exceptions import ClientError

from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call
from guard.gateways.stats import ApiStats
from guard.models import Incident, InputError, Severity

if TYPE_CHECKING:
    from github.Issue import Issue
    from github.Repository import Repository

_log = logging.getLogger(__name__)

HEARTBEAT_NAMESPACE = "DeployGuard"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_SLACK_URL_ENV = "SLACK_WEBHOOK_URL"
TEST_TITLE = "deploy-guard notification route test"
_MAX_EVIDENCE = 20
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-f]{40}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SNS_ARN = re.compile(r"arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")


class NotificationKind(StrEnum):
    """Why a notification is sent."""

    INCIDENT_OPENED = "incident_opened"
    INCIDENT_UPDATED = "incident_updated"
    INCIDENT_RESOLVED = "incident_resolved"
    HEARTBEAT = "heartbeat"
    TEST = "test"


_VERB = {
    NotificationKind.INCIDENT_OPENED: "opened",
    NotificationKind.INCIDENT_UPDATED: "still open",
    NotificationKind.INCIDENT_RESOLVED: "resolved",
}


@dataclass(frozen=True)
class Notification:
    """One message for humans: what was seen, the evidence, what was done, and who must act."""

    kind: NotificationKind
    severity: Severity
    title: str
    summary: str
    evidence: tuple[str, ...]
    actions: tuple[str, ...]
    who_must_act: str
    incident_id: str | None = None
    resources: tuple[str, ...] = ()

    @classmethod
    def from_incident(cls, incident: Incident, kind: NotificationKind, actions: Sequence[str] = (),
                      who_must_act: str | None = None) -> Notification:
        """Describe an incident; `who_must_act` defaults to the on-call engineer for its resources."""
        if kind not in _VERB:
            raise ValueError(f"{kind} is not an incident notification")
        if kind is NotificationKind.INCIDENT_RESOLVED:
            summary = (f"The signals of this incident are no longer observed (last seen {incident.last_seen}, "
                       f"first seen {incident.first_seen}). Suspected cause was {incident.cause.value}: "
                       f"{incident.cause_key}.")
        else:
            summary = (f"{incident.title.rstrip('.')}. {len(incident.signals)} signal(s) on {len(incident.resources)} "
                       f"resource(s); suspected cause {incident.cause.value}: {incident.cause_key}; first seen "
                       f"{incident.first_seen}, last seen {incident.last_seen}.")
            if incident.latent:
                summary += " Latent: nothing fails yet; it will on the next task restart or deploy."
        targets = ", ".join(incident.resources) or "the affected services"
        return cls(
            kind=kind,
            severity=incident.severity,
            title=f"{incident.id} {_VERB[kind]}: {incident.title}",
            summary=summary,
            evidence=_incident_evidence(incident),
            actions=tuple(actions),
            who_must_act=who_must_act or f"the on-call engineer for {targets}",
            incident_id=incident.id,
            resources=incident.resources,
        )

    def to_json(self) -> dict[str, object]:
        """The JSON shape of a notification (the stdout route's line)."""
        data = asdict(self)
        data.update(kind=self.kind.value, severity=self.severity.value, evidence=list(self.evidence),
                    actions=list(self.actions), resources=list(self.resources))
        return data

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Notification:
        """Rebuild a notification stored by `to_json` (an undelivered one, kept for the next sweep)."""
        return cls(NotificationKind(doc["kind"]), Severity(doc["severity"]), str(doc["title"]), str(doc["summary"]),
                   tuple(doc.get("evidence", ())), tuple(doc.get("actions", ())), str(doc["who_must_act"]),
                   doc.get("incident_id"), tuple(doc.get("resources", ())))


def _incident_evidence(incident: Incident) -> tuple[str, ...]:
    items: list[str] = []
    for s in incident.signals:
        since = f" (since {s.since})" if s.since else ""
        items.append(f"{s.resource}: {s.message}{since} [{s.watcher_id}]")
        for key, value in sorted(s.evidence.items()):
            shown = ", ".join(value) if isinstance(value, list) else value
            items.append(f"{s.resource} {key}: {shown}")
    items = [_clip(item, 500) for item in dict.fromkeys(items)]
    if len(items) > _MAX_EVIDENCE:
        items = [*items[:_MAX_EVIDENCE - 1], f"... and {len(items) - _MAX_EVIDENCE + 1} more"]
    return tuple(items)


def route_test_notification(route: str) -> Notification:
    """The self-test message sent through `route` by `guard notify --test`."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Notification(
        kind=NotificationKind.TEST,
        severity=Severity.INFO,
        title=TEST_TITLE,
        summary=f"{TEST_TITLE}: if you can read this, route {route} works",
        evidence=(f"sent at {stamp} by `guard notify --test`",),
        actions=("nothing: this is a test",),
        who_must_act="nobody: no action is needed",
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _done(n: Notification) -> tuple[str, ...]:
    return n.actions or ("nothing",)


def render_text(n: Notification) -> str:
    """Plain text: title, what was seen, evidence, what was done, who must act."""
    lines = [f"[{n.severity.value.upper()}] {n.title}", f"What was seen: {n.summary}"]
    if n.evidence:
        lines += ["Evidence:", *(f"  - {e}" for e in n.evidence)]
    lines += ["What was done:", *(f"  - {a}" for a in _done(n)), f"Who must act: {n.who_must_act}"]
    if n.resources:
        lines.append(f"Resources: {', '.join(n.resources)}")
    if n.incident_id:
        lines.append(f"Incident: {n.incident_id}")
    return "\n".join(lines)


def _code(text: str) -> str:
    """A Markdown code span: no formatting, no @mentions, no links from data."""
    return "`" + text.replace("`", "'") + "`"


def render_markdown(n: Notification) -> str:
    """GitHub-flavoured Markdown with the same sections as `render_text`; evidence is quoted as code."""
    parts = [f"### [{n.severity.value.upper()}] {n.title}", f"**What was seen:** {n.summary}"]
    if n.evidence:
        parts.append("**Evidence:**\n" + "\n".join(f"- {_code(e)}" for e in n.evidence))
    parts.append("**What was done:**\n" + "\n".join(f"- {a}" for a in _done(n)))
    parts.append(f"**Who must act:** {n.who_must_act}")
    meta = [f"kind `{n.kind.value}`"]
    if n.incident_id:
        meta.append(f"incident `{n.incident_id}`")
    if n.resources:
        meta.append("resources " + ", ".join(_code(r) for r in n.resources))
    parts.append("<sub>deploy-guard: " + "; ".join(meta) + "</sub>")
    return "\n\n".join(parts) + "\n"


# ---- routes ------------------------------------------------------------------------------------------------


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


def _mrkdwn(text: str) -> str:
    """Escape text for Slack mrkdwn (only &, <, > are control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(n: Notification) -> dict[str, Any]:
    """The incoming-webhook body: a `text` fallback and Block Kit blocks within Slack's size limits."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(n.title, 150)}},
        _section(f"*What was seen:* {_mrkdwn(n.summary)}"),
    ]
    if n.evidence:
        blocks.append(_section("*Evidence:*\n" + "\n".join(f"• {_mrkdwn(e)}" for e in n.evidence)))
    blocks.append(_section("*What was done:*\n" + "\n".join(f"• {_mrkdwn(a)}" for a in _done(n))))
    blocks.append(_section(f"*Who must act:* {_mrkdwn(n.who_must_act)}"))
    context = [f"severity {n.severity.value}", f"kind {n.kind.value}"]
    if n.incident_id:
        context.append(f"incident {n.incident_id}")
    if n.resources:
        context.append("resources " + ", ".join(n.resources))
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": _clip(_mrkdwn(" | ".join(context)), 2000)}]})
    return {"text": _clip(render_text(n), 3000), "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, 3000)}}


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


def _sns_subject(n: Notification) -> str:
    """SNS subjects: ASCII printable, no line breaks, at most 100 characters."""
    raw = f"[{n.severity.value.upper()}] {n.title}"
    ascii_only = "".join(c if 32 <= ord(c) < 127 else " " for c in raw)
    return _clip(" ".join(ascii_only.split()), 100) or TEST_TITLE


class SnsRoute:
    """Amazon SNS topic: Publish with a Subject, the text rendering as Message, and a severity attribute."""

    def __init__(self, aws: AwsSession, topic_arn: str, *, name: str = "sns") -> None:
        match = _SNS_ARN.fullmatch(topic_arn)
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
                 Subject=_sns_subject(n), Message=message, MessageAttributes=attributes)
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

        if not _REPO.fullmatch(repo):
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
                self._create(repo, _clip(f"[{n.severity.value.upper()}] {n.title}", 256), body)
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
        if not _SHA.fullmatch(sha):
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
            state=state, description=_clip(n.title, 140), context=context))


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


# ---- heartbeat ---------------------------------------------------------------------------------------------


def _metric_name(key: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", key) if part)


def send_heartbeat(aws: AwsSession, stats: ApiStats, sweep_summary: Mapping[str, int]) -> None:
    """Put DeployGuard/Heartbeat=1, OpenIncidents and the sweep's other counts, so silence can alarm."""
    values = {"OpenIncidents": 0, "ApiCalls": stats.total_calls}
    values.update({_metric_name(k): int(v) for k, v in sweep_summary.items() if _metric_name(k)})
    values["Heartbeat"] = 1  # a sweep summary can never turn the heartbeat off
    stamp = datetime.now(UTC)
    data = [{"MetricName": name, "Value": float(value), "Unit": "Count", "Timestamp": stamp}
            for name, value in values.items()]
    try:
        call(aws.client("cloudwatch"), "PutMetricData", Namespace=HEARTBEAT_NAMESPACE, MetricData=data)
    except (GatewayError, ClientError) as exc:
        raise NotifyError("heartbeat", f"PutMetricData failed: {exc}") from None


# ---- configuration -----------------------------------------------------------------------------------------


class RouteType(StrEnum):
    """Route types a `[[notify.routes]]` entry may name."""

    SLACK = "slack"
    SNS = "sns"
    GITHUB_ISSUE = "github_issue"
    GITHUB_STATUS = "github_status"


@dataclass(frozen=True)
class SlackConfig:
    """A Slack webhook route; the URL comes from env var `url_env` unless a literal `url` is given."""

    name: str
    url_env: str = DEFAULT_SLACK_URL_ENV
    url: str | None = None


@dataclass(frozen=True)
class SnsConfig:
    """An SNS topic route."""

    name: str
    topic_arn: str


@dataclass(frozen=True)
class GitHubIssueConfig:
    """A GitHub issue route; `repository` defaults to GITHUB_REPOSITORY when the routes are built."""

    name: str
    repository: str | None = None
    labels: tuple[str, ...] = ("deploy-guard", "incident")


@dataclass(frozen=True)
class GitHubStatusConfig:
    """A commit-status route; `sha` defaults to GITHUB_SHA when the routes are built."""

    name: str
    repository: str | None = None
    sha: str | None = None
    context: str = "deploy-guard/watch"


RouteConfig = SlackConfig | SnsConfig | GitHubIssueConfig | GitHubStatusConfig


@dataclass(frozen=True)
class NotifyConfig:
    """The `[notify]` table: whether to emit a heartbeat, and the routes beyond stdout."""

    heartbeat: bool = True
    routes: tuple[RouteConfig, ...] = ()
    source: str = "defaults"


_ROUTE_KEYS: Mapping[RouteType, frozenset[str]] = {
    RouteType.SLACK: frozenset({"type", "name", "url_env", "url"}),
    RouteType.SNS: frozenset({"type", "name", "topic_arn"}),
    RouteType.GITHUB_ISSUE: frozenset({"type", "name", "repository", "labels"}),
    RouteType.GITHUB_STATUS: frozenset({"type", "name", "repository", "sha", "context"}),
}


def _opt_str(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise InputError(f"{where}.{key} must be a non-empty string")
    return value.strip() if isinstance(value, str) else None


def _scheme(url: str) -> str:
    """The URL's scheme, "" when it does not parse (urlsplit raises ValueError on a bad IPv6 literal)."""
    try:
        return urllib.parse.urlsplit(url).scheme
    except ValueError:
        return ""


def _parse_route(entry: Any, where: str, default_name: str) -> RouteConfig:
    if not isinstance(entry, dict):
        raise InputError(f"{where} must be a table")
    raw_type = entry.get("type")
    try:
        kind = RouteType(str(raw_type))
    except ValueError:
        known = ", ".join(t.value for t in RouteType)
        raise InputError(f"{where}.type must be one of {known}; got {raw_type!r}") from None
    unknown = sorted(set(entry) - _ROUTE_KEYS[kind])
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} for a {kind.value} route; "
                         f"known: {', '.join(sorted(_ROUTE_KEYS[kind]))}")
    name = _opt_str(entry, "name", where) or default_name
    repository = _opt_str(entry, "repository", where)
    if repository is not None and not _REPO.fullmatch(repository):
        raise InputError(f"{where}.repository must be owner/name; got {repository!r}")
    if kind is RouteType.SLACK:
        url_env, url = _opt_str(entry, "url_env", where), _opt_str(entry, "url", where)
        if url_env and url:
            raise InputError(f"{where}: give url_env or url, not both")
        if url_env is not None and not _ENV_NAME.fullmatch(url_env):
            raise InputError(f"{where}.url_env must name an environment variable; got {url_env!r}")
        if url is not None and _scheme(url) not in ("http", "https"):
            raise InputError(f"{where}.url is not an http(s) URL")  # never echoed: it is a secret
        return SlackConfig(name, url_env or DEFAULT_SLACK_URL_ENV, url)
    if kind is RouteType.SNS:
        arn = _opt_str(entry, "topic_arn", where)
        if arn is None or not _SNS_ARN.fullmatch(arn):
            raise InputError(f"{where}.topic_arn must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME); "
                             f"got {arn!r}")
        return SnsConfig(name, arn)
    if kind is RouteType.GITHUB_ISSUE:
        labels = entry.get("labels", ["deploy-guard", "incident"])
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise InputError(f"{where}.labels must be a non-empty list of strings")
        return GitHubIssueConfig(name, repository, tuple(labels))
    sha = _opt_str(entry, "sha", where)
    if sha is not None and not _SHA.fullmatch(sha):
        raise InputError(f"{where}.sha must be a full 40-hex commit SHA; got {sha!r}")
    return GitHubStatusConfig(name, repository, sha, _opt_str(entry, "context", where) or "deploy-guard/watch")


def parse_notify_config(table: Mapping[str, Any], source: str) -> NotifyConfig:
    """Validate a `[notify]` table; unknown keys and route types are refused so typos never pass silently."""
    known = {"heartbeat", "routes"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise InputError(f"{source}: unknown notify setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    heartbeat = table.get("heartbeat", True)
    if not isinstance(heartbeat, bool):
        raise InputError(f"{source}: notify.heartbeat must be true or false")
    entries = table.get("routes", [])
    if not isinstance(entries, list):
        raise InputError(f"{source}: notify.routes must be an array of tables ([[notify.routes]])")
    types = [e.get("type") if isinstance(e, dict) else None for e in entries]
    routes = tuple(
        _parse_route(entry, f"{source}: notify.routes[{i}]",
                     str(types[i]) if types.count(types[i]) == 1 else f"{types[i]}#{i}")
        for i, entry in enumerate(entries))
    names = [r.name for r in routes]
    duplicates = sorted({n for n in names if names.count(n) > 1} | ({"stdout"} & set(names)))
    if duplicates:
        raise InputError(f"{source}: notify.routes: route name(s) {', '.join(duplicates)} used twice "
                         "(stdout is reserved)")
    return NotifyConfig(heartbeat, routes, source)


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

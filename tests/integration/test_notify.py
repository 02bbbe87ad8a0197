"""Notifications against the webhook sandbox, moto (SNS -> SQS, CloudWatch) and the GitHub sandbox."""

from __future__ import annotations

import io
import json
import re
import socket
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from guard.config import (
    GitHubIssueConfig,
    GitHubStatusConfig,
    NotifyConfig,
    SlackConfig,
    SnsConfig,
    parse_notify_config,
)
from guard.gateways.aws import AwsSession, AwsSettings
from guard.gateways.stats import ApiStats
from guard.metrics import send_heartbeat
from guard.models import Cause, Incident, IncidentStatus, InputError, Severity, Signal
from guard.notify.messages import (
    Notification,
    NotificationKind,
    render_markdown,
    render_text,
    route_test_notification,
    slack_payload,
)
from guard.notify.routes import (
    GitHubIssueRoute,
    GitHubStatusRoute,
    NotifyError,
    Route,
    RouteResult,
    SlackRoute,
    SnsRoute,
    StdoutRoute,
    build_routes,
    dispatch,
    notify_test,
)
from guard.sandbox.github_server import DEFAULT_TOKEN, GitHubSandbox
from guard.sandbox.scenarios import Scenario
from guard.sandbox.webhook_server import DEFAULT_HOOK_PATH, WebhookSandbox

REPO = "acme/shop"
SHA = "d" * 40
SECRET_TOKEN = "ghs_n0tify5ecretT0ken"
TOPIC = "arn:aws:sns:us-east-1:123456789012:deploy-guard"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.4.2"
OWNERSHIP = re.compile(r"\b(acknowledged?|ack'?d|handled|handling|on it|we are investigating|we're investigating|"
                       r"investigating|looking into|taking care|we've got|we have got)\b", re.IGNORECASE)


def _incident(incident_id: str = "INC-1a2b3c4d", status: IncidentStatus = IncidentStatus.OPEN,
              extra_evidence: int = 0) -> Incident:
    evidence: dict[str, str | int | float | bool | list[str] | None] = {
        "stoppedReason": f"CannotPullContainerError: {IMAGE}: not found", "failedTasks": 4}
    evidence.update({f"k{i:02}": "v" for i in range(extra_evidence)})
    signals = tuple(
        Signal(watcher_id="ECS101", severity=Severity.ERROR, resource=f"ecs:prod/{svc}", cause=Cause.MISSING_IMAGE,
               cause_key=IMAGE, message="tasks fail to start", since="2025-05-01T10:00:00Z", evidence=evidence)
        for svc in ("web", "api"))
    return Incident(id=incident_id, severity=Severity.ERROR, cause=Cause.MISSING_IMAGE, cause_key=IMAGE,
                    title="2 services cannot pull their image", resources=("ecs:prod/web", "ecs:prod/api"),
                    signals=signals, first_seen="2025-05-01T10:00:00Z", last_seen="2025-05-01T10:05:00Z",
                    status=status)


def _note(kind: NotificationKind = NotificationKind.INCIDENT_OPENED, incident_id: str = "INC-1a2b3c4d",
          actions: tuple[str, ...] = ("nothing: observe mode",)) -> Notification:
    return Notification.from_incident(_incident(incident_id), kind, actions=actions)


class _Broken:
    """A route that fails the way a real one does, or crashes."""

    def __init__(self, name: str, crash: bool = False) -> None:
        self.name = name
        self.crash = crash

    def send(self, n: Notification) -> None:
        if self.crash:
            raise RuntimeError(f"bug with {SECRET_TOKEN}")
        raise NotifyError(self.name, "it is down")


@pytest.fixture(scope="module")
def hook_server() -> Iterator[WebhookSandbox]:
    """One webhook sandbox for the module."""
    with WebhookSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def hook(hook_server: WebhookSandbox) -> WebhookSandbox:
    """The module's webhook sandbox, reset."""
    hook_server.reset()
    return hook_server


def _slack(hook: WebhookSandbox, attempts: int = 3) -> SlackRoute:
    return SlackRoute(hook.url, attempts=attempts, backoff=0, timeout=2)


def _session() -> AwsSession:
    return AwsSession(AwsSettings(max_attempts=1))


def _assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


# ---- messages --------------------------------------------------------------------------------------------


def test_from_incident_says_what_was_seen_the_evidence_what_was_done_and_who_must_act() -> None:
    n = Notification.from_incident(_incident(), NotificationKind.INCIDENT_OPENED)
    assert n.incident_id == "INC-1a2b3c4d"
    assert n.resources == ("ecs:prod/web", "ecs:prod/api")
    assert n.who_must_act == "the on-call engineer for ecs:prod/web, ecs:prod/api"
    text = render_text(n)
    assert text.startswith("[ERROR] INC-1a2b3c4d opened: 2 services cannot pull their image\n")
    assert "What was seen: 2 services cannot pull their image. 2 signal(s) on 2 resource(s)" in text
    assert f"  - ecs:prod/web stoppedReason: CannotPullContainerError: {IMAGE}: not found" in text
    assert "What was done:\n  - nothing\nWho must act: the on-call engineer for ecs:prod/web" in text
    resolved = Notification.from_incident(_incident(status=IncidentStatus.RESOLVED),
                                          NotificationKind.INCIDENT_RESOLVED, actions=("rolled back ecs:prod/web",),
                                          who_must_act="the owner of web")
    assert resolved.title.startswith("INC-1a2b3c4d resolved: ")
    assert "no longer observed (last seen 2025-05-01T10:05:00Z" in resolved.summary
    assert "  - rolled back ecs:prod/web\nWho must act: the owner of web" in render_text(resolved)
    with pytest.raises(ValueError, match="not an incident notification"):
        Notification.from_incident(_incident(), NotificationKind.HEARTBEAT)


def test_evidence_is_capped() -> None:
    n = Notification.from_incident(_incident(extra_evidence=30), NotificationKind.INCIDENT_UPDATED)
    assert len(n.evidence) == 20
    assert re.fullmatch(r"\.\.\. and \d+ more", n.evidence[-1])


@pytest.mark.parametrize("kind", list(NotificationKind))
def test_rendered_messages_never_claim_ownership(kind: NotificationKind) -> None:
    if kind in (NotificationKind.TEST, NotificationKind.HEARTBEAT):
        n = route_test_notification("slack")
    else:
        n = _note(kind, actions=())
    for rendered in (render_text(n), render_markdown(n), json.dumps(slack_payload(n)), json.dumps(n.to_json())):
        assert OWNERSHIP.search(rendered) is None, rendered
        assert "Who must act" in rendered or "who_must_act" in rendered


def test_phrase_scan_catches_ownership_claims() -> None:
    claims = ["Acknowledged by deploy-guard", "this is handled", "we're on it", "We are investigating"]
    assert all(OWNERSHIP.search(c) for c in claims)


def test_markdown_quotes_evidence_so_data_cannot_mention_or_format() -> None:
    n = Notification(NotificationKind.INCIDENT_OPENED, Severity.WARNING, "INC-9 opened: x", "seen",
                     ("ping @acme/oncall `now`",), (), "the on-call engineer for ecs:a/b", "INC-9", ("ecs:a/b",))
    md = render_markdown(n)
    assert "- `ping @acme/oncall 'now'`" in md
    assert md.startswith("### [WARNING] INC-9 opened: x\n\n**What was seen:** seen")
    assert "**What was done:**\n- nothing" in md


def test_stdout_route_writes_one_json_line() -> None:
    stream = io.StringIO()
    StdoutRoute(stream).send(_note())
    (line,) = stream.getvalue().splitlines()
    body = json.loads(line)["notification"]
    assert body["kind"] == "incident_opened" and body["severity"] == "error"
    assert body["incident_id"] == "INC-1a2b3c4d" and body["actions"] == ["nothing: observe mode"]


# ---- Slack -------------------------------------------------------------------------------------------------


def test_slack_route_delivers_block_kit_payload(hook: WebhookSandbox) -> None:
    n = Notification(NotificationKind.INCIDENT_OPENED, Severity.ERROR, "INC-7 opened: a <b> & c", "seen <x>",
                     ("e1",), ("nothing: observe mode",), "the on-call engineer for ecs:p/w", "INC-7", ("ecs:p/w",))
    _slack(hook).send(n)
    (body,) = hook.received
    assert body["text"] == render_text(n)
    header, seen, evidence, done, who, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "INC-7 opened: a <b> & c"}}
    assert seen["text"] == {"type": "mrkdwn", "text": "*What was seen:* seen &lt;x&gt;"}
    assert evidence["text"]["text"] == "*Evidence:*\n• e1"
    assert done["text"]["text"] == "*What was done:*\n• nothing: observe mode"
    assert who["text"]["text"] == "*Who must act:* the on-call engineer for ecs:p/w"
    assert context["elements"][0]["text"] == ("severity error | kind incident_opened | incident INC-7 | "
                                              "resources ecs:p/w")


def test_slack_revoked_webhook_fails_at_once_without_the_url(hook: WebhookSandbox) -> None:
    hook.fail_with(404, "no_service")
    with pytest.raises(NotifyError) as caught:
        _slack(hook).send(_note())
    assert hook.attempts == 1  # a 4xx is never retried
    message = str(caught.value)
    assert message == ("notification route slack: webhook on 127.0.0.1 answered HTTP 404: no_service "
                       "(the webhook was revoked, or its URL is wrong)")
    _assert_no_secret(message + repr(caught.value), hook.url, DEFAULT_HOOK_PATH, "XXXXXXXX")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_slack_server_error_is_retried_then_delivered(hook: WebhookSandbox) -> None:
    hook.fail_with(500, "rollup_error", times=2)
    _slack(hook).send(_note())
    assert hook.attempts == 3
    assert len(hook.received) == 1


def test_slack_server_error_gives_up_after_the_bounded_attempts(hook: WebhookSandbox) -> None:
    hook.fail_with(503, "service unavailable")
    with pytest.raises(NotifyError, match=r"answered HTTP 503: service unavailable after 2 attempt\(s\)"):
        _slack(hook, attempts=2).send(_note())
    assert hook.attempts == 2 and hook.received == []


def test_slack_dropped_connection_is_retried(hook: WebhookSandbox) -> None:
    hook.drop_connections(times=1)
    _slack(hook).send(_note())
    assert hook.attempts == 2 and len(hook.received) == 1


def test_slack_dropped_connections_fail_without_the_url(hook: WebhookSandbox) -> None:
    hook.drop_connections()
    with pytest.raises(NotifyError, match=r"webhook on 127.0.0.1 did not answer \(\w+\) after 3 attempt") as caught:
        _slack(hook).send(_note())
    assert hook.attempts == 3
    _assert_no_secret(str(caught.value), hook.url, DEFAULT_HOOK_PATH)


def test_slack_unreachable_host_fails_without_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}{DEFAULT_HOOK_PATH}"
    with pytest.raises(NotifyError, match=r"did not answer \(ConnectionRefusedError\)") as caught:
        SlackRoute(url, attempts=2, backoff=0, timeout=1).send(_note())
    _assert_no_secret(str(caught.value), url, DEFAULT_HOOK_PATH)


def test_slack_wrong_path_is_refused_like_a_hand_edited_webhook(hook: WebhookSandbox) -> None:
    with pytest.raises(NotifyError, match="HTTP 404: no_service") as caught:
        SlackRoute(hook.url + "typo", attempts=3, backoff=0).send(_note())
    assert hook.attempts == 1
    _assert_no_secret(str(caught.value), DEFAULT_HOOK_PATH)


def test_slack_route_refuses_a_non_http_url_without_echoing_it() -> None:
    with pytest.raises(InputError) as caught:
        SlackRoute("file:///services/T0/B0/s3cr3t")
    _assert_no_secret(str(caught.value), "s3cr3t")


# ---- SNS ---------------------------------------------------------------------------------------------------


def test_sns_publish_lands_in_a_subscribed_queue(aws: Scenario) -> None:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.create_topic(Name="deploy-guard")["TopicArn"]
    queue = sqs.create_queue(QueueName="pager")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    session = _session()
    n = _note()
    SnsRoute(session, topic).send(n)
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["TopicArn"] == topic
    assert envelope["Subject"] == "[ERROR] INC-1a2b3c4d opened: 2 services cannot pull their image"
    assert envelope["Message"] == render_text(n)
    assert envelope["MessageAttributes"]["severity"] == {"Type": "String", "Value": "error"}
    assert envelope["MessageAttributes"]["incident_id"] == {"Type": "String", "Value": "INC-1a2b3c4d"}
    assert session.stats.calls["sns:Publish"] == 1


def test_sns_subject_is_ascii_single_line_and_at_most_100_chars(aws: Scenario) -> None:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.create_topic(Name="deploy-guard")["TopicArn"]
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    n = Notification(NotificationKind.INCIDENT_UPDATED, Severity.WARNING, "INC-5 still open: café\nline " + "x" * 200,
                     "seen", (), (), "someone")
    SnsRoute(_session(), topic).send(n)
    subject = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])["Subject"]
    assert len(subject) == 100 and subject.isascii() and "\n" not in subject
    assert subject.startswith("[WARNING] INC-5 still open: caf line xxx") and subject.endswith("...")


def test_sns_missing_topic_is_a_notify_error(aws: Scenario) -> None:
    with pytest.raises(NotifyError, match=r"notification route sns: SNS publish to .*deploy-guard refused: NotFound"):
        SnsRoute(_session(), TOPIC).send(_note())


# ---- GitHub ------------------------------------------------------------------------------------------------


def _issue_route(github: GitHubSandbox, token: str = DEFAULT_TOKEN) -> GitHubIssueRoute:
    return GitHubIssueRoute(REPO, github.api_url, token, retries=0)


def test_github_issue_opened_then_commented_then_closed(github: GitHubSandbox) -> None:
    github.add_repo(REPO)
    stats = ApiStats()
    route = GitHubIssueRoute(REPO, github.api_url, DEFAULT_TOKEN, stats=stats, retries=0)
    other = _note(incident_id="INC-1a2b3c4d9")  # a longer ID sharing the prefix must never match
    route.send(other)
    route.send(_note())
    issues = github.issues(REPO)
    assert [i["title"] for i in issues] == [
        "[ERROR] INC-1a2b3c4d9 opened: 2 services cannot pull their image",
        "[ERROR] INC-1a2b3c4d opened: 2 services cannot pull their image"]
    ours = issues[1]
    assert {lb["name"] for lb in ours["labels"]} == {"deploy-guard", "incident"}
    assert ours["body"] == render_markdown(_note())

    route.send(_note(NotificationKind.INCIDENT_UPDATED))
    assert [c["body"] for c in github.comments(REPO, ours["number"])] == [
        render_markdown(_note(NotificationKind.INCIDENT_UPDATED))]
    assert github.issues(REPO)[1]["state"] == "open"

    route.send(_note(NotificationKind.INCIDENT_RESOLVED, actions=("rolled back ecs:prod/web",)))
    issues = github.issues(REPO)
    assert [i["state"] for i in issues] == ["open", "closed"]
    assert issues[1]["state_reason"] == "completed"
    comments = github.comments(REPO, ours["number"])
    assert len(comments) == 2 and comments[1]["body"].startswith("### [ERROR] INC-1a2b3c4d resolved: ")
    assert github.comments(REPO, issues[0]["number"]) == []

    route.send(_note(NotificationKind.INCIDENT_RESOLVED))  # already closed: nothing to do, nothing duplicated
    assert len(github.issues(REPO)) == 2 and len(github.comments(REPO, ours["number"])) == 2
    assert stats.calls["github:CreateIssue"] == 2 and stats.calls["github:UpdateIssue"] == 1


def test_github_issue_heartbeat_is_skipped(github: GitHubSandbox) -> None:
    github.add_repo(REPO)
    n = Notification(NotificationKind.HEARTBEAT, Severity.INFO, "alive", "sweep done", (), (), "nobody")
    _issue_route(github).send(n)
    assert github.issues(REPO) == [] and github.requests == []


def test_github_issue_bad_token_is_a_notify_error_without_the_token(github: GitHubSandbox) -> None:
    github.add_repo(REPO)
    with pytest.raises(NotifyError, match="answered 401: Bad credentials \\(the token was rejected\\)") as caught:
        _issue_route(github, SECRET_TOKEN).send(_note())
    _assert_no_secret(str(caught.value) + repr(caught.value), SECRET_TOKEN)


def test_github_issue_unknown_repository_is_named(github: GitHubSandbox) -> None:
    with pytest.raises(NotifyError, match=f"answered 404: Not Found \\(repository {REPO} not found"):
        _issue_route(github).send(_note())


def test_github_status_failure_while_open_success_when_resolved(github: GitHubSandbox) -> None:
    github.add_repo(REPO)
    route = GitHubStatusRoute(REPO, SHA, github.api_url, DEFAULT_TOKEN, retries=0)
    route.send(_note())
    route.send(_note(NotificationKind.INCIDENT_RESOLVED))
    states = [(s["state"], s["context"], s["description"]) for s in github.statuses(REPO, SHA)]
    assert states == [
        ("failure", "deploy-guard/watch/INC-1a2b3c4d", "INC-1a2b3c4d opened: 2 services cannot pull their image"),
        ("success", "deploy-guard/watch/INC-1a2b3c4d", "INC-1a2b3c4d resolved: 2 services cannot pull their image"),
    ]


def test_github_status_needs_a_full_sha() -> None:
    with pytest.raises(InputError, match="sha must be a full 40-hex commit SHA"):
        GitHubStatusRoute(REPO, "abc123", "http://127.0.0.1:1/api/v3", DEFAULT_TOKEN)


# ---- dispatch and self-test --------------------------------------------------------------------------------


def test_dispatch_continues_past_failing_routes(hook: WebhookSandbox) -> None:
    stream = io.StringIO()
    routes: list[Route] = [_Broken("first"), StdoutRoute(stream), _Broken("crashy", crash=True), _slack(hook)]
    results = dispatch(routes, _note())
    assert results == [
        RouteResult("first", False, "notification route first: it is down"),
        RouteResult("stdout", True),
        RouteResult("crashy", False, "notification route crashy: crashed (RuntimeError)"),
        RouteResult("slack", True),
    ]
    assert len(stream.getvalue().splitlines()) == 1 and len(hook.received) == 1


def test_notify_test_reports_the_one_broken_route(hook: WebhookSandbox, github: GitHubSandbox) -> None:
    github.add_repo(REPO)
    stream = io.StringIO()
    broken = SlackRoute(hook.url + "-revoked", name="slack-old", attempts=1, backoff=0)
    routes: list[Route] = [StdoutRoute(stream), _slack(hook), broken, _issue_route(github),
              GitHubStatusRoute(REPO, SHA, github.api_url, DEFAULT_TOKEN, retries=0)]
    results = notify_test(routes)
    assert [(r.route, r.ok) for r in results] == [
        ("stdout", True), ("slack", True), ("slack-old", False), ("github_issue", True), ("github_status", True)]
    assert next(r for r in results if not r.ok).error.endswith("HTTP 404: no_service (the webhook was revoked, "
                                                              "or its URL is wrong)")
    assert hook.received[0]["blocks"][1]["text"]["text"] == (
        "*What was seen:* deploy-guard notification route test: if you can read this, route slack works")
    assert json.loads(stream.getvalue())["notification"]["kind"] == "test"
    (issue,) = github.issues(REPO)
    assert issue["title"] == "deploy-guard notification route test (github_issue)" and issue["state"] == "closed"
    assert "route github_issue works" in issue["body"]
    (status,) = github.statuses(REPO, SHA)
    assert (status["state"], status["context"]) == ("success", "deploy-guard/watch/route-test")


# ---- heartbeat ---------------------------------------------------------------------------------------------


def test_heartbeat_puts_metrics_an_alarm_can_watch(aws: Scenario) -> None:
    stats = ApiStats()
    stats.call("ecs:DescribeServices")
    session = _session()
    send_heartbeat(session, stats, {"open_incidents": 2, "signals": 5})
    cw, now = aws.client("cloudwatch"), datetime.now(UTC)
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="DeployGuard")["Metrics"]}
    assert names == {"Heartbeat", "OpenIncidents", "Signals", "ApiCalls"}
    data = cw.get_metric_data(
        MetricDataQueries=[{"Id": name.lower(), "MetricStat": {
            "Metric": {"Namespace": "DeployGuard", "MetricName": name}, "Period": 60, "Stat": "Maximum"}}
            for name in ("Heartbeat", "OpenIncidents", "ApiCalls")],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=5))
    values = {r["Id"]: r["Values"] for r in data["MetricDataResults"]}
    assert values == {"heartbeat": [1.0], "openincidents": [2.0], "apicalls": [1.0]}
    assert session.stats.calls == {"cloudwatch:PutMetricData": 1}


def test_heartbeat_failure_is_a_notify_error(monkeypatch: pytest.MonkeyPatch, aws: Scenario) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(NotifyError, match=r"notification route heartbeat: PutMetricData failed: .*unreachable"):
        send_heartbeat(AwsSession(AwsSettings(max_attempts=1, connect_timeout=1)), ApiStats(), {})


# ---- configuration -----------------------------------------------------------------------------------------

EXAMPLE = """
[notify]
heartbeat = true
[[notify.routes]]
type = "slack"
url_env = "SLACK_WEBHOOK_URL"
[[notify.routes]]
type = "sns"
topic_arn = "arn:aws:sns:us-east-1:123456789012:deploy-guard"
[[notify.routes]]
type = "github_issue"
repository = "acme/shop"
[[notify.routes]]
type = "github_status"
name = "commit"
"""


def test_parse_notify_config_reads_the_documented_example() -> None:
    config = parse_notify_config(tomllib.loads(EXAMPLE)["notify"], "guard.toml")
    assert config == NotifyConfig(
        heartbeat=True,
        routes=(SlackConfig("slack", "SLACK_WEBHOOK_URL"), SnsConfig("sns", TOPIC),
                GitHubIssueConfig("github_issue", "acme/shop"), GitHubStatusConfig("commit")),
        source="guard.toml")
    assert parse_notify_config({}, "x") == NotifyConfig(source="x")
    two = parse_notify_config({"routes": [{"type": "slack"}, {"type": "slack", "url_env": "B"}]}, "x")
    assert [r.name for r in two.routes] == ["slack#0", "slack#1"]


@pytest.mark.parametrize(("table", "message"), [
    ({"heartbaet": True}, "guard.toml: unknown notify setting(s) heartbaet; known: heartbeat, routes"),
    ({"heartbeat": "yes"}, "guard.toml: notify.heartbeat must be true or false"),
    ({"routes": {"type": "slack"}}, "guard.toml: notify.routes must be an array of tables"),
    ({"routes": ["slack"]}, "guard.toml: notify.routes[0] must be a table"),
    ({"routes": [{"type": "pagerduty"}]},
     "guard.toml: notify.routes[0].type must be one of slack, sns, github_issue, github_status; got 'pagerduty'"),
    ({"routes": [{"url_env": "X"}]}, "notify.routes[0].type must be one of"),
    ({"routes": [{"type": "sns", "topic_arn": TOPIC, "region": "x"}]},
     "guard.toml: notify.routes[0]: unknown key(s) region for a sns route; known: name, topic_arn, type"),
    ({"routes": [{"type": "slack", "url_env": "A", "url": "https://hooks.example/s3cr3t"}]},
     "notify.routes[0]: give url_env or url, not both"),
    ({"routes": [{"type": "slack", "url_env": "not a var"}]}, "url_env must name an environment variable"),
    ({"routes": [{"type": "sns"}]}, "notify.routes[0].topic_arn must be an SNS topic ARN"),
    ({"routes": [{"type": "sns", "topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"}]}, "must be an SNS topic ARN"),
    ({"routes": [{"type": "github_issue", "repository": "shop"}]}, "repository must be owner/name; got 'shop'"),
    ({"routes": [{"type": "github_issue", "labels": "incident"}]}, "labels must be a non-empty list of strings"),
    ({"routes": [{"type": "github_status", "sha": "HEAD"}]}, "sha must be a full 40-hex commit SHA"),
    ({"routes": [{"type": "sns", "topic_arn": TOPIC, "name": "x"}, {"type": "slack", "name": "x"}]},
     "route name(s) x used twice"),
    ({"routes": [{"type": "slack", "name": "stdout"}]}, "(stdout is reserved)"),
])
def test_parse_notify_config_refuses_bad_input(table: dict[str, object], message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_notify_config(table, "guard.toml")
    assert message in str(caught.value)


def test_literal_slack_url_is_never_echoed_in_errors() -> None:
    with pytest.raises(InputError) as caught:
        parse_notify_config({"routes": [{"type": "slack", "url": "ftp://hooks/s3cr3t"}]}, "guard.toml")
    assert str(caught.value) == "guard.toml: notify.routes[0].url is not an http(s) URL"


def test_build_routes_takes_secrets_and_endpoints_from_the_environment(hook: WebhookSandbox,
                                                                        github: GitHubSandbox) -> None:
    github.add_repo(REPO)
    config = parse_notify_config(tomllib.loads(EXAMPLE)["notify"], "guard.toml")
    env = {"SLACK_WEBHOOK_URL": hook.url, "GITHUB_API_URL": github.api_url, "GITHUB_TOKEN": DEFAULT_TOKEN,
           "GITHUB_REPOSITORY": REPO, "GITHUB_SHA": SHA}
    stats = ApiStats()
    routes = build_routes(config, _session(), stats, env)
    assert [type(r).__name__ for r in routes] == ["SlackRoute", "SnsRoute", "GitHubIssueRoute", "GitHubStatusRoute"]
    slack, issue, status = routes[0], routes[2], routes[3]
    assert [r.ok for r in dispatch([slack, issue, status], _note())] == [True, True, True]
    assert len(hook.received) == 1 and len(github.issues(REPO)) == 1 and len(github.statuses(REPO, SHA)) == 1
    assert stats.calls["github:CreateIssue"] == 1 and stats.calls["github:CreateCommitStatus"] == 1


def test_build_routes_defaults_to_the_process_environment(github: GitHubSandbox) -> None:
    config = NotifyConfig(routes=(GitHubIssueConfig("issues", REPO),))
    (route,) = build_routes(config, _session(), ApiStats())
    assert isinstance(route, GitHubIssueRoute) and route.api_url == github.api_url


@pytest.mark.parametrize(("config", "env", "message"), [
    (GitHubIssueConfig("github_issue", REPO), {"GITHUB_TOKEN": " "},
     "notification route github_issue: the GitHub token comes from GITHUB_TOKEN, which is not set"),
    (GitHubIssueConfig("github_issue"), {"GITHUB_TOKEN": SECRET_TOKEN},
     "notification route github_issue: the repository comes from GITHUB_REPOSITORY, which is not set"),
    (GitHubStatusConfig("commit", REPO), {"GITHUB_TOKEN": SECRET_TOKEN},
     "notification route commit: the commit SHA comes from GITHUB_SHA, which is not set"),
    (SlackConfig("slack", "HOOK_URL"), {"SLACK_WEBHOOK_URL": "https://hooks.example/s3cr3t"},
     "notification route slack: the webhook URL comes from HOOK_URL, which is not set"),
    (SlackConfig("slack"), {"SLACK_WEBHOOK_URL": "hooks.example/s3cr3t"},
     "notification route slack: the webhook URL is not an http(s) URL"),
])
def test_build_routes_names_the_missing_variable_never_a_secret(config: SlackConfig | GitHubIssueConfig
                                                                | GitHubStatusConfig, env: dict[str, str],
                                                                message: str) -> None:
    with pytest.raises(InputError) as caught:
        build_routes(NotifyConfig(routes=(config,)), _session(), ApiStats(), env)
    assert str(caught.value) == message
    _assert_no_secret(str(caught.value), SECRET_TOKEN, "s3cr3t")

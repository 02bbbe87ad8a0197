"""Property: a credential of any shape, planted in any free-text field the tools read, reaches no egress.

Fields: signal messages and evidence (service events, stopped reasons, rollout reasons), the incident title,
GitHub run names, describe_resource's events and rollout reason. Egresses: the model's prompt and tool
results, notifications (text, Markdown, Slack, SNS), the escalation, journal entries as stored, the postmortem.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from guard.actions import ActionContext, make_action
from guard.agent.llm import tool_result_content
from guard.gateways.aws import AwsSession, AwsSettings
from guard.journal import EntryKind, Journal
from guard.models import Cause, Incident, Severity, Signal
from guard.notify.messages import (
    Notification,
    NotificationKind,
    render_markdown,
    render_text,
    slack_payload,
    sns_subject,
)
from guard.notify.routes import StdoutRoute
from guard.postmortem import render_postmortem
from guard.redact import scrub
from guard.state import LocalStore
from tests.support.remedyrun import Pager

PROPERTY = settings(max_examples=60, deadline=None, database=None)
MARK = "CANARY"
_BODY = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789", min_size=12, max_size=24)


def _shapes(body: str) -> list[str]:
    """One credential of every shape the redactor covers, each carrying MARK + body."""
    secret = (MARK + "ab" + body + "Zz9" * 14)[:40]
    return [
        f"AKIA{MARK}{body.upper()[:10]:0<10}",
        secret,
        *(f"{prefix}{MARK}{body}" for prefix in ("ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_11AB_")),
        f"xoxb-1234-{MARK}{body}",
        f"https://hooks.slack.com/services/T0/B0/{MARK}{body}",
        f"sk-ant-api03-{MARK}{body}",
        f"Authorization: Bearer {MARK}{body}",
        f"Authorization: Basic {MARK}{body}=",
        f"https://deploy:{MARK}{body}@git.example.com/org/repo.git",
        f"-----BEGIN RSA PRIVATE KEY-----\nMIIEow{MARK}{body}\n-----END RSA PRIVATE KEY-----",
        f"eyJhbGciOiJIUzI1NiJ9.eyJ{MARK}{body}.SflKxwRJSMeKKF2QT4fw",
        f"password={MARK}{body}",
        f'{{"api_key": "{MARK}{body}"}}',
        f"client_secret: {MARK}{body}",
        f"GITHUB_TOKEN={MARK}{body}",
    ]


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, ...]:
    """A few credentials (any shapes) wrapped in prose, one per free-text field."""
    body = draw(_BODY)
    shapes = _shapes(body)
    chosen = draw(st.lists(st.sampled_from(shapes), min_size=6, max_size=6))
    words = st.sampled_from(["CannotPullContainerError:", "deploy failed", "(service api)", "run", "see", "ok"])
    return tuple(f"{draw(words)} {shape} {draw(words)}" for shape in chosen)


def _incident(fields: tuple[str, ...]) -> Incident:
    event, stopped, reason, title, _, _ = fields
    signal = Signal("ECS101", Severity.ERROR, "ecs:prod/api", Cause.MISSING_IMAGE, "1.dkr.ecr.us-east-1.amazonaws.com"
                    "/api:e4f0a31", f"tasks fail to start: {stopped}", "2026-11-23T03:00:00+00:00",
                    {"stopped_reason": stopped, "events": [event], "rollout": reason})
    return Incident("INC-0123456789ab", Severity.ERROR, Cause.MISSING_IMAGE, signal.cause_key, title,
                    ("ecs:prod/api",), (signal,), "2026-11-23T03:00:00+00:00", "2026-11-23T03:05:00+00:00")


def _clean(where: str, value: Any) -> None:
    blob = value if isinstance(value, str) else json.dumps(value, default=str)
    assert MARK not in blob, f"{where} leaks: ...{blob[max(0, blob.find(MARK) - 120):][:240]}"


@PROPERTY
@given(planted())
def test_no_planted_credential_reaches_the_model(fields: tuple[str, ...]) -> None:
    incident = _incident(fields)
    event, stopped, reason, title, run_name, _ = fields
    described = {"task_definition": "arn:aws:ecs:us-east-1:1:task-definition/api:2", "events": [event, stopped],
                 "deployments": [{"rolloutStateReason": reason, "status": "PRIMARY"}]}
    runs = [{"id": 7, "name": run_name, "sha": "e4f0a31" + "7" * 33, "workflow": ".github/workflows/build.yml"}]
    for name, payload in (("get_incident", incident.to_json()), ("describe_resource", described),
                          ("list_build_runs", runs)):
        _clean(f"{name} tool result", tool_result_content(payload))
    _clean("model prompt", scrub(f"Incident {incident.id} is open: {title}. Triage it and propose a repair."))


@PROPERTY
@given(planted())
def test_no_planted_credential_reaches_a_notification_or_the_escalation(fields: tuple[str, ...]) -> None:
    incident = _incident(fields)
    note = Notification.from_incident(incident, NotificationKind.INCIDENT_OPENED, actions=(fields[4],))
    for name, rendered in (("json", note.to_json()), ("text", render_text(note)), ("markdown", render_markdown(note)),
                           ("slack", slack_payload(note)), ("sns subject", sns_subject(note))):
        _clean(f"notification {name}", rendered)
    pager, out = Pager(), io.StringIO()
    ctx = ActionContext(AwsSession(AwsSettings(max_attempts=1)), routes=[StdoutRoute(out), pager])
    escalate = make_action("escalate", incident_id=incident.id, reason=f"refused: {fields[5]}",
                           incident=json.dumps(incident.to_json()), tried=(f"rollback failed: {fields[4]}",))
    escalate.execute(ctx)
    [sent] = pager.received
    _clean("escalation", sent.to_json())
    _clean("escalation on stdout", out.getvalue())


@PROPERTY
@given(planted())
def test_no_planted_credential_reaches_the_journal_or_the_postmortem(fields: tuple[str, ...]) -> None:
    incident = _incident(fields)
    with TemporaryDirectory() as tmp:
        journal = Journal(LocalStore(Path(tmp)), incident.id)
        journal.append(EntryKind.INCIDENT, incident.to_json(), "actor")
        journal.append(EntryKind.MODEL, {"model": "m", "reasoning": fields[4], "proposals": [], "refused": [
            {"kind": "delete_service", "error": fields[5]}]}, "actor")
        journal.append(EntryKind.DECISION, {"action_id": "a1", "allowed": False, "rule": "unrecorded_target",
                                            "reason": fields[3]}, "actor")
        journal.append(EntryKind.ACTION_FAILED, {"action_id": "a1", "reason": fields[0]}, "actor")
        for path in Path(tmp).rglob("*.json"):
            _clean(f"journal file {path.name}", path.read_text())
        _clean("postmortem", render_postmortem(incident, journal.entries(), generated_at="2026-11-23T04:00:00Z"))

"""Notification messages: what was seen, the evidence, what was done and who must act, and their renderings.

Messages never claim ownership ("acknowledged", "on it"): a human must always read them as a call to act.
Text read from AWS or GitHub passes guard.redact before it is put in a message.
Everything here is pure: building and rendering a message does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from guard.models import Incident, Severity
from guard.redact import scrub

TEST_TITLE = "deploy-guard notification route test"
_MAX_EVIDENCE = 20


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
        if incident.previous:
            summary += f" Recurrence of {incident.previous}, which was resolved."
        targets = ", ".join(incident.resources) or "the affected services"
        return cls(
            kind=kind,
            severity=incident.severity,
            title=scrub(f"{incident.id} {_VERB[kind]}: {incident.title}"),
            summary=scrub(summary),
            evidence=tuple(scrub(e) for e in _incident_evidence(incident)),
            actions=tuple(scrub(a) for a in actions),
            who_must_act=scrub(who_must_act or f"the on-call engineer for {targets}"),
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
    items = [clip(item, 500) for item in dict.fromkeys(items)]
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


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending in "..." when cut."""
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


def _mrkdwn(text: str) -> str:
    """Escape text for Slack mrkdwn (only &, <, > are control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(n: Notification) -> dict[str, Any]:
    """The incoming-webhook body: a `text` fallback and Block Kit blocks within Slack's size limits."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(n.title, 150)}},
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
        {"type": "mrkdwn", "text": clip(_mrkdwn(" | ".join(context)), 2000)}]})
    return {"text": clip(render_text(n), 3000), "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, 3000)}}


def sns_subject(n: Notification) -> str:
    """SNS subjects: ASCII printable, no line breaks, at most 100 characters."""
    raw = f"[{n.severity.value.upper()}] {n.title}"
    ascii_only = "".join(c if 32 <= ord(c) < 127 else " " for c in raw)
    return clip(" ".join(ascii_only.split()), 100) or TEST_TITLE

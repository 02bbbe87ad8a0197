"""Hand the incident to a person, with everything known, through every notification route."""

from __future__ import annotations

import json
from dataclasses import dataclass

from guard.actions import Action, ActionContext, Outcome
from guard.models import Cause, Incident, IncidentStatus, Severity


@dataclass(frozen=True)
class Escalate(Action):
    """Notify humans that automated remediation stopped, why, what was tried, and what they must do.

    `incident` is the stored incident's JSON (cause, resources, evidence, first and last seen): the message
    carries it whole. Delivered only when a notification route accepted it; this process's own output
    (stdout) alone is not delivery.
    """

    incident_id: str
    reason: str
    title_text: str = ""
    resources: tuple[str, ...] = ()
    incident: str = ""
    tried: tuple[str, ...] = ()

    kind = "escalate"
    title = "Escalate to a human"
    always_allowed = True
    counts_toward_cap = False
    iam_actions = frozenset({"sns:Publish"})  # the SNS routes; the others are webhooks and GitHub

    @property
    def resource(self) -> str:
        """`notify:humans` (always allowed: telling people is never the risky part)."""
        return "notify:humans"

    def describe(self) -> str:
        """What is sent."""
        return f"escalate {self.incident_id} to a human: {self.reason}"

    def _incident(self) -> Incident:
        if self.incident:
            from guard.triage import incident_from_json

            return incident_from_json(json.loads(self.incident))
        return Incident(self.incident_id, Severity.ERROR, Cause.UNKNOWN, self.incident_id,
                        self.title_text or self.incident_id, self.resources, (), "", "", IncidentStatus.OPEN)

    def precondition(self, ctx: ActionContext) -> Outcome:
        """Nothing to check."""
        return Outcome(True, "escalation needs no precondition")

    def execute(self, ctx: ActionContext) -> None:
        """Send through every route; a failing route, or no route but stdout taking it, fails the action."""
        from guard.notify.messages import Notification, NotificationKind
        from guard.notify.routes import StdoutRoute, dispatch

        incident = self._incident()
        actions = (*(f"tried: {t}" for t in self.tried), f"automated remediation stopped: {self.reason}")
        note = Notification.from_incident(
            incident, NotificationKind.INCIDENT_UPDATED, actions=actions,
            who_must_act=f"a human on call for {', '.join(incident.resources) or 'the affected services'}: "
                         "decide and act; nothing further will be done automatically")
        own = {r.name for r in ctx.routes if isinstance(r, StdoutRoute)}
        results = dispatch(ctx.routes, note)
        failed = [f"{r.route}: {r.error}" for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"escalation not delivered: {'; '.join(failed)}")
        if not any(r.ok and r.route not in own for r in results):
            raise RuntimeError("escalation not delivered: only this process's output took it, which is not "
                               "delivery; configure a route in [notify]")

    def postcondition(self, ctx: ActionContext) -> Outcome:
        """Delivery was confirmed by `execute` (it raises unless a route accepted it)."""
        return Outcome(True, f"delivered through {len(ctx.routes)} route(s)")

"""Hand the incident to a person, with everything known, through every notification route."""

from __future__ import annotations

from dataclasses import dataclass

from guard.actions import Action, ActionContext, Outcome
from guard.models import Cause, Incident, IncidentStatus, Severity


@dataclass(frozen=True)
class Escalate(Action):
    """Notify humans that automated remediation stopped, why, and what they must do."""

    incident_id: str
    reason: str
    title_text: str = ""
    resources: tuple[str, ...] = ()

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

    def precondition(self, ctx: ActionContext) -> Outcome:
        """Nothing to check."""
        return Outcome(True, "escalation needs no precondition")

    def execute(self, ctx: ActionContext) -> None:
        """Send through every configured route; a route that fails makes the action fail, naming it."""
        from guard.notify.messages import Notification, NotificationKind
        from guard.notify.routes import dispatch

        incident = Incident(self.incident_id, Severity.ERROR, Cause.UNKNOWN, self.incident_id,
                            self.title_text or self.incident_id, self.resources, (), "", "", IncidentStatus.OPEN)
        note = Notification.from_incident(
            incident, NotificationKind.INCIDENT_UPDATED, actions=(f"automated remediation stopped: {self.reason}",),
            who_must_act=f"a human on call for {', '.join(self.resources) or 'the affected services'}: "
                         "decide and act; nothing further will be done automatically")
        failed = [f"{r.route}: {r.error}" for r in dispatch(ctx.routes, note) if not r.ok]
        if failed:
            raise RuntimeError(f"escalation not delivered: {'; '.join(failed)}")

    def postcondition(self, ctx: ActionContext) -> Outcome:
        """Delivery was confirmed by `execute` (it raises when a route fails)."""
        return Outcome(True, f"delivered through {len(ctx.routes)} route(s) and the run's own report")

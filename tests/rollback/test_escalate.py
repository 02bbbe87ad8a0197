"""escalate: a message for humans through every route; a route that fails makes the action fail."""

from __future__ import annotations

import pytest

from guard.actions import make_action
from guard.notify.messages import render_text
from guard.notify.routes import SlackRoute
from guard.sandbox.webhook_server import WebhookSandbox
from tests.support.remedyrun import World, deploy


def test_escalation_reaches_the_webhook_and_fails_loudly_when_it_cannot(world: World) -> None:
    action = make_action("escalate", incident_id="INC-0123456789ab", reason="rollback cannot help",
                         title_text="execution role missing", resources=("ecs:prod/api",))
    with WebhookSandbox() as hook:
        rem = world.remediator()
        rem.ctx.routes = [SlackRoute(hook.url, backoff=0)]
        assert action.precondition(rem.ctx).ok
        action.execute(rem.ctx)
        [message] = hook.received
        assert "INC-0123456789ab" in message["text"] and "rollback cannot help" in message["text"]
        assert "acknowledg" not in message["text"].lower()
        hook.fail_with(404)
        with pytest.raises(RuntimeError, match="not delivered"):
            action.execute(rem.ctx)


def test_stdout_alone_is_not_delivery(world: World) -> None:
    action = make_action("escalate", incident_id="INC-0123456789ab", reason="rollback cannot help",
                         resources=("ecs:prod/api",))
    rem = world.remediator()
    rem.ctx.routes = [route for route in rem.ctx.routes if route.name == "stdout"]
    with pytest.raises(RuntimeError, match="only this process's output took it, which is not delivery"):
        action.execute(rem.ctx)
    assert "INC-0123456789ab" in world.notes.getvalue()  # printed, and said to be undelivered


def test_a_run_whose_escalation_reaches_only_stdout_says_so(world: World) -> None:
    deploy(world, "broken")
    [inc] = world.sweep().incidents
    rem = world.remediator(kill_switch_parameter="/missing/kill-switch")  # unreadable: engaged, so escalate
    rem.ctx.routes = [route for route in rem.ctx.routes if route.name == "stdout"]
    report = rem.run(inc.id, mode=rem.gate.config.mode)
    assert report.status == "escalation_undelivered" and report.exit_code == 1
    assert "not delivery" in report.results[-1].reason


def test_the_escalation_carries_the_stored_incident_and_what_was_tried(world: World) -> None:
    deploy(world, "broken")
    [inc] = world.sweep().incidents
    report = world.remediate(inc, kill_switch_parameter="/missing/kill-switch")
    assert report.status == "escalated"
    [sent] = [n for n in world.pager.received if n.kind == "incident_updated"]
    text = render_text(sent)
    for expected in (inc.cause_key, inc.first_seen, inc.last_seen, "ecs:prod/api", "CannotPullContainerError",
                     "tried: roll prod/api back to api:1: refused: kill_switch", "ParameterNotFound"):
        assert expected in text, (expected, text)

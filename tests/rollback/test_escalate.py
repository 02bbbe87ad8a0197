"""escalate: a message for humans through every route; a route that fails makes the action fail."""

from __future__ import annotations

import pytest

from guard.actions import make_action
from guard.notify.routes import SlackRoute
from guard.sandbox.webhook_server import WebhookSandbox
from tests.support.remedyrun import World


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

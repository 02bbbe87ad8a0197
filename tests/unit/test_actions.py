"""Action traits, and how the policy gate reads them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from guard.actions import Action, action_types, make_action
from guard.config import Allow, Mode, RemediateConfig
from guard.discovery import DiscoveryError, discover
from guard.gateways.aws import AwsSession
from guard.models import Cause, Incident, Severity
from guard.policy import KILL_SWITCH_ENV, STOP_RULES, DecisionRule, PolicyGate
from guard.state import LocalStore


def test_escalation_is_always_allowed_and_not_counted() -> None:
    escalate = action_types()["escalate"]
    assert escalate.always_allowed and not escalate.counts_toward_cap


def test_every_other_action_is_gated_and_counted() -> None:
    others = {kind: cls for kind, cls in action_types().items() if kind != "escalate"}
    assert {"ecs_rollback", "redeploy", "lambda_rollback", "lambda_image_rollback", "rerun_build"} <= set(others)
    for kind, cls in others.items():
        assert cls.counts_toward_cap and not cls.always_allowed, kind


def test_every_action_names_the_iam_actions_it_calls() -> None:
    for kind, cls in action_types().items():
        assert cls.iam_actions, f"{kind} calls AWS but declares no iam_actions"
        for iam_action in cls.iam_actions:
            assert re.fullmatch(r"[a-z0-9-]+:[A-Z][A-Za-z]+", iam_action), (kind, iam_action)
    assert action_types()["ecs_rollback"].iam_actions == {
        "ecs:DescribeServices", "ecs:DescribeTaskDefinition", "ecs:UpdateService", "ecr:BatchGetImage"}
    assert action_types()["escalate"].iam_actions == {"sns:Publish"}


def test_stop_rules_keep_their_journal_values() -> None:
    assert {rule.value for rule in DecisionRule} == {"escalate", "kill_switch", "dry_run", "mode", "allowlist",
                                                     "outside_incident", "unrecorded_target", "build_target",
                                                     "image_target", "no_target_rule", "human_choice", "incident_cap",
                                                     "rate_limit", "allowed"}
    assert {rule.value for rule in STOP_RULES} == {"kill_switch", "allowlist", "outside_incident", "unrecorded_target",
                                                   "build_target", "image_target", "no_target_rule", "incident_cap",
                                                   "rate_limit"}


INCIDENT = Incident("INC-0123456789ab", Severity.ERROR, Cause.ROLLOUT_FAILED, "api:2", "rollout failed",
                    ("ecs:prod/api",), (), "", "")


def _gate(tmp_path: Path) -> PolicyGate:
    config = RemediateConfig(mode=Mode.ACT, allow=(Allow("ecs:prod/*", ("ecs_rollback",)),))
    return PolicyGate(config, LocalStore(tmp_path), AwsSession(), environ={KILL_SWITCH_ENV: "engaged"})


def test_gate_allows_an_always_allowed_action_through_the_kill_switch_and_observe_mode(tmp_path: Path) -> None:
    escalate = make_action("escalate", incident_id="INC-0123456789ab", reason="nothing safe to do")
    decision = _gate(tmp_path).decide(escalate, incident=INCIDENT, mode=Mode.OBSERVE, actions_taken=99, dry_run=True)
    assert decision.allowed and decision.rule is DecisionRule.ALWAYS_ALLOWED
    assert decision.to_json() == {"allowed": True, "rule": "escalate", "reason": "telling people is always allowed"}


def test_gate_refuses_a_normal_action_when_the_kill_switch_is_engaged(tmp_path: Path) -> None:
    rollback = make_action("ecs_rollback", cluster="prod", service="api", task_definition="api:1")
    decision = _gate(tmp_path).decide(rollback, incident=INCIDENT, mode=Mode.ACT, actions_taken=0, dry_run=False)
    assert not decision.allowed and decision.rule is DecisionRule.KILL_SWITCH
    assert decision.rule in STOP_RULES
    rule = decision.to_json()["rule"]
    assert rule == "kill_switch" and type(rule) is str


def test_a_duplicate_action_kind_fails_at_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "twin_actions"
    package.mkdir()
    (package / "__init__.py").write_text("")
    body = ("from __future__ import annotations\nfrom rollback.redeploy import Redeploy\n\n\n"
            "class {name}(Redeploy):\n    kind = 'twin'\n")
    for name in ("First", "Second"):
        (package / f"{name.lower()}.py").write_text(body.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DiscoveryError, match=r"duplicate action kind twin: twin_actions\.\w+\.\w+ and"):
        discover("twin_actions", (Action,), lambda cls: cls.kind, what="action kind")

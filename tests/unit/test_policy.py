"""The policy gate's decisions: kill switch, dry run, mode, allowlist, per-incident cap, hourly rate, in that order."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from guard.actions import Action, make_action
from guard.config import Allow, Mode, RemediateConfig
from guard.gateways.aws import AwsSession, AwsSettings
from guard.policy import KILL_SWITCH_ENV, PolicyGate
from guard.records import RATE_KEY
from guard.sandbox.scenarios import Scenario
from guard.state import LocalStore, read_json

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
ROLLBACK = make_action("ecs_rollback", cluster="prod", service="api",
                       task_definition="arn:aws:ecs:us-east-1:123456789012:task-definition/api:3")
ESCALATE = make_action("escalate", incident_id="INC-0123456789ab", reason="rollback failed")
ALLOW_PROD = (Allow("ecs:prod/*", ("ecs_rollback",)),)


class Clock:
    """A settable clock for the hourly rate."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_gate(tmp_path: Path, *, environ: Mapping[str, str] | None = None, clock: Clock | None = None,
              allow: tuple[Allow, ...] = ALLOW_PROD, **settings: object) -> PolicyGate:
    """A gate over a local store in `tmp_path`; `settings` are RemediateConfig fields."""
    config = RemediateConfig(mode=Mode.ACT, allow=allow, **settings)  # type: ignore[arg-type]
    return PolicyGate(config, LocalStore(tmp_path / "state"), AwsSession(AwsSettings(max_attempts=1)),
                      clock=clock or Clock(), environ=environ or {})


def decide(gate: PolicyGate, action: Action = ROLLBACK, *, mode: Mode = Mode.ACT, taken: int = 0,
           dry_run: bool = False) -> str:
    """The rule that decided, as its string value; asserts `allowed` agrees with it."""
    decision = gate.decide(action, mode=mode, actions_taken=taken, dry_run=dry_run)
    assert decision.allowed == (decision.rule in ("allowed", "escalate")), decision
    assert decision.to_json() == {"allowed": decision.allowed, "rule": str(decision.rule), "reason": decision.reason}
    return str(decision.rule)


# -- the order of the rules ---------------------------------------------------------------------------

ORDER = ("kill_switch", "dry_run", "mode", "allowlist", "incident_cap", "rate_limit")
GRID = list(itertools.product((False, True), (False, True), tuple(Mode), (False, True), (False, True),
                              (False, True)))


def _first_refusal(killed: bool, dry_run: bool, mode: Mode, listed: bool, capped: bool, rate_full: bool) -> str:
    refusals = (killed, dry_run, mode is not Mode.ACT, not listed, capped, rate_full)
    return next((rule for rule, refused in zip(ORDER, refusals, strict=True) if refused), "allowed")


@pytest.mark.parametrize(("killed", "dry_run", "mode", "listed", "capped", "rate_full"), GRID,
                         ids=["-".join(str(v) for v in case) for case in GRID])
def test_the_first_refusal_in_the_fixed_order_decides(tmp_path: Path, killed: bool, dry_run: bool, mode: Mode,
                                                      listed: bool, capped: bool, rate_full: bool) -> None:
    gate = make_gate(tmp_path, environ={KILL_SWITCH_ENV: "1"} if killed else {},
                     allow=ALLOW_PROD if listed else (), max_actions_per_incident=2, max_actions_per_hour=2)
    for _ in range(2 if rate_full else 1):
        gate.record_action()
    rule = decide(gate, mode=mode, taken=2 if capped else 1, dry_run=dry_run)
    assert rule == _first_refusal(killed, dry_run, mode, listed, capped, rate_full)


def test_escalation_passes_every_rule(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, environ={KILL_SWITCH_ENV: "on"}, allow=(), max_actions_per_incident=1,
                     max_actions_per_hour=1)
    gate.record_action()
    for mode in Mode:
        assert decide(gate, ESCALATE, mode=mode, taken=5, dry_run=True) == "escalate"


# -- kill switch: environment -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "on", " yes ", "engaged", "Stop"])
def test_kill_switch_variable_engaged(tmp_path: Path, value: str) -> None:
    gate = make_gate(tmp_path, environ={KILL_SWITCH_ENV: value})
    assert gate.kill_switch() == f"environment variable {KILL_SWITCH_ENV}"
    decision = gate.decide(ROLLBACK, mode=Mode.ACT, actions_taken=0, dry_run=False)
    assert decision.rule == "kill_switch" and not decision.allowed
    assert decision.reason == f"kill switch engaged (environment variable {KILL_SWITCH_ENV})"


@pytest.mark.parametrize("value", ["", "0", "false", "off", "no", "disengaged", "maybe"])
def test_kill_switch_variable_not_engaged(tmp_path: Path, value: str) -> None:
    gate = make_gate(tmp_path, environ={KILL_SWITCH_ENV: value})
    assert gate.kill_switch() is None
    assert decide(gate) == "allowed"


def test_kill_switch_reads_the_injected_environ_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KILL_SWITCH_ENV, "1")
    assert make_gate(tmp_path).kill_switch() is None


# -- dry run and modes --------------------------------------------------------------------------------


def test_dry_run_says_what_it_would_do(tmp_path: Path) -> None:
    decision = make_gate(tmp_path).decide(ROLLBACK, mode=Mode.ACT, actions_taken=0, dry_run=True)
    assert (decision.allowed, decision.rule) == (False, "dry_run")
    assert decision.reason == f"dry run: would {ROLLBACK.describe()}"


@pytest.mark.parametrize(("mode", "reason"), [
    (Mode.OBSERVE, "observe mode: actions are reported, never taken"),
    (Mode.PROPOSE, "propose mode: posted for approval (run again with --mode act)"),
])
def test_observe_and_propose_never_act(tmp_path: Path, mode: Mode, reason: str) -> None:
    decision = make_gate(tmp_path).decide(ROLLBACK, mode=mode, actions_taken=0, dry_run=False)
    assert (decision.allowed, decision.rule, decision.reason) == (False, "mode", reason)


def test_the_mode_argument_decides_not_the_configured_mode(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    assert gate.config.mode is Mode.ACT
    assert decide(gate, mode=Mode.OBSERVE) == "mode"


# -- allowlist ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("allow", "allowed"), [
    pytest.param((Allow("ecs:prod/api", ("ecs_rollback",)),), True, id="exact"),
    pytest.param((Allow("ecs:prod/*", ("ecs_rollback",)),), True, id="star"),
    pytest.param((Allow("ecs:*/api", ("ecs_rollback",)),), True, id="star-cluster"),
    pytest.param((Allow("ecs:prod/ap?", ("ecs_rollback",)),), True, id="question-mark"),
    pytest.param((Allow("ecs:prod/[ab]pi", ("ecs_rollback",)),), True, id="character-class"),
    pytest.param((Allow("*", ("ecs_rollback", "redeploy")),), True, id="everything"),
    pytest.param((Allow("ecs:staging/*", ("ecs_rollback",)),), False, id="other-cluster"),
    pytest.param((Allow("ecs:prod", ("ecs_rollback",)),), False, id="no-prefix-match"),
    pytest.param((Allow("ECS:PROD/*", ("ecs_rollback",)),), False, id="case-sensitive"),
    pytest.param((Allow("ecs:prod/*", ("redeploy", "lambda_rollback")),), False, id="other-kind"),
    pytest.param((Allow("ecs:prod/*", ()),), False, id="no-kind"),
    pytest.param((), False, id="empty"),
    pytest.param((Allow("ecs:prod/*", ("redeploy",)), Allow("ecs:staging/*", ("ecs_rollback",))), False,
                 id="resource-and-kind-from-different-entries"),
    pytest.param((Allow("ecs:staging/*", ("ecs_rollback",)), Allow("ecs:prod/*", ("ecs_rollback",))), True,
                 id="second-entry"),
])
def test_allowlist_patterns(tmp_path: Path, allow: tuple[Allow, ...], allowed: bool) -> None:
    decision = make_gate(tmp_path, allow=allow).decide(ROLLBACK, mode=Mode.ACT, actions_taken=0, dry_run=False)
    assert decision.allowed is allowed
    if allowed:
        assert (decision.rule, decision.reason) == ("allowed", "ecs_rollback on ecs:prod/api is allowed in act mode")
    else:
        assert (decision.rule, decision.reason) == ("allowlist",
                                                    "ecs_rollback on ecs:prod/api is not in [[remediate.allow]]")


# -- per-incident cap ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("taken", "rule"), [(0, "allowed"), (2, "allowed"), (3, "incident_cap"),
                                             (7, "incident_cap")])
def test_per_incident_cap(tmp_path: Path, taken: int, rule: str) -> None:
    decision = make_gate(tmp_path, max_actions_per_incident=3).decide(ROLLBACK, mode=Mode.ACT, actions_taken=taken,
                                                                       dry_run=False)
    assert decision.rule == rule
    if rule == "incident_cap":
        assert decision.reason == f"{taken} action(s) already taken on this incident (cap 3)"


# -- hourly rate --------------------------------------------------------------------------------------


def test_hourly_rate_counts_actions_of_the_last_hour(tmp_path: Path) -> None:
    clock = Clock()
    gate = make_gate(tmp_path, clock=clock, max_actions_per_hour=2)
    gate.record_action()
    clock.now = T0 + timedelta(minutes=10)
    assert decide(gate) == "allowed"
    gate.record_action()
    clock.now = T0 + timedelta(minutes=59, seconds=59)
    decision = gate.decide(ROLLBACK, mode=Mode.ACT, actions_taken=0, dry_run=False)
    assert (decision.rule, decision.reason) == ("rate_limit", "2 action(s) in the last hour")
    clock.now = T0 + timedelta(hours=1)  # the first action is exactly an hour old: no longer counted
    assert decide(gate) == "allowed"
    clock.now = T0 + timedelta(hours=1, minutes=10)
    assert decide(gate) == "allowed"


def test_deciding_does_not_count_towards_the_rate(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, max_actions_per_hour=1)
    assert [decide(gate) for _ in range(3)] == ["allowed"] * 3
    assert read_json(gate.store, RATE_KEY) == (None, None)


def test_the_rate_is_shared_by_every_gate_on_one_store(tmp_path: Path) -> None:
    clock = Clock()
    first = make_gate(tmp_path, clock=clock, max_actions_per_hour=2)
    second = make_gate(tmp_path, clock=clock, max_actions_per_hour=2)
    first.record_action()
    second.record_action()
    assert decide(first) == decide(second) == "rate_limit"


def test_recording_forgets_actions_older_than_an_hour(tmp_path: Path) -> None:
    clock = Clock()
    gate = make_gate(tmp_path, clock=clock)
    gate.record_action()
    clock.now = T0 + timedelta(minutes=30)
    gate.record_action()
    clock.now = T0 + timedelta(hours=2)
    gate.record_action()
    doc, _ = read_json(gate.store, RATE_KEY)
    assert doc == {"actions": [(T0 + timedelta(hours=2)).isoformat()]}


# -- kill switch: SSM parameter and S3 object (sandbox) -----------------------------------------------

PARAMETER = "/deploy-guard/kill-switch"
OBJECT = "s3://guard-ops/kill-switch"


def _remote_gate(tmp_path: Path, environ: Mapping[str, str] | None = None) -> PolicyGate:
    return make_gate(tmp_path, environ=environ, kill_switch_parameter=PARAMETER, kill_switch_object=OBJECT)


def test_remote_kill_switches_absent_are_not_engaged(aws: Scenario, tmp_path: Path) -> None:
    aws.client("s3").create_bucket(Bucket="guard-ops")
    gate = _remote_gate(tmp_path)
    assert gate.kill_switch() is None
    assert decide(gate) == "allowed"
    assert gate.aws.stats.calls == {"ssm:GetParameter": 2, "s3:HeadObject": 2}


@pytest.mark.parametrize(("value", "engaged"), [("on", True), (" TRUE ", True), ("stop", True), ("off", False),
                                                ("0", False)])
def test_kill_switch_parameter(aws: Scenario, tmp_path: Path, value: str, engaged: bool) -> None:
    aws.client("ssm").put_parameter(Name=PARAMETER, Value=value, Type="String")
    gate = make_gate(tmp_path, kill_switch_parameter=PARAMETER)
    assert gate.kill_switch() == (f"SSM parameter {PARAMETER}" if engaged else None)
    assert decide(gate) == ("kill_switch" if engaged else "allowed")


def test_kill_switch_object_engaged_by_its_presence(aws: Scenario, tmp_path: Path) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="guard-ops")
    s3.put_object(Bucket="guard-ops", Key="kill-switch", Body=b"")
    gate = make_gate(tmp_path, kill_switch_object=OBJECT)
    assert gate.kill_switch() == f"object {OBJECT}"
    assert decide(gate) == "kill_switch"


def test_the_environment_is_read_first(aws: Scenario, tmp_path: Path) -> None:
    gate = _remote_gate(tmp_path, environ={KILL_SWITCH_ENV: "1"})
    assert gate.kill_switch() == f"environment variable {KILL_SWITCH_ENV}"
    assert gate.aws.stats.total_calls == 0


def test_unreadable_remote_kill_switches_count_as_engaged(aws: Scenario, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    parameter = make_gate(tmp_path, kill_switch_parameter=PARAMETER)
    assert parameter.kill_switch() == f"SSM parameter {PARAMETER} unreadable (Unreachable)"
    assert decide(parameter) == "kill_switch"
    obj = make_gate(tmp_path, kill_switch_object=OBJECT)
    assert obj.kill_switch() == f"object {OBJECT} unreadable (Unreachable)"
    assert decide(obj) == "kill_switch"

"""The policy gate's decisions: kill switch, dry run, mode, allowlist, per-incident cap, hourly rate, in that order."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from guard.actions import Action, make_action
from guard.config import Allow, Mode, RemediateConfig
from guard.gateways.aws import AwsSession, AwsSettings
from guard.models import Cause, Incident, Severity
from guard.policy import KILL_SWITCH_ENV, PolicyGate
from guard.records import RATE_KEY, FunctionRecord, ServiceRecord, remember_known_good
from guard.sandbox.scenarios import Scenario
from guard.state import LocalStore, read_json

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
ROLLBACK = make_action("ecs_rollback", cluster="prod", service="api",
                       task_definition="arn:aws:ecs:us-east-1:123456789012:task-definition/api:3")
ESCALATE = make_action("escalate", incident_id="INC-0123456789ab", reason="rollback failed")
ALLOW_PROD = (Allow("ecs:prod/*", ("ecs_rollback",)),)
DIGEST = "sha256:" + "3f2c1a9e" * 8
INCIDENT = Incident("INC-0123456789ab", Severity.ERROR, Cause.MISSING_IMAGE, "1.dkr.ecr.us-east-1.amazonaws.com/a:b",
                    "tasks fail to start", ("ecs:prod/api",), (), "", "")


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
    store = LocalStore(tmp_path / "state")
    remember_known_good(store, {("prod", "api"): ServiceRecord(str(ROLLBACK.params["task_definition"]))}, {})
    return PolicyGate(config, store, AwsSession(AwsSettings(max_attempts=1)), clock=clock or Clock(),
                      environ=environ or {})


def decide(gate: PolicyGate, action: Action = ROLLBACK, *, mode: Mode = Mode.ACT, taken: int = 0,
           dry_run: bool = False) -> str:
    """The rule that decided, as its string value; asserts `allowed` agrees with it."""
    decision = gate.decide(action, incident=INCIDENT, mode=mode, actions_taken=taken, dry_run=dry_run)
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
    decision = gate.decide(ROLLBACK, incident=INCIDENT, mode=Mode.ACT, actions_taken=0, dry_run=False)
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
    gate = make_gate(tmp_path)
    decision = gate.decide(ROLLBACK, incident=INCIDENT, mode=Mode.ACT, actions_taken=0, dry_run=True)
    assert (decision.allowed, decision.rule) == (False, "dry_run")
    assert decision.reason == f"dry run: {ROLLBACK.describe()}: would act: ecs_rollback on ecs:prod/api is allowed " \
        "in act mode"
    refused = gate.decide(ROLLBACK, incident=INCIDENT, mode=Mode.ACT, actions_taken=3, dry_run=True)
    assert refused.reason.startswith(f"dry run: {ROLLBACK.describe()}: would be refused (incident_cap): 3 action")


@pytest.mark.parametrize(("mode", "reason"), [
    (Mode.OBSERVE, "observe mode: actions are reported, never taken"),
    (Mode.PROPOSE, "propose mode: posted for approval (run again with --mode act)"),
])
def test_observe_and_propose_never_act(tmp_path: Path, mode: Mode, reason: str) -> None:
    decision = make_gate(tmp_path).decide(ROLLBACK, incident=INCIDENT, mode=mode, actions_taken=0, dry_run=False)
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
    decision = make_gate(tmp_path, allow=allow).decide(ROLLBACK, incident=INCIDENT, mode=Mode.ACT, actions_taken=0,
                                                       dry_run=False)
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
    decision = make_gate(tmp_path, max_actions_per_incident=3).decide(ROLLBACK, incident=INCIDENT, mode=Mode.ACT,
                                                                       actions_taken=taken, dry_run=False)
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
    decision = gate.decide(ROLLBACK, incident=INCIDENT, mode=Mode.ACT, actions_taken=0, dry_run=False)
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


def test_an_absent_object_in_a_readable_bucket_is_off(aws: Scenario, tmp_path: Path) -> None:
    aws.client("s3").create_bucket(Bucket="guard-ops")
    aws.client("ssm").put_parameter(Name=PARAMETER, Value="off", Type="String")
    gate = _remote_gate(tmp_path)
    assert gate.kill_switch() is None
    assert decide(gate) == "allowed"
    assert gate.aws.stats.calls == {"ssm:GetParameter": 2, "s3:GetObject": 2}


def test_a_missing_parameter_or_bucket_counts_as_engaged(aws: Scenario, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    parameter = make_gate(tmp_path, kill_switch_parameter=PARAMETER)
    assert parameter.kill_switch() == f"SSM parameter {PARAMETER} unreadable (ParameterNotFound): counted as engaged"
    assert decide(parameter) == "kill_switch"
    bucket = make_gate(tmp_path, kill_switch_object=OBJECT)
    assert bucket.kill_switch() == f"object {OBJECT} unreadable (NoSuchBucket): counted as engaged"
    assert decide(bucket) == "kill_switch"
    assert any("counted as engaged" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


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
    assert parameter.kill_switch() == f"SSM parameter {PARAMETER} unreadable (Unreachable): counted as engaged"
    assert decide(parameter) == "kill_switch"
    obj = make_gate(tmp_path, kill_switch_object=OBJECT)
    assert obj.kill_switch() == f"object {OBJECT} unreadable (Unreachable): counted as engaged"
    assert decide(obj) == "kill_switch"


# -- targets: what the action leaves behind -----------------------------------------------------------


def _rule(gate: PolicyGate, action: Action, incident: Incident = INCIDENT) -> str:
    return str(gate.decide(action, incident=incident, mode=Mode.ACT, actions_taken=0, dry_run=False).rule)


def test_an_ecs_rollback_only_to_a_revision_recorded_for_that_service(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, allow=(Allow("*", ("ecs_rollback",)),))
    arn = str(ROLLBACK.params["task_definition"])
    assert _rule(gate, ROLLBACK) == "allowed"
    for target in (arn.replace("api:3", "api:4"), "api:3"):  # unrecorded; a short name is not the recorded ARN
        assert _rule(gate, make_action("ecs_rollback", cluster="prod", service="api", task_definition=target)) \
            == "unrecorded_target"
    other = make_action("ecs_rollback", cluster="prod", service="worker", task_definition=arn)
    assert _rule(gate, other) == "outside_incident"


def test_history_keeps_every_revision_recorded_healthy(tmp_path: Path) -> None:
    gate = make_gate(tmp_path)
    newer = str(ROLLBACK.params["task_definition"]).replace("api:3", "api:5")
    remember_known_good(gate.store, {("prod", "api"): ServiceRecord(newer)}, {})
    assert _rule(gate, ROLLBACK) == "allowed"  # still recorded, though no longer the last
    assert _rule(gate, make_action("ecs_rollback", cluster="prod", service="api", task_definition=newer)) == "allowed"


def test_a_lambda_rollback_only_to_code_recorded_for_that_function(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, allow=(Allow("lambda:*", ("lambda_rollback", "lambda_image_rollback")),))
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fn"
    remember_known_good(gate.store, {}, {"fn": FunctionRecord(f"{image}:v1", DIGEST, "c0de", "4")})
    incident = replace(INCIDENT, resources=("lambda:fn",))
    for action, rule in (
            (make_action("lambda_rollback", function="fn", alias="live", version="4", code_sha256="c0de"), "allowed"),
            (make_action("lambda_rollback", function="fn", alias="live", version="4"), "unrecorded_target"),
            (make_action("lambda_rollback", function="fn", alias="live", version="3", code_sha256="bad"),
             "unrecorded_target"),
            (make_action("lambda_image_rollback", function="fn", image_uri=f"{image}@{DIGEST}"), "allowed"),
            (make_action("lambda_image_rollback", function="fn", image_uri=f"{image}:v1"), "unrecorded_target"),
            (make_action("lambda_image_rollback", function="fn", image_uri=f"{image}-other@{DIGEST}"),
             "unrecorded_target")):
        assert _rule(gate, action, incident) == rule, action


def test_a_build_rerun_only_in_the_configured_repository_for_the_missing_image(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, allow=(Allow("github:*", ("rerun_build",)),), build_repository="acme/shop")
    missing = (INCIDENT.cause_key,)
    assert _rule(gate, make_action("rerun_build", repository="evil/fork", run_id=1, images=missing)) == "build_target"
    other_image = make_action("rerun_build", repository="acme/shop", run_id=1, images=("x.dkr.ecr/a:b",))
    assert _rule(gate, other_image) == "build_target"
    no_github = make_action("rerun_build", repository="acme/shop", run_id=1, images=missing)
    assert gate.decide(no_github, incident=INCIDENT, mode=Mode.ACT, actions_taken=0, dry_run=False).reason == \
        "no GitHub access to verify the build run"

"""Hostile input at every door: config, Lambda events, `guard check` files, GitHub and Anthropic response bodies.

Whatever arrives, the product answers with its own error types (InputError / exit 2, GatewayError, a clear
anthropic.APIError) or a safe result (an escalation), never with an AttributeError, KeyError or TypeError
escaping from deep inside. The plan/task-definition parsers are fuzzed in test_plan_fuzz.py, not here.
Cases where the product once let a foreign exception escape stay here as regression cases.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guard.gate
import guard.lambda_handler as lambda_handler
import guard.plan.terraform
from guard.agent.llm import LlmPlanner
from guard.agent.playbook import PlanContext, Strategy
from guard.cli import main
from guard.config import (
    GuardConfig,
    Mode,
    NotifyConfig,
    RemediateConfig,
    SlackConfig,
    load_config,
    parse_config,
    parse_notify_config,
    parse_remediate_config,
)
from guard.errors import GatewayError
from guard.gateways.aws import AwsSession
from guard.gateways.github import PyGithubGateway, WorkflowRun
from guard.gateways.stats import ApiStats
from guard.journal import EntryKind, Journal
from guard.lambda_handler import Trigger, parse_trigger
from guard.models import Cause, Incident, InputError, Severity
from guard.state import LocalStore

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


# ---- strategies ---------------------------------------------------------------------------------------------

# Values from the vocabulary the parsers look for, so near-misses reach the deep code paths.
WORDS = st.sampled_from([
    "error", "warning", "info", "observe", "propose", "act", "yolo", "slack", "sns", "github_issue",
    "github_status", "http://[::1", "http://127.0.0.1:8/hook", "https://hooks.slack.com/services/T/B/X", "http://",
    "ftp://x", "", " ", "s3://", "s3://b", "s3://b/k", "dynamodb://t", "arn:aws:sns:us-east-1:123456789012:t",
    "arn:aws:iam::222222222222:role/r", "acme/shop", "a/b/c", "0" * 40, "ecs_rollback", "redeploy", "rerun_build",
    "lambda_rollback", "escalate", "delete_service", "ecs:prod/*", "SLACK_WEBHOOK_URL", "1BAD", "222222222222",
    "\x00", "\u202e", "\U0001f600", "build.yml", "IMG001", "claude-sonnet-4-6", ".guard/state",
])
KEYS = st.sampled_from([
    "fail_on", "severity", "disabled", "build_workflows", "accounts", "parity", "watch", "notify", "remediate",
    "replace", "ignore", "clusters", "services", "functions", "state", "lookback_minutes", "interval_seconds",
    "heartbeat", "routes", "type", "name", "url", "url_env", "topic_arn", "repository", "labels", "sha", "context",
    "mode", "allow", "resource", "actions", "token_budget", "max_turns", "kill_switch_object", "model", "tool",
    "guard",
])
INTS = st.integers(-(10**30), 10**30) | st.sampled_from([0, -1, 1, 3, 2**31, 2**63, 10**9, 10**9 + 1, 10**12])
SCALARS = st.none() | st.booleans() | INTS | st.floats() | st.text(max_size=16) | WORDS
VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), c,
                                                                                     max_size=4), max_leaves=20)


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a well-formed value, sometimes anything in its place."""
    return st.integers(0, 4).flatmap(lambda n: VALUES if n == 0 else good)


def table(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A table whose every key is optional and whose values are mostly well formed."""
    return st.fixed_dictionaries({}, optional={k.replace("__", "-"): mostly(v) for k, v in fields.items()})


STRS = st.lists(WORDS | st.text(max_size=8), max_size=3)
POSITIVE = st.integers(1, 100) | INTS
ROUTE = table(type=st.sampled_from(["slack", "sns", "github_issue", "github_status"]), name=WORDS, url=WORDS,
              url_env=WORDS, topic_arn=WORDS, repository=WORDS, labels=STRS, sha=WORDS, context=WORDS)
NOTIFY = table(heartbeat=st.booleans(), routes=st.lists(mostly(ROUTE), max_size=3))
REMEDIATE = table(
    mode=WORDS, allow=st.lists(mostly(st.fixed_dictionaries({"resource": mostly(WORDS), "actions": mostly(STRS)})),
                               max_size=2),
    max_actions_per_incident=POSITIVE, max_actions_per_hour=POSITIVE, token_budget=POSITIVE, max_turns=POSITIVE,
    lock_ttl_seconds=POSITIVE, wait_timeout_seconds=POSITIVE, poll_seconds=POSITIVE, kill_switch_parameter=WORDS,
    kill_switch_object=WORDS, model=WORDS, build_repository=WORDS, build_workflow=WORDS, lambda_alias=WORDS)
WATCH = table(clusters=STRS, services=STRS, functions=STRS, state=WORDS, lookback_minutes=POSITIVE,
              stall_after_minutes=POSITIVE, below_desired_grace_minutes=POSITIVE, crash_threshold=POSITIVE,
              interval_seconds=POSITIVE, lifecycle_warn_days=POSITIVE, lifecycle_warn_pushes=POSITIVE,
              lifecycle_error_days=POSITIVE, lifecycle_error_pushes=POSITIVE)
GUARD = table(
    fail_on=WORDS, severity=st.dictionaries(WORDS | st.text(max_size=8), mostly(WORDS), max_size=3),
    disabled=STRS, build_workflows=STRS, accounts=st.dictionaries(WORDS | st.text(max_size=12), WORDS, max_size=2),
    parity=table(replace=st.lists(mostly(st.lists(WORDS, min_size=2, max_size=2)), max_size=2), ignore=STRS),
    watch=WATCH, notify=NOTIFY, remediate=REMEDIATE,
)
CONFIGS = GUARD | st.dictionaries(KEYS | st.text(max_size=8), VALUES, max_size=5)


# ---- a small TOML writer (enough for hypothesis' values: inline tables, mixed arrays, any string) ------------


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml_str(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"


def to_toml(doc: Mapping[str, Any]) -> str:
    """TOML for a JSON-like dict (None values are dropped: TOML has no null)."""
    return "".join(f"{_toml_str(k)} = {_toml_value(v)}\n" for k, v in doc.items() if v is not None)


# ---- 1. configuration ---------------------------------------------------------------------------------------


def _assert_usable(config: GuardConfig) -> None:
    """An accepted config must not blow up later: every duration fits a timedelta and a date around now."""
    wc, rc = config.watch, config.remediate
    for minutes in (wc.lookback_minutes, wc.stall_after_minutes, wc.below_desired_grace_minutes):
        assert NOW - timedelta(minutes=minutes) < NOW < NOW + timedelta(minutes=minutes)
    for seconds in (wc.interval_seconds, rc.lock_ttl_seconds, rc.wait_timeout_seconds, rc.poll_seconds):
        assert NOW + timedelta(seconds=seconds) > NOW
    assert isinstance(config.remediate.mode, Mode) and isinstance(config.notify, NotifyConfig)
    for route in config.notify.routes:
        if isinstance(route, SlackConfig) and route.url is not None:
            assert route.url.startswith(("http://", "https://"))
    if rc.kill_switch_object is not None:
        bucket, _, key = rc.kill_switch_object.removeprefix("s3://").partition("/")
        assert rc.kill_switch_object.startswith("s3://") and bucket and key


def _config_or_input_error(parse: Callable[[], Any]) -> Any:
    try:
        result = parse()
    except InputError as exc:
        assert str(exc)
        return None
    return result


@FUZZ
@given(doc=CONFIGS)
def test_parse_config_returns_a_config_or_input_error(doc: dict[str, Any]) -> None:
    config = _config_or_input_error(lambda: parse_config(doc, "x"))
    if config is not None:
        assert isinstance(config, GuardConfig)
        _assert_usable(config)


@FUZZ
@given(doc=CONFIGS, in_pyproject=st.booleans())
def test_load_config_of_any_toml_document(doc: dict[str, Any], in_pyproject: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        name, text = ("pyproject.toml", to_toml({"tool": {"guard": doc}})) if in_pyproject else \
            ("guard.toml", to_toml(doc))
        (Path(tmp) / name).write_text(text, encoding="utf-8")
        config = _config_or_input_error(lambda: load_config(cwd=Path(tmp)))
    if config is not None:
        assert isinstance(config, GuardConfig)
        _assert_usable(config)


@settings(FUZZ, max_examples=100)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_load_config_of_any_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "guard.toml").write_bytes(raw)
        config = _config_or_input_error(lambda: load_config(cwd=Path(tmp)))
    assert config is None or isinstance(config, GuardConfig)


@settings(FUZZ, max_examples=100)
@given(doc=NOTIFY | st.dictionaries(KEYS, VALUES, max_size=3))
def test_parse_notify_config_returns_a_config_or_input_error(doc: dict[str, Any]) -> None:
    config = _config_or_input_error(lambda: parse_notify_config(doc, "x"))
    assert config is None or isinstance(config, NotifyConfig)


@settings(FUZZ, max_examples=100)
@given(doc=REMEDIATE | st.dictionaries(KEYS, VALUES, max_size=3))
def test_parse_remediate_config_returns_a_config_or_input_error(doc: dict[str, Any]) -> None:
    config = _config_or_input_error(lambda: parse_remediate_config(doc, "x"))
    if config is not None:
        assert isinstance(config, RemediateConfig)
        _assert_usable(GuardConfig(remediate=config))


# Regressions found by the properties above (each escaped as a foreign exception before the fix).
CONFIG_TEXTS = {
    "tool-not-a-table": "tool = 1\n",
    "deep-nesting": "a = " + "[" * 5000 + "]" * 5000 + "\n",
    "int-over-digit-limit": "[watch]\nlookback_minutes = 1" + "0" * 5000 + "\n",
    "int-overflowing-timedelta": "[watch]\nlookback_minutes = 1000000000000000000000\n",
    "slack-url-bad-ipv6": '[[notify.routes]]\ntype = "slack"\nurl = "http://[::1/services/CANARY"\n',
    "kill-switch-no-bucket": '[remediate]\nkill_switch_object = "s3://"\n',
    "invalid-utf8": b"fail_on = \"\xff\xfe\"\n",
}


@pytest.mark.parametrize("text", CONFIG_TEXTS.values(), ids=CONFIG_TEXTS.keys())
def test_hostile_config_files_are_input_errors(text: str | bytes, tmp_path: Path) -> None:
    path = tmp_path / "guard.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputError) as caught:
        load_config(cwd=tmp_path)
    assert "CANARY" not in str(caught.value)  # a webhook URL is a secret: never echoed


def test_pyproject_whose_tool_is_not_a_table_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('tool = "guard"\n')
    with pytest.raises(InputError, match=r"\[tool\] must be a table"):
        load_config(cwd=tmp_path)


# ---- 2. Lambda events ---------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3), max_leaves=15)


def _near(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 4).flatmap(lambda n: JSON_VALUES if n == 0 else good)


SHARDISH = st.fixed_dictionaries({}, optional={
    "account": _near(st.sampled_from(["210987654321", "123456789012", "1", "../../etc", "21098765432a", ""])),
    "region": _near(st.sampled_from(["eu-west-1", "us-gov-west-1", "cn-north-1", "x y", "../..", "", "EU-WEST-1"])),
    "role_arn": _near(st.sampled_from([None, "arn:aws:iam::210987654321:role/r", "role/r", ""])),
})
DETAIL = st.fixed_dictionaries({}, optional={
    "lastStatus": _near(st.sampled_from(["STOPPED", "RUNNING", "stopped"])),
    "group": _near(st.sampled_from(["service:api", "service:", "family:api", ""])),
    "clusterArn": _near(st.sampled_from(["arn:aws:ecs:us-east-1:123456789012:cluster/prod", "prod", "", "/"])),
    "stopCode": _near(st.sampled_from(["TaskFailedToStart", "EssentialContainerExited", "UserInitiated"])),
    "stoppedReason": _near(st.sampled_from(["CannotPullContainerError: not found", "Scaling activity", ""])),
})
EVENTS = JSON_VALUES | st.fixed_dictionaries({}, optional={
    "detail-type": _near(st.sampled_from(["Scheduled Event", "ECS Task State Change", "Something Else"])),
    "source": _near(st.sampled_from(["aws.events", "aws.scheduler", "aws.ecs"])),
    "shards": _near(st.lists(_near(SHARDISH), max_size=3)),
    "shard": _near(SHARDISH),
    "detail": _near(DETAIL),
})


def _check_trigger(trigger: Trigger) -> None:
    assert trigger.kind in ("shard", "schedule", "task", "ignored")
    for shard in (*trigger.fan_out, *((trigger.shard,) if trigger.shard else ())):
        assert shard.account.isdigit() and len(shard.account) == 12 and "/" not in shard.region
    if trigger.kind == "task":
        assert all(trigger.clusters) and len(trigger.services) == 1


@settings(FUZZ, max_examples=200)
@given(event=EVENTS)
def test_parse_trigger_returns_a_trigger_or_input_error(event: Any) -> None:
    try:
        trigger = parse_trigger(event)
    except InputError:
        return
    _check_trigger(trigger)


@dataclass
class _FakeInvocation:
    """Stands in for the sweep, fan-out and remediation so accepted events touch no AWS."""

    calls: list[Trigger] = field(default_factory=list)

    def run(self, trigger: Trigger, function_name: str) -> dict[str, Any]:
        self.calls.append(trigger)
        return {"trigger": trigger.kind.value, "exit_code": 0}


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No guard.toml where the handler looks, and any AWS client request fails the test."""
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("an AWS client was requested for an event that should have been rejected")

    monkeypatch.setattr(AwsSession, "client", refuse)


@settings(FUZZ, max_examples=150)
@given(event=EVENTS)
def test_handler_never_raises_and_rejects_garbage_with_exit_2(event: Any, no_aws: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeInvocation()
    monkeypatch.setattr(lambda_handler, "_INVOCATION", fake)
    try:
        expected: Trigger | None = parse_trigger(event)
    except InputError:
        expected = None
    out = lambda_handler.handler(event, None)
    json.dumps(out)
    if expected is None:
        assert out["exit_code"] == 2 and out["error"] == "input" and isinstance(out["message"], str)
        assert fake.calls == []
    elif expected.kind == "ignored":
        assert out == {"trigger": "ignored"} and fake.calls == []
    else:
        assert fake.calls == [expected]


LAMBDA_CONFIGS = {
    **{k: v for k, v in CONFIG_TEXTS.items() if k not in ("int-overflowing-timedelta",)},
    "unknown-key": "sweep_everything = true\n",
    "state-url-unsupported-scheme": '[watch]\nstate = "ftp://x/y"\n',
    "state-url-no-bucket": '[watch]\nstate = "s3://"\n',
}


@pytest.mark.parametrize("text", LAMBDA_CONFIGS.values(), ids=LAMBDA_CONFIGS.keys())
def test_handler_with_a_hostile_packaged_config_reports_exit_2(text: str | bytes, tmp_path: Path,
                                                               no_aws: None) -> None:
    (tmp_path / "guard.toml").write_bytes(text if isinstance(text, bytes) else text.encode())
    out = lambda_handler.handler({"detail-type": "Scheduled Event", "source": "aws.events"}, None)
    assert out["exit_code"] == 2 and out["error"] == "input", out
    assert "CANARY" not in out["message"]


@pytest.mark.parametrize("shard", [
    {"account": "../../../tmp", "region": "eu-west-1"},
    {"account": "210987654321", "region": "eu-west-1/../../x"},
    {"account": "210987654321", "region": "not a region"},
    {"account": "2109876543210", "region": "eu-west-1"},
])
def test_shard_events_cannot_steer_state_keys_or_regions(shard: dict[str, str], no_aws: None) -> None:
    with pytest.raises(InputError, match="shard"):
        parse_trigger({"shard": shard})
    assert lambda_handler.handler({"shard": shard}, None)["exit_code"] == 2
    assert lambda_handler.handler({"shards": [shard]}, None)["exit_code"] == 2


# ---- 3. `guard check` input files ---------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working directory, no GitHub context, AWS pointed at a closed local port (never reached)."""
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_SHA", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY",
                 "GITHUB_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)
    return tmp_path


HOSTILE_FILES: dict[str, bytes] = {
    "deep-array": b"[" * 10_000 + b"]" * 10_000,
    "deep-object": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "int-over-digit-limit": b'{"format_version": "1.2", "n": ' + b"1" * 5000 + b"}",
    "invalid-utf8": b'{"family": "\xff\xfe\xc3\x28"}',
    "nul-bytes": b'{"family": "a"}\x00\x00\x00',
    "only-nul": b"\x00" * 64,
    "empty": b"",
    "a-list": b"[1, 2, 3]",
    "a-string": b'"containerDefinitions"',
    "null": b"null",
    "wrong-types": b'{"format_version": 1, "resource_changes": "x", "containerDefinitions": {"name": 5}}',
    "utf16-bom": '{"containerDefinitions": []}'.encode("utf-16"),
}

def _cases() -> Iterator[Any]:
    for name in HOSTILE_FILES:
        for option in ("--task-def", "--plan", "--parity"):
            yield pytest.param(option, name, id=f"{option[2:]}-{name}")


def _rejected(args: list[str]) -> str:
    """Run `guard ARGS`; assert exit 2, a `guard: ` message and no traceback; return stderr."""
    result = CliRunner().invoke(main, args)
    if not isinstance(result.exception, SystemExit):
        crashed = f"{type(result.exception).__name__}: {result.exception}" if result.exception else "ran to the end"
        raise AssertionError(f"not refused: {crashed} (exit {result.exit_code})")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("guard: "), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert len(result.stderr) < 2000  # a message, not a dump of the input
    return result.stderr


@pytest.mark.parametrize(("option", "name"), list(_cases()))
def test_check_rejects_hostile_files_with_exit_2(option: str, name: str, offline: Path) -> None:
    path = offline / f"{name}.json"
    path.write_bytes(HOSTILE_FILES[name])
    _rejected(["check", option, str(path), *([str(path)] if option == "--parity" else [])])


def test_check_refuses_a_file_over_64_mib_before_reading_it(offline: Path) -> None:
    path = offline / "sparse.json"
    with path.open("wb") as f:
        f.truncate(guard.gate.MAX_INPUT_BYTES + 1)  # sparse: nothing is written
    assert "larger than 64 MiB" in _rejected(["check", "--task-def", str(path)])
    assert "larger than 64 MiB" in _rejected(["check", "--parity", str(path), str(path)])


@pytest.mark.parametrize("option", ["--task-def", "--parity", "--plan"])
def test_check_size_limit_applies_to_every_input(option: str, offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard.gate, "MAX_INPUT_BYTES", 1024)
    monkeypatch.setattr(guard.plan.terraform, "MAX_INPUT_BYTES", 1024)
    path = offline / "big.json"
    path.write_text(json.dumps({"format_version": "1.2", "resource_changes": [], "pad": "x" * 4096}))
    stderr = _rejected(["check", option, str(path), *([str(path)] if option == "--parity" else [])])
    assert "larger than" in stderr


@pytest.mark.parametrize("text", CONFIG_TEXTS.values(), ids=CONFIG_TEXTS.keys())
def test_check_with_a_hostile_config_exits_2(text: str | bytes, offline: Path) -> None:
    (offline / "guard.toml").write_bytes(text if isinstance(text, bytes) else text.encode())
    (offline / "td.json").write_text('{"containerDefinitions": [{"name": "a", "image": "nginx:1"}]}')
    assert "CANARY" not in _rejected(["check", "--task-def", "td.json"])


# ---- local HTTP servers for hostile response bodies --------------------------------------------------------


@dataclass
class Reply:
    """What the hostile server answers next."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"


class HostileServer:
    """A stdlib HTTP server on 127.0.0.1 answering every request with queued (or the default) replies."""

    def __init__(self) -> None:
        self.default = Reply()
        self.queue: list[Reply] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with owner._lock:
                    owner.paths.append(f"{self.command} {self.path}")
                    reply = owner.queue.pop(0) if owner.queue else owner.default
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _reply

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def reset(self, default: Reply, *queued: Reply) -> None:
        with self._lock:
            self.default, self.queue, self.paths = default, list(queued), []

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.close()


# ---- 4. GitHub response shapes ------------------------------------------------------------------------------

RUN = {"id": 9100000001, "name": "build", "path": ".github/workflows/build.yml", "head_sha": "a" * 40,
       "head_branch": "main", "status": "completed", "conclusion": "success", "html_url": "https://x/1",
       "run_attempt": 1, "event": "push", "created_at": "2026-11-23T03:00:00Z"}


def _runs(*runs: Any, **extra: Any) -> bytes:
    return json.dumps({"total_count": len(runs), "workflow_runs": list(runs), **extra}).encode()


GITHUB_CASES = [
    pytest.param(Reply(body=_runs(RUN)), "runs", id="well-formed"),
    pytest.param(Reply(body=_runs({**RUN, "name": "\u202e\U0001f600\x00" * 200, "head_branch": "\ud7ff"})),
                 "runs", id="unicode-fields"),
    pytest.param(Reply(body=_runs(RUN, pad="x" * 10_000_000)), "runs", id="10MB-body"),
    pytest.param(Reply(body=_runs(RUN, total_count="many")), "runs", id="total_count-not-a-number"),
    pytest.param(Reply(body=b'"x"'), "error", id="json-string"),
    pytest.param(Reply(body=b'{"total_count": 1, "workflow_runs": "x"}'), "error", id="workflow_runs-a-string"),
    pytest.param(Reply(body=_runs({})), "error", id="run-empty-object"),
    pytest.param(Reply(status=500, body=b"<html>bad gateway</html>", content_type="text/html"), "error",
                 id="500-html"),
    pytest.param(Reply(status=401, body=b"nope", content_type="text/plain"), "error", id="401-text"),
    pytest.param(Reply(status=403, body=b"x" * 10_000_000, content_type="text/plain"), "error", id="403-10MB-text"),
    pytest.param(Reply(status=404, body=b"[]"), "error", id="404-json-list"),
    pytest.param(Reply(body=b"<html>oops</html>", content_type="text/html"), "error", id="non-json"),
    pytest.param(Reply(body=b"x" * 10_000_000, content_type="text/plain"), "error", id="10MB-non-json"),
    pytest.param(Reply(body=b""), "error", id="empty-body"),
    pytest.param(Reply(body=b"null"), "error", id="json-null"),
    pytest.param(Reply(body=b"[1, 2]"), "error", id="json-list"),
    pytest.param(Reply(body=b'{"total_count": 1}'), "error", id="workflow_runs-missing"),
    pytest.param(Reply(body=b'{"total_count": 1, "workflow_runs": null}'), "error", id="workflow_runs-null"),
    pytest.param(Reply(body=_runs(1)), "error", id="run-not-an-object"),
    pytest.param(Reply(body=_runs({**RUN, "id": "x"})), "error", id="run-id-a-string"),
    pytest.param(Reply(body=_runs({**RUN, "name": [1]})), "error", id="run-name-a-list"),
    pytest.param(Reply(body=_runs({**RUN, "created_at": "yesterday"})), "error", id="created_at-not-a-date"),
    pytest.param(Reply(body=_runs({**RUN, "created_at": None})), "error", id="created_at-null"),
    pytest.param(Reply(status=422, body=b"[1]"), "error", id="422-json-list"),
]


@pytest.mark.parametrize(("reply", "outcome"), GITHUB_CASES)
def test_github_runs_for_commit_maps_every_hostile_body(hostile: HostileServer, reply: Reply, outcome: str) -> None:
    hostile.reset(reply)
    gateway = PyGithubGateway(f"{hostile.url}/api/v3", "sandbox-token", ApiStats(), retries=0, backoff=0)
    try:
        runs = gateway.runs_for_commit("o/r", "a" * 40)
    except GatewayError as exc:
        assert outcome == "error", f"unexpected {exc!r}"
        assert "sandbox-token" not in str(exc)
        return
    assert any(p.startswith("GET /api/v3/repos/o/r/actions/runs") for p in hostile.paths)
    assert outcome == "runs", runs
    assert runs and all(isinstance(r, WorkflowRun) for r in runs)
    assert all(isinstance(r.id, int) and isinstance(r.name, str) and isinstance(r.created_at, str) for r in runs)


# ---- 5. Anthropic response shapes ---------------------------------------------------------------------------

INCIDENT = Incident("INC-hostile", Severity.ERROR, Cause.MISSING_IMAGE, "123456789012.dkr.ecr.us-east-1.amazonaws.com/"
                    "shop/api:e4f0a31", "prod/api cannot pull its image", ("ecs:prod/api",), (),
                    "2026-11-23T03:00:00+00:00", "2026-11-23T03:00:00+00:00")


def _message(content: Any, usage: Any = "default", stop: str = "end_turn", **extra: Any) -> Reply:
    doc: dict[str, Any] = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
                           "content": content, "stop_reason": stop, "stop_sequence": None, **extra}
    if usage == "default":
        doc["usage"] = {"input_tokens": 10, "output_tokens": 5}
    elif usage is not None:
        doc["usage"] = usage
    return Reply(body=json.dumps(doc).encode())


def _use(tool_input: Any, name: Any = "propose_action", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_01", "name": name, "input": tool_input, **extra}


END = _message([{"type": "text", "text": "done"}])
ROLLBACK = {"kind": "ecs_rollback", "reason": "r",
            "params": {"cluster": "prod", "service": "api", "task_definition": "api:1"}}
LLM_CASES = [
    pytest.param([_message([_use(None)], stop="tool_use")], id="tool_use-input-null"),
    pytest.param([_message([_use({}, name=5)], stop="tool_use")], id="tool_use-name-a-number"),
    pytest.param([_message([_use({"kind": "ecs_rollback", "params": "x", "reason": "r"})], stop="tool_use")],
                 id="proposal-params-a-string"),
    pytest.param([_message([_use({"kind": ["ecs_rollback"], "params": {}, "reason": {}})], stop="tool_use")],
                 id="proposal-kind-a-list"),
    pytest.param([_message([_use({"resource": ["ecs:prod/api"]}, name="get_known_good")], stop="tool_use")],
                 id="tool-resource-a-list"),
    pytest.param([_message([{"type": "hologram", "data": "x"}])], id="unknown-block-type"),
    pytest.param([_message([{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}])],
                 id="server-tool-use-block"),
    pytest.param([_message([{"type": "text", "text": "A" * 5_000_000}])], id="5MB-text"),
    pytest.param([_message([{"type": "text", "text": "x"}], stop="refusal")], id="refusal"),
    pytest.param([_message([], stop="max_tokens")], id="empty-content"),
    pytest.param([_message([_use(ROLLBACK)], stop="tool_use", usage=None)], id="missing-usage"),
    pytest.param([_message([_use({})], usage={"input_tokens": None, "output_tokens": None})], id="usage-null-counts"),
    pytest.param([_message([], usage={"input_tokens": "lots", "output_tokens": 1})], id="usage-a-string"),
    pytest.param([_message([_use("rm -rf /")], stop="tool_use")], id="tool_use-input-a-string"),
    pytest.param([_message([_use([ROLLBACK])], stop="tool_use")], id="tool_use-input-a-list"),
    pytest.param([_message([{"type": "tool_use", "name": "get_incident", "input": {}}], stop="tool_use")],
                 id="tool_use-without-id"),
    pytest.param([_message([{"type": "text", "text": 5}])], id="text-not-a-string"),
    pytest.param([_message(None)], id="content-null"),
    pytest.param([_message("hello")], id="content-a-string"),
    pytest.param([Reply(body=b"{}")], id="empty-object"),
    pytest.param([Reply(body=b"[1, 2]")], id="json-list"),
    pytest.param([Reply(body=b"<html>", content_type="text/html")], id="html-200"),
    pytest.param([Reply(body=b"<html>")], id="non-json-with-json-type"),
    pytest.param([Reply(status=500, body=b'{"type": "error", "error": {"type": "api_error", "message": "x"}}')],
                 id="500-api-error"),
    pytest.param([Reply(status=400, body=b"x" * 1_000_000, content_type="text/plain")], id="400-1MB-text"),
    pytest.param([Reply(status=200, body=b"\xff\xfe\x00garbage")], id="binary-200"),
]


def _planner(url: str) -> LlmPlanner:
    return LlmPlanner(lambda: anthropic.Anthropic(base_url=url, api_key="sk-ant-test-key", max_retries=0,
                                                  timeout=30.0))


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic warns when serialising the off-schema blocks
@pytest.mark.parametrize("replies", LLM_CASES)
def test_llm_planner_escalates_or_fails_clearly_on_hostile_bodies(hostile: HostileServer, replies: list[Reply],
                                                                  tmp_path: Path) -> None:
    hostile.reset(END, *replies)
    store = LocalStore(tmp_path / "state")
    ctx = PlanContext(store, AwsSession(), RemediateConfig(max_turns=4))
    journal = Journal(store, INCIDENT.id)
    try:
        strategies = _planner(hostile.url)(INCIDENT, ctx, journal, "test")
    except anthropic.APIError:
        return  # a clear error: the remediation stops before any action
    assert isinstance(strategies, list) and all(isinstance(s, Strategy) for s in strategies)
    assert [a.kind for s in strategies for a in s.actions] == ["escalate"], [s.to_json() for s in strategies]
    [model] = [e for e in journal.entries() if e.kind is EntryKind.MODEL]
    assert len(model.data["reasoning"]) <= 4000


def test_negative_usage_cannot_buy_more_turns(hostile: HostileServer, tmp_path: Path) -> None:
    loop = _message([_use({}, name="get_incident")], stop="tool_use", usage={"input_tokens": -100000,
                                                                           "output_tokens": 0})
    normal = _message([_use({}, name="get_incident")], stop="tool_use", usage={"input_tokens": 60, "output_tokens": 0})
    hostile.reset(END, loop, loop, normal, normal, normal, normal)
    store = LocalStore(tmp_path / "state")
    ctx = PlanContext(store, AwsSession(), RemediateConfig(max_turns=50, token_budget=100))
    strategies = _planner(hostile.url)(INCIDENT, ctx, Journal(store, INCIDENT.id), "test")
    assert [a.kind for s in strategies for a in s.actions] == ["escalate"]
    [model] = [e for e in Journal(store, INCIDENT.id).entries() if e.kind is EntryKind.MODEL]
    assert model.data["stop"] == "token_budget" and model.data["turns"] <= 4

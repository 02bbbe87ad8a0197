"""Canaries: credentials and secret values planted everywhere a run reads them, and proven to leak nowhere.

Planted: the GitHub token (a live token in the GitHub sandbox with every write permission), the AWS secret
access key (moto accepts any), the Anthropic API key (sent to the local Messages server), a Slack webhook URL
whose path is the secret, an environment value `password=...` and a Secrets Manager secret value in the
deployed task definition. Then `guard check` (json and table), `guard watch` with Slack and GitHub issue
routes, `guard remediate` planned by the model, `guard postmortem`, and the failure paths (wrong GitHub
token, failing webhook echoing its URL, wrong Anthropic key, unreachable AWS) run with logging at DEBUG.

Sinks searched: CLI stdout/stderr, every log record, every file under the state directory (journal objects,
incidents, known-good, postmortem), every webhook body, every GitHub issue and comment, every request body
(and non-key header) the model server received, and the messages of the failure paths' exceptions.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

from guard.agent.llm import LlmPlanner
from guard.cli import main
from guard.errors import AccessDenied
from guard.gateways.github import PyGithubGateway
from guard.gateways.stats import ApiStats
from guard.journal import EntryKind, Journal
from guard.redact import redact
from guard.sandbox.anthropic_server import AnthropicSandbox, Turn, text, tool_use
from guard.sandbox.github_server import ALL_PERMISSIONS
from guard.sandbox.webhook_server import WebhookSandbox
from tests.support.guardrun import export_task_definition
from tests.support.remedyrun import BAD, GOOD, REPO, World, deploy

GITHUB_TOKEN = "ghs_CANARYgithubToken7c0ffee0123456789abcdef"
WRONG_GITHUB_TOKEN = "ghp_CANARYwrongToken5deadbeef0123456789abc"
AWS_SECRET = "CANARYawsSecretKey/0123456789abcdefghijklmn"
ANTHROPIC_KEY = "sk-ant-api03-CANARYanthropicKey0123456789abcdef"
HOOK_PATH = "/services/T0CANARY1/B0CANARY2/CANARYslackHookSecret0123"
ENV_VALUE = "password=CANARYPW123"
SECRET_VALUE = "CANARYsecretValue789"
CANARIES = (GITHUB_TOKEN, WRONG_GITHUB_TOKEN, AWS_SECRET, ANTHROPIC_KEY, HOOK_PATH, ENV_VALUE, SECRET_VALUE)
# Distinctive fragments: a clipped, re-encoded or partly redacted copy of a canary still trips the search.
FRAGMENTS = ("CANARYgithubToken", "CANARYwrongToken", "CANARYawsSecretKey", "CANARYanthropicKey", "CANARYslackHook",
             "B0CANARY2", "CANARYPW123", "CANARYsecretValue")

# botocore's wire log: at DEBUG it prints whole request and response bodies (a task definition's environment
# values included). Searched separately, in the xfail test below.
WIRE_LOGGERS = frozenset({"botocore.parsers", "botocore.endpoint"})


def assert_clean(where: str, value: Any) -> None:
    """No canary, nor a fragment of one, in `value` (text, bytes, or anything JSON-serialisable)."""
    if isinstance(value, bytes):
        blob = value.decode("utf-8", "replace")
    elif isinstance(value, str):
        blob = value
    else:
        blob = json.dumps(value, default=str)
    found = [c for c in (*CANARIES, *FRAGMENTS) if c in blob]
    assert not found, f"{where} leaks {found}: ...{blob[max(0, blob.find(found[0]) - 200):][:400]}..."


@pytest.fixture(scope="module")
def model_server() -> Iterator[AnthropicSandbox]:
    with AnthropicSandbox() as server:
        yield server


@pytest.fixture(scope="module")
def hook_server() -> Iterator[WebhookSandbox]:
    with WebhookSandbox(hook_path=HOOK_PATH) as server:
        yield server


class Canaries:
    """The planted world: CLI runner, sinks to search, and the servers that received requests."""

    def __init__(self, world: World, model: AnthropicSandbox, hook: WebhookSandbox,
                 caplog: pytest.LogCaptureFixture) -> None:
        self.world, self.model, self.hook, self.caplog = world, model, hook, caplog
        self.outputs: list[tuple[str, str]] = []
        self.records: list[logging.LogRecord] = []

    @contextmanager
    def product(self) -> Iterator[None]:
        """Keep the log records emitted while the product runs (not while the test sets the scene)."""
        start = len(self.caplog.records)
        try:
            yield
        finally:
            self.records.extend(self.caplog.records[start:])

    def guard(self, *args: str, code: int | None = None) -> Result:
        """Run `guard ARGS`; keep stdout/stderr and its log records for the final search."""
        with self.product():
            result = CliRunner().invoke(main, list(args))
        self.outputs.append((" ".join(args), result.output + result.stderr))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        if code is not None:
            assert result.exit_code == code, (args, result.stdout, result.stderr)
        return result

    def assert_no_leaks(self) -> None:
        """Search every sink."""
        for args, output in self.outputs:
            assert_clean(f"`guard {args}` output", output)
        for record in self.records:  # wire loggers are pinned at WARNING by the product itself
            assert_clean(f"log record {record.name}:{record.lineno}", record.getMessage() + (record.exc_text or ""))
        files = [p for p in (self.world.root / "state").rglob("*") if p.is_file()]
        assert any("/objects/" in str(p) for p in files)  # the journal was written
        for path in files:
            assert_clean(f"state file {path.relative_to(self.world.root)}", path.read_bytes())
        for body in self.hook.received:
            assert_clean("webhook body", body)
        for issue in self.world.github.issues(REPO):
            assert_clean(f"GitHub issue #{issue['number']}", issue)
            assert_clean(f"comments of #{issue['number']}", self.world.github.comments(REPO, issue["number"]))
        for request in self.model.requests:
            assert_clean("model request body", request.body)
            assert_clean("model request headers", {k: v for k, v in request.headers.items()
                                                   if k not in ("x-api-key", "authorization")})


@pytest.fixture
def canaries(world: World, model_server: AnthropicSandbox, hook_server: WebhookSandbox,
             monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Canaries:
    """Plant every canary in the environment, the GitHub sandbox, Secrets Manager and a guard.toml."""
    model_server.reset()
    hook_server.reset()
    caplog.set_level(logging.DEBUG)
    for library in ("botocore", "boto3", "urllib3", "github", "anthropic", "httpx"):  # even if one set its own
        monkeypatch.setattr(logging.getLogger(library), "level", logging.DEBUG)
    world.github.add_token(GITHUB_TOKEN, ALL_PERMISSIONS)
    monkeypatch.chdir(world.root)
    for name in ("GITHUB_SHA", "GITHUB_RUN_ID", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.url)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook_server.url)
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:  # the product's waits (rollout, retries) pass in simulated time
        if threading.current_thread() is threading.main_thread():
            _quiet(world.sim.tick)
        else:
            real_sleep(seconds)

    monkeypatch.setattr("guard.actions.time.sleep", sleep)
    assert boto3.session.Session().get_credentials().secret_key == AWS_SECRET  # the AWS canary is the live key
    (world.root / "guard.toml").write_text(
        f'build_workflows = ["build.yml"]\n'
        # the simulator stamps stopped tasks with its fixed clock; the CLI's watchdog reads the wall clock
        f'[watch]\nstate = "{world.root / "state"}"\nlookback_minutes = 100000000\n'
        '[notify]\nheartbeat = false\n'
        '[[notify.routes]]\ntype = "slack"\nurl_env = "SLACK_WEBHOOK_URL"\n'
        f'[[notify.routes]]\ntype = "github_issue"\nrepository = "{REPO}"\n'
        f'[remediate]\nmode = "act"\nbuild_repository = "{REPO}"\npoll_seconds = 1\nwait_timeout_seconds = 60\n'
        '[[remediate.allow]]\nresource = "ecs:prod/*"\nactions = ["ecs_rollback"]\n')
    return Canaries(world, model_server, hook_server, caplog)


def _quiet(fn: Callable[[], object]) -> None:
    """Run test scaffolding (the ECS simulator) without logging: its records are not the product's."""
    logging.disable(logging.CRITICAL)
    try:
        fn()
    finally:
        logging.disable(logging.NOTSET)


def _broken_deploy(world: World) -> str:
    """Deploy a revision whose image was never pushed, carrying the env value and a real secret."""
    secret = world.aws.client("secretsmanager").create_secret(Name="prod/api/db", SecretString=SECRET_VALUE)["ARN"]
    repo = world.aws.repository("shop/api")
    arn = world.aws.task_definition("api", [("app", f"{repo}:{BAD[:7]}")], environment=[("APP_SETTINGS", ENV_VALUE)],
                                    secrets=[("DB_PASSWORD", secret)])
    world.aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=arn)
    world.sim.tick()
    return arn


def _last_tool_results(body: dict[str, Any]) -> list[Any]:
    return [json.loads(b["content"]) for b in body["messages"][-1]["content"] if b["type"] == "tool_result"]


def test_no_canary_leaks_through_check_watch_remediate_and_postmortem(canaries: Canaries) -> None:
    world, model, hook = canaries.world, canaries.model, canaries.hook
    world.github.add_run(REPO, head_sha=BAD, conclusion="cancelled")
    bad = _broken_deploy(world)
    td = export_task_definition(world.aws, bad, world.root / "taskdef.json")
    assert ENV_VALUE in Path(td).read_text() and SECRET_VALUE not in Path(td).read_text()

    # the gate, both formats: it reads the task definition (with the env value), GitHub (with the token), AWS
    for fmt in ("json", "table"):
        out = canaries.guard("check", "--task-def", td, "--sha", BAD, "--format", fmt, code=1)
        assert "IMG001" in out.output and "PRV001" in out.output
    assert any(r.token == GITHUB_TOKEN for r in world.github.requests)  # the canary token was the live one

    # the watchdog: one sweep opens the incident and posts it to Slack and a GitHub issue
    swept = json.loads(canaries.guard("watch", "--once", "--cluster", "prod", "--format", "json", code=1).stdout)
    [incident] = swept["incidents"]
    assert {n["route"]: n["ok"] for n in swept["notifications"]} == {"slack": True, "github_issue": True}
    assert hook.received and world.github.issues(REPO)

    # the remediation, planned by the model through every read tool, acting within policy
    def propose(body: dict[str, Any]) -> Turn:
        described, runs, known_good = _last_tool_results(body)
        assert described["task_definition"] == bad and any(r["sha"] == BAD for r in runs)
        return Turn([text("The image was never pushed; the known-good revision is healthy."),
                     tool_use("propose_action", {"kind": "ecs_rollback", "reason": "image missing",
                                                 "params": {"cluster": "prod", "service": "api",
                                                            "task_definition": known_good["task_definition"]}})])

    model.script([Turn([tool_use("get_incident", {})]),
                  Turn([tool_use("describe_resource", {"resource": "ecs:prod/api"}),
                        tool_use("list_build_runs", {}),
                        tool_use("get_known_good", {"resource": "ecs:prod/api"})]),
                  propose, Turn([text("Proposed the rollback.")])])
    out = canaries.guard("remediate", incident["id"], "--format", "json", code=0)
    [report] = json.loads(out.stdout)["remediations"]
    assert report["status"] == "repaired", report
    assert world.service()["taskDefinition"].endswith("api:1")
    assert model.remaining == 0 and {r.api_key for r in model.requests} == {ANTHROPIC_KEY}

    # the postmortem, from the journal
    pm = canaries.guard("postmortem", incident["id"], code=0)
    assert "# Postmortem" in pm.stdout and "ecs_rollback" in pm.stdout
    canaries.assert_no_leaks()


def test_failure_paths_do_not_quote_secrets(canaries: Canaries, monkeypatch: pytest.MonkeyPatch) -> None:
    world, hook = canaries.world, canaries.hook
    world.github.add_run(REPO, head_sha=GOOD, conclusion="success")
    td = export_task_definition(world.aws, world.service()["taskDefinition"], world.root / "taskdef.json")

    # a GitHub token GitHub rejects: PRV001 is unverified (exit 3), and the error names no token
    monkeypatch.setenv("GITHUB_TOKEN", WRONG_GITHUB_TOKEN)
    for fmt in ("json", "table"):
        out = canaries.guard("check", "--task-def", td, "--sha", GOOD, "--format", fmt, code=3)
        assert "bad credentials" in out.output
    with canaries.product(), pytest.raises(AccessDenied) as denied:
        PyGithubGateway(world.github.api_url, WRONG_GITHUB_TOKEN, ApiStats(), backoff=0).runs_for_commit(REPO, GOOD)
    assert_clean("AccessDenied", f"{denied.value} {denied.value!r} {denied.value.__cause__}")

    # a webhook that fails, echoing its own URL in the error body: the route's error redacts the path
    hook.fail_with(403, body=f"invalid_token for {hook.url}")
    out = canaries.guard("notify", "--test", code=1)
    assert "FAILED slack" in out.output and "403" in out.output
    hook.reset()
    hook.drop_connections()
    out = canaries.guard("notify", "--test", code=1)
    assert "did not answer" in out.output
    hook.reset()

    # an Anthropic key the API refuses: the playbook plans instead, and the journal never holds the key
    with AnthropicSandbox(api_key="sk-ant-api03-the-accepted-one") as strict:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", strict.url)
        deploy(world, "broken")
        with canaries.product():
            [inc] = world.sweep().incidents
        with canaries.product():
            report = world.remediate(inc, planner=LlmPlanner())
        assert [r.status for r in strict.requests] == [401] and strict.requests[0].api_key == ANTHROPIC_KEY
        [model] = [e for e in Journal(world.store, inc.id).entries() if e.kind is EntryKind.MODEL]
        assert model.data["stop"] == "model_unavailable: AuthenticationError"
        assert_clean("remediation after a refused key", json.dumps(report.to_json()))

    # AWS that does not answer: exit 3, the message names the endpoint, never the key
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    out = canaries.guard("check", "--service", "prod/api", code=3)
    assert "could not read" in out.stderr
    canaries.assert_no_leaks()


def test_model_tool_results_redact_credential_shaped_text() -> None:
    """What the planner sends back to the model: credential-shaped strings are replaced wherever they sit."""
    value = {"events": [f"db {ENV_VALUE}", f"auth {GITHUB_TOKEN}", f"key {ANTHROPIC_KEY}"],
             "nested": [{"note": f"token={WRONG_GITHUB_TOKEN}"}]}
    assert_clean("redacted tool result", redact(value))


def test_wire_logs_stay_off_with_the_root_logger_at_debug(canaries: Canaries) -> None:
    """botocore at DEBUG logs whole response bodies (task definition environment values): guard pins it."""
    _broken_deploy(canaries.world)
    canaries.guard("check", "--service", "prod/api", "--format", "json")
    wire = [r for r in canaries.records if r.name.split(".")[0] in {n.split(".")[0] for n in WIRE_LOGGERS}
            and r.levelno < logging.WARNING]
    assert wire == []
    for record in canaries.records:
        assert_clean(f"log record {record.name}", record.getMessage())


def test_remediate_with_a_refused_model_key_falls_back_to_the_playbook(canaries: Canaries,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused key is no traceback and no silence: the playbook plans, and the journal says why."""
    deploy(canaries.world, "broken")
    [inc] = canaries.world.sweep().incidents
    with AnthropicSandbox(api_key="sk-ant-api03-the-accepted-one") as strict:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", strict.url)
        result = CliRunner().invoke(main, ["remediate", inc.id, "--format", "json"])
    assert result.exit_code == 0, (repr(result.exception), result.output)
    assert "Traceback" not in result.output
    [report] = json.loads(result.stdout)["remediations"]
    assert report["strategies"][0]["name"] == "roll back to known-good" and report["status"] == "repaired"
    [model] = [e for e in Journal(canaries.world.store, inc.id).entries() if e.kind is EntryKind.MODEL]
    assert model.data["stop"].startswith("model_unavailable")
    canaries.assert_no_leaks()

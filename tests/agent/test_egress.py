"""Credentials planted in what the tools read (stopped reasons, GitHub run names) leave through no egress.

A live run: watchdog sweep, the model planner through the SDK against the local Messages server, the policy
gate, the escalation to the on-call route, the journal and the postmortem, with logging at DEBUG.
Egresses searched: every model request, every notification (pager and stdout), every state file, the
postmortem and every log record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import anthropic
import pytest

from guard.agent.llm import LlmPlanner
from guard.sandbox.anthropic_server import AnthropicSandbox, Turn, text, tool_use
from tests.integration.test_secrets import WIRE_LOGGERS
from tests.support.remedyrun import BAD, REPO, World
from tests.unit.test_egress_canaries import MARK, _shapes

BODY = "q7Lk2Vx9RtW4mNp8"
PARAMETER_SAFE = ("ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_11AB_", "sk-ant-api03-", "AKIA")


@pytest.fixture(scope="module")
def model_server() -> Iterator[AnthropicSandbox]:
    with AnthropicSandbox() as server:
        yield server


def test_planted_credentials_leave_through_no_egress(world: World, model_server: AnthropicSandbox,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    model_server.reset()
    shapes = _shapes(BODY)
    for shape in shapes:  # GitHub run names (and commit titles) are free text anyone with push access writes
        world.github.add_run(REPO, head_sha=BAD, conclusion="cancelled", name=f"build {shape}")
    # stopped reasons quote the SSM parameter a task could not fetch: parameter names carry token shapes
    names = [f"/prod/{s}" for s in shapes if s.startswith(PARAMETER_SAFE)]
    repo = world.aws.repository("shop/api")
    bad = world.aws.task_definition("api", [("app", f"{repo}:{BAD[:7]}")],
                                    secrets=[(f"S{i}", n) for i, n in enumerate(names)])
    world.aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=bad)
    world.sim.tick()
    caplog.set_level(logging.DEBUG)
    [inc] = [i for i in world.sweep().incidents if i.cause.value == "secret"]

    model_server.script([Turn([tool_use("get_incident", {}),
                               tool_use("describe_resource", {"resource": "ecs:prod/api"}),
                               tool_use("list_build_runs", {})]),
                         Turn([text("Rolling back as the evidence says."),
                               tool_use("propose_action", {"kind": "ecs_rollback", "reason": "as the run said",
                                                           "params": {"cluster": "prod", "service": "api",
                                                                      "task_definition": bad}})]),
                         Turn([text("Done.")])])
    planner = LlmPlanner(lambda: anthropic.Anthropic(base_url=model_server.url, api_key="sk-ant-test-key",
                                                     max_retries=0))
    report = world.remediate(inc, planner=planner)
    assert report.status == "escalated", report.to_json()  # api:2 was never recorded healthy
    runs = [json.loads(b["content"]) for m in model_server.requests[1].body["messages"] if m["role"] == "user"
            and isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_result"][-1]
    assert len(runs) >= len(shapes) and all("[redacted]" in r["name"] for r in runs[:len(shapes)])

    sinks: list[tuple[str, str]] = [("model request", json.dumps(r.body)) for r in model_server.requests]
    sinks += [("pager", json.dumps(n.to_json())) for n in world.pager.received]
    sinks += [("stdout route", world.notes.getvalue())]
    sinks += [(f"journal file {p.name}", p.read_text()) for p in (world.root / "state" / "journal").rglob("*")
              if p.is_file()]
    # botocore's wire log is pinned at WARNING by the CLI's logging set-up (tests/integration/test_secrets.py)
    sinks += [(f"log {r.name}", r.getMessage()) for r in caplog.records if r.name not in WIRE_LOGGERS]
    assert any(name == "journal file postmortem.md" for name, _ in sinks)
    assert world.pager.received and len(sinks) > 10
    leaks = [(name, blob[max(0, blob.find(MARK) - 80):][:200]) for name, blob in sinks if MARK in blob]
    assert leaks == [], "\n".join(map(str, leaks))

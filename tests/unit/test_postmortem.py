"""The postmortem: sections, rows, redaction and determinism, rendered from hand-built journal entries."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from guard.journal import Entry, EntryKind
from guard.models import Cause, Incident, IncidentStatus, Severity, Signal
from guard.postmortem import NO_MODEL, TODO, render_postmortem
from guard.redact import REDACTED, redact, scrub
from guard.triage import coalesce

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GENERATED = "2024-05-01T13:00:00+00:00"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:3f2c1a9"
SECTIONS = ["## Summary", "## Timeline", "## Signals", "## Actions", "## Refusals", "## Model inference",
            "## Five-layer cause analysis", "### 1. Trigger", "### 2. Proximate cause",
            "### 3. Contributing factors", "### 4. Systemic gap", "### 5. Governance", "## Open questions"]


def _signal(service: str, since: str) -> Signal:
    return Signal("ECS101", Severity.ERROR, f"ecs:prod/{service}", Cause.MISSING_IMAGE, IMAGE,
                  f"CannotPullContainerError: {IMAGE} not found", since, {"stopped_tasks": 3})


INCIDENT: Incident = coalesce([_signal("web", "2024-05-01T11:58:00+00:00"),
                               _signal("api", "2024-05-01T11:55:00+00:00")], T0)[0]


def _chain(steps: Sequence[tuple[EntryKind, Mapping[str, Any]]], actor: str = "watchdog") -> list[Entry]:
    """Entries as Journal.append would chain them, one second apart from T0."""
    entries: list[Entry] = []
    for n, (kind, data) in enumerate(steps):
        at = (T0 + timedelta(seconds=n)).isoformat()
        entries.append(Entry(kind, at, actor, dict(data), entries[-1].digest if entries else ""))
    return entries


def _remediation() -> list[Entry]:
    """Rolled back api (verified), refused web, crashed in the middle of a Lambda rollback, escalated."""
    return _chain([
        (EntryKind.INCIDENT, INCIDENT.to_json()),
        (EntryKind.PLAN, {"source": "playbook", "summary": "roll back api and web",
                          "actions": [{"action_id": "a1", "action": "EcsRollback(prod/api, api:41)"},
                                      {"action_id": "a2", "action": "EcsRollback(prod/web, web:7)"},
                                      {"action_id": "a3", "action": "LambdaRollback(worker, live, 12)"}]}),
        (EntryKind.MODEL, {"model": "claude-sonnet-4", "prompt_version": "planner-v3",
                           "inputs": "incident INC, 2 services, known-good task definitions",
                           "reasoning": "The image tag was never pushed;\nrolling back restores the last image.",
                           "proposals": [{"action_id": "a1", "action": "EcsRollback(prod/api, api:41)",
                                          "reason": "known good"}],
                           "usage": {"input_tokens": 1200, "output_tokens": 300}}),
        (EntryKind.DECISION, {"action_id": "a1", "allowed": True, "rule": "allowlist", "reason": "in scope"}),
        (EntryKind.DECISION, {"action_id": "a2", "allowed": False, "rule": "allowlist",
                              "reason": "service prod/web is not in the policy"}),
        (EntryKind.KILL_SWITCH, {"engaged": False, "source": "env"}),
        (EntryKind.ACTION_STARTED, {"action_id": "a1", "action": "EcsRollback(prod/api, api:41)"}),
        (EntryKind.ACTION_SUCCEEDED, {"action_id": "a1", "detail": "deployment ecs-svc/1 primary"}),
        (EntryKind.VERIFIED, {"action_id": "a1", "ok": True, "evidence": {"running": 3, "desired": 3}}),
        (EntryKind.DECISION, {"action_id": "a3", "allowed": True, "rule": "allowlist", "reason": "in scope"}),
        (EntryKind.ACTION_STARTED, {"action_id": "a3", "action": "LambdaRollback(worker, live, 12)"}),
        (EntryKind.ESCALATED, {"to": "#oncall", "reason": "prod/web refused by policy"}),
    ])


def _table_rows(markdown: str, section: str) -> list[list[str]]:
    """The data rows of the first table after `section`, split on unescaped pipes."""
    body = markdown.split(f"{section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def _section(markdown: str, heading: str) -> str:
    return markdown.split(f"{heading}\n", 1)[1].split("\n#", 1)[0]


@pytest.fixture(scope="module")
def report() -> str:
    """The postmortem of the standard remediation, rendered once."""
    return render_postmortem(INCIDENT, _remediation(), generated_at=GENERATED)


def test_sections_in_order(report: str) -> None:
    positions = [report.index(f"\n{heading}\n") for heading in SECTIONS]
    assert positions == sorted(positions)
    assert report.startswith(f"# Postmortem {INCIDENT.id}: image does not exist: {IMAGE} (2 affected: ")
    assert f"Generated {GENERATED} from 12 journal entries (head {_remediation()[-1].digest[:12]})." in report


def test_summary(report: str) -> None:
    rows = dict(_table_rows(report, "## Summary"))
    assert rows["Incident"] == INCIDENT.id
    assert rows["Cause"] == f"missing_image: {IMAGE}"
    assert rows["Resources"] == "ecs:prod/api, ecs:prod/web"
    assert rows["First seen"] == "2024-05-01T11:55:00+00:00"
    assert (rows["Severity"], rows["Status"]) == ("error", "open")
    assert rows["Outcome"] == "1 action(s) succeeded, 0 failed, 1 interrupted, 1 refusal(s), 1 escalation(s)"


def test_timeline_has_every_entry_in_order(report: str) -> None:
    rows = _table_rows(report, "## Timeline")
    assert [row[0] for row in rows] == [str(n) for n in range(1, 13)]
    assert [row[3] for row in rows] == [e.kind.value for e in _remediation()]
    assert rows[4] == ["5", "2024-05-01T12:00:04+00:00", "watchdog", "decision",
                       "policy REFUSED a2: allowlist: service prod/web is not in the policy"]
    assert rows[8][4] == 'verified a1: postcondition holds: {"desired": 3, "running": 3}'


def test_signals_table_earliest_first(report: str) -> None:
    rows = _table_rows(report, "## Signals")
    assert [(row[0], row[3]) for row in rows] == [("2024-05-01T11:55:00+00:00", "ecs:prod/api"),
                                                  ("2024-05-01T11:58:00+00:00", "ecs:prod/web")]
    assert rows[0][1:3] == ["ECS101", "error"] and rows[0][6] == '{"stopped_tasks": 3}'


def test_actions_table(report: str) -> None:
    rows = {row[0]: row[1:] for row in _table_rows(report, "## Actions")}
    assert rows == {
        "a1": ["EcsRollback(prod/api, api:41)", "succeeded", 'yes: {"desired": 3, "running": 3}', "1.0 s"],
        "a2": ["EcsRollback(prod/web, web:7)", "refused (allowlist)", "not verified", "-"],
        "a3": ["LambdaRollback(worker, live, 12)", "interrupted: started, no outcome recorded", "not verified",
               "-"],
    }


def test_every_refusal_is_a_row(report: str) -> None:
    assert "A refusal is a journal entry, never silence." in report
    assert _table_rows(report, "## Refusals") == [
        ["2024-05-01T12:00:04+00:00", "a2", "allowlist", "service prod/web is not in the policy"]]


def test_model_row(report: str) -> None:
    assert _table_rows(report, "## Model inference") == [[
        "2024-05-01T12:00:02+00:00", "claude-sonnet-4", "planner-v3",
        "incident INC, 2 services, known-good task definitions",
        "a1: EcsRollback(prod/api, api:41) (known good)",
        "The image tag was never pushed;<br>rolling back restores the last image.", "1200 in / 300 out"]]
    assert NO_MODEL not in report


def test_without_a_model_says_so() -> None:
    entries = [e for e in _remediation() if e.kind is not EntryKind.MODEL]
    report = render_postmortem(INCIDENT, entries, generated_at=GENERATED)
    assert f"## Model inference\n\n{NO_MODEL}\n" in report


def test_five_layers_prefilled_from_the_journal(report: str) -> None:
    assert _section(report, "### 1. Trigger").strip() == (
        f"- 2024-05-01T11:55:00+00:00: ECS101 on ecs:prod/api: CannotPullContainerError: {IMAGE} not found")
    assert _section(report, "### 2. Proximate cause").strip() == f"- missing_image on {IMAGE}: {INCIDENT.title}"
    contributing = _section(report, "### 3. Contributing factors")
    assert "- Policy refused a2 (allowlist): service prod/web is not in the policy" in contributing
    assert "- a3 interrupted: started, no outcome recorded" in contributing
    assert "- escalated to #oncall: prod/web refused by policy" in contributing
    assert "kill switch" not in contributing  # a clear kill switch is no contributing factor
    assert "- From the first signal to the first action: 5 min 06 s." in _section(report, "### 4. Systemic gap")
    governance = _section(report, "### 5. Governance")
    assert "- Policy decisions: 3 (2 allowed, 1 refused)." in governance
    assert "- Kill switch engaged 0 time(s)." in governance
    for layer in ["### 3. Contributing factors", "### 4. Systemic gap", "### 5. Governance"]:
        assert _section(report, layer).strip().endswith(f"- {TODO}")
    assert TODO not in _section(report, "### 1. Trigger") + _section(report, "### 2. Proximate cause")


def test_open_questions(report: str) -> None:
    questions = _section(report, "## Open questions")
    assert "- Did a3 take effect? The run stopped after starting it: re-verify before repeating it." in questions
    assert "- Who took the escalation of 2024-05-01T12:00:11+00:00, and what did they do?" in questions
    assert "Is service restored?" not in questions  # a1 was verified
    assert questions.strip().endswith("- What would have stopped this change before it was deployed?")


def test_entries_shaped_by_the_agent() -> None:
    """Actions as Action.to_json() dicts, outcomes with `reason`, a plan of strategies, a token total."""
    rollback = {"kind": "ecs_rollback", "params": {"service": "prod/api", "to": "api:41"},
                "action_id": "ecs_rollback-1a2b", "resource": "ecs:prod/api",
                "description": "roll prod/api back to api:41"}
    page = {"kind": "escalate", "params": {}, "action_id": "escalate-9f", "resource": "ecs:prod/api",
            "description": "page the on-call"}
    entries = _chain([
        (EntryKind.PLAN, {"planner": "playbook", "strategies": [
            {"name": "rollback", "rationale": "known good", "actions": [rollback]},
            {"name": "escalate", "rationale": "last resort", "actions": [page]}]}),
        (EntryKind.MODEL, {"model": "claude", "prompt_version": "v2", "tokens": 1500, "token_budget": 20000,
                           "inputs": {"incident": INCIDENT.id, "tool_calls": ["get_incident"]},
                           "reasoning": "roll back", "proposals": [{**rollback, "reason": "known good"}]}),
        (EntryKind.DECISION, {"action_id": "ecs_rollback-1a2b", "action": rollback, "allowed": True,
                              "rule": "allowed", "reason": "in scope"}),
        (EntryKind.ACTION_STARTED, {"action_id": "ecs_rollback-1a2b", "kind": "ecs_rollback", "action": rollback}),
        (EntryKind.VERIFIED, {"action_id": "ecs_rollback-1a2b", "ok": False, "reason": "0 of 3 running",
                              "evidence": {}}),
        (EntryKind.ACTION_FAILED, {"action_id": "ecs_rollback-1a2b", "kind": "ecs_rollback",
                                   "reason": "not verified: 0 of 3 running"}),
        (EntryKind.KILL_SWITCH, {"action_id": "escalate-9f", "where": "env GUARD_KILL_SWITCH"}),
    ])
    report = render_postmortem(INCIDENT, entries, generated_at=GENERATED)

    timeline = [row[4] for row in _table_rows(report, "## Timeline")]
    assert timeline[0] == "plan by playbook: rollback: roll prod/api back to api:41; escalate: page the on-call"
    assert timeline[-1] == "kill switch engaged (env GUARD_KILL_SWITCH)"
    assert {row[0]: row[1:4] for row in _table_rows(report, "## Actions")} == {
        "ecs_rollback-1a2b": ["roll prod/api back to api:41", "failed: not verified: 0 of 3 running",
                              "NO: 0 of 3 running"],
        "escalate-9f": ["page the on-call", "not started", "not verified"]}
    model = _table_rows(report, "## Model inference")[0]
    assert model[3:] == [f'{{"incident": "{INCIDENT.id}", "tool_calls": ["get_incident"]}}',
                         "ecs_rollback-1a2b: roll prod/api back to api:41 (known good)", "roll back",
                         "1500 of 20000 budget"]
    assert "- kill switch engaged (env GUARD_KILL_SWITCH)" in _section(report, "### 3. Contributing factors")
    assert "- Kill switch engaged 1 time(s)." in _section(report, "### 5. Governance")
    assert "- Why did ecs_rollback-1a2b's postcondition fail?" in _section(report, "## Open questions")


def test_incident_comes_from_the_journal_when_not_given() -> None:
    assert render_postmortem(None, _remediation(), generated_at=GENERATED) == \
        render_postmortem(INCIDENT, _remediation(), generated_at=GENERATED)


def test_unknown_incident_leaves_the_facts_to_the_responders() -> None:
    entries = _chain([(EntryKind.NOTE, {"text": "paged by a customer"}),
                      (EntryKind.ACTION_STARTED, {"action_id": "x1", "action": "Redeploy(prod/api)"}),
                      (EntryKind.ACTION_FAILED, {"action_id": "x1", "error": "AccessDenied"})])
    report = render_postmortem(None, entries, generated_at=GENERATED)

    assert report.startswith("# Postmortem: unidentified incident\n")
    for heading in SECTIONS:
        assert f"\n{heading}\n" in report
    assert _section(report, "### 1. Trigger").strip() == f"- {TODO}"
    assert _section(report, "### 2. Proximate cause").strip() == f"- {TODO}"
    assert "- x1 failed: AccessDenied" in _section(report, "### 3. Contributing factors")
    assert {row[0]: row[2] for row in _table_rows(report, "## Actions")} == {"x1": "failed: AccessDenied"}
    assert "No signal was recorded." in report and "The policy gate refused nothing." in report
    questions = _section(report, "## Open questions")
    assert "Which incident is this?" in questions and "Is service restored?" in questions


def test_empty_journal() -> None:
    report = render_postmortem(None, [], generated_at=GENERATED)
    assert "from 0 journal entries (empty journal)" in report and "The journal is empty." in report
    assert "No action was proposed or taken." in report and NO_MODEL in report


def test_deterministic() -> None:
    first = render_postmortem(INCIDENT, _remediation(), generated_at=GENERATED)
    assert render_postmortem(INCIDENT, _remediation(), generated_at=GENERATED) == first
    later = render_postmortem(INCIDENT, _remediation(), generated_at="2024-05-02T00:00:00+00:00")
    assert later.replace("2024-05-02T00:00:00+00:00", GENERATED) == first


def test_table_cells_are_escaped() -> None:
    entries = _chain([(EntryKind.DECISION, {"action_id": "a|1", "allowed": False, "rule": "caps",
                                            "reason": "3 actions | cap 3\r\nescalate"})])
    report = render_postmortem(None, entries, generated_at=GENERATED)

    assert _table_rows(report, "## Refusals") == [
        [entries[0].at, "a\\|1", "caps", "3 actions \\| cap 3<br>escalate"]]
    for line in report.splitlines():
        if line.startswith("|"):
            assert line.endswith("|")


def test_credentials_never_printed() -> None:
    planted = _chain([
        (EntryKind.INCIDENT, INCIDENT.to_json()),
        (EntryKind.MODEL, {"model": "claude", "prompt_version": "v1",
                           "inputs": {"headers": {"Authorization": "Bearer abcdefghijkl"}, "x-api-key": "plain"},
                           "reasoning": "I found ghp_CANARY123 in the logs",
                           "proposals": [], "usage": {"input_tokens": 10, "output_tokens": 2}}),
        (EntryKind.NOTE, {"text": "clone https://bot:hunter2@github.com/org/repo",
                          "github_token": "ghp_CANARY123",
                          "nested": [{"ANTHROPIC_API_KEY": "sk-ant-CANARY", "aws": {"SecretAccessKey": "x" * 40}}],
                          "password": None, "leak": "sk-ant-CANARY", "key": "AKIAABCDEFGHIJKLMNOP"}),
        (EntryKind.ACTION_FAILED, {"action_id": "a1", "error": "auth failed for token ghp_CANARY123"}),
    ])
    report = render_postmortem(None, planted, generated_at=GENERATED)

    for secret in ["CANARY", "abcdefghijkl", "hunter2", "x" * 40, "AKIAABCDEFGHIJKLMNOP", "plain"]:
        assert secret not in report
    assert REDACTED in report
    assert "https://[redacted]@github.com/org/repo" in report
    assert IMAGE in report  # cause_key is an identifier, never redacted
    assert "10 in / 2 out" in report  # token counts are not tokens


def test_redact_by_key_name_and_by_value() -> None:
    doc = {"token": "t", "apiKey": "k", "cause_key": "img", "input_tokens": 5, "sessionToken": "s", "token_budget": 9,
           "evidence": [{"Authorization": "Basic x"}, "ghp_CANARY123 here"], "secrets": ["arn:aws:sm:x"]}
    assert redact(doc) == {"token": REDACTED, "apiKey": REDACTED, "cause_key": "img", "input_tokens": 5,
                           "token_budget": 9,
                           "sessionToken": REDACTED, "evidence": [{"Authorization": REDACTED}, f"{REDACTED} here"],
                           "secrets": ["arn:aws:sm:x"]}
    assert scrub("sha256:" + "a" * 64) == "sha256:" + "a" * 64
    assert scrub("commit 3f2c1a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a") == \
        "commit 3f2c1a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a"


def test_a_resolved_recurrence_says_when_it_was_resolved_and_what_it_recurs_after() -> None:
    done = replace(INCIDENT, status=IncidentStatus.RESOLVED, last_seen="2024-05-01T12:30:00+00:00",
                    previous="INC-0123456789ab")
    rows = dict(_table_rows(render_postmortem(done, _remediation(), generated_at=GENERATED), "## Summary"))
    assert rows["Status"] == "resolved at 2024-05-01T12:30:00+00:00"
    assert rows["Previous incident"].startswith("INC-0123456789ab (resolved")
    told = dict(_table_rows(render_postmortem(INCIDENT, _remediation(), generated_at=GENERATED, status="x"),
                            "## Summary"))
    assert told["Status"] == "x" and "Previous incident" not in told

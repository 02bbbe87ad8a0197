"""The demo replay, non-interactively: every stage's outcome is asserted, not just the exit code."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from guard.exitcodes import ExitCode
from guard.sandbox.demo import BAD_SHA, EXPECTED, NEXT_SHA, replay

pytestmark = pytest.mark.slow


def test_replay_end_to_end() -> None:
    out = io.StringIO()
    result = replay(Console(file=out, width=200, emoji=False))
    assert result.stages == EXPECTED
    # a. the gate blocks the broken deploy, naming the cancelled run and every missing image
    broken = result.reports["broken deploy"]
    assert sorted((f.check_id, f.target) for f in broken.findings) == [
        ("IMG001", "module.api.aws_ecs_task_definition.prod_api"),
        ("IMG001", "module.thumbnailer.aws_lambda_function.thumbnailer"),
        ("IMG001", "module.worker.aws_ecs_task_definition.prod_worker"),
        ("PRV001", f"acme/shop@{BAD_SHA[:12]}"),
    ]
    assert result.reports["green deploy"].findings == ()
    # b. bypassed: ECS changed, the Lambda change rejected, one coalesced incident in one sweep
    assert result.lambda_rejected.startswith("ImageNotFoundException")
    [incident] = result.sweeps["gate bypassed"].incidents
    assert incident.resources == ("ecs:prod/api", "ecs:prod/worker") and incident.cause_key.endswith(BAD_SHA[:7])
    assert [i.id for i in result.sweeps["gate bypassed"].triage.opened] == [incident.id]
    # c. tasks restart: still the one incident, not raised again
    restart = result.sweeps["tasks restart"]
    assert restart.triage.opened == () and [i.id for i in restart.incidents] == [incident.id]
    # d. the agent reruns the cancelled build, verifies the image, redeploys, verifies steady state
    fixed = result.remediations["agent: rerun and redeploy"]
    assert fixed.status == "repaired"
    assert [(r.action["kind"], r.status) for r in fixed.results] == [
        ("rerun_build", "verified"), ("redeploy", "verified"), ("redeploy", "verified")]
    assert [i.id for i in result.sweeps["after repair"].triage.resolved] == [incident.id]
    # d'. when the rerun fails, it rolls back to the known-good revision instead
    rolled = result.remediations["agent: rollback when the rerun fails"]
    assert [(r.action["kind"], r.status) for r in rolled.results] == [
        ("rerun_build", "failed"), ("ecs_rollback", "verified")]
    assert rolled.results[1].action["params"]["task_definition"].endswith("prod-api:2")
    assert any(NEXT_SHA[:7] in i.cause_key for i in result.sweeps["second bad deploy"].incidents)
    # the latent hazard is reported before any task restarts
    [latent] = result.sweeps["latent hazard"].incidents
    assert latent.latent and latent.resources == ("ecs:prod/api", "ecs:prod/worker")
    # e. the postmortem is written from the journal
    assert result.postmortem.startswith("# Postmortem") and "rerun_build" in result.postmortem
    assert "Five-layer" in result.postmortem
    assert len(result.notifications) >= 3
    text = out.getvalue()
    assert "BLOCKED" in text and "PASS" in text and "repaired" in text
    assert result.stages["agent: rerun and redeploy"] is ExitCode.CLEAN

"""The demo replay, non-interactively: every stage's outcome is asserted, not just the exit code."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from guard.exitcodes import ExitCode
from guard.sandbox.aws import DEFAULT_ACCOUNT, DEFAULT_REGION
from guard.sandbox.demo import API_CALLS, BAD_SHA, EXPECTED, GOOD_SHA, NEXT_SHA, TERRAFORM, replay
from guard.sandbox.terraform import unavailable_reason

pytestmark = pytest.mark.slow


REGISTRY = f"{DEFAULT_ACCOUNT}.dkr.ecr.{DEFAULT_REGION}.amazonaws.com"


def _terraform_state(workdir: Path) -> dict[str, dict[str, object]]:
    """Each resource instance in terraform's own state file: address -> attributes."""
    doc = json.loads((workdir / "terraform.tfstate").read_text())
    return {f"{r['type']}.{r['name']}" + (f"[{json.dumps(i['index_key'])}]" if "index_key" in i else ""):
            i["attributes"] for r in doc["resources"] for i in r["instances"]}


def test_replay_end_to_end(tmp_path: Path) -> None:
    out = io.StringIO()
    result = replay(Console(file=out, width=200, emoji=False), tmp_path)
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
    assert result.after_bypass == {"ecs:prod/api": f"{REGISTRY}/shop/app:{BAD_SHA[:7]}",
                                   "ecs:prod/worker": f"{REGISTRY}/shop/app:{BAD_SHA[:7]}",
                                   "lambda:thumbnailer": f"{REGISTRY}/thumbnailer:{GOOD_SHA[:7]}"}
    text = out.getvalue()
    if unavailable_reason() is None:  # this machine image: the real partial apply, its state in the directory
        assert result.bypass == TERRAFORM and "real terraform apply" in text
        assert "terraform apply exited 1: Error: updating Lambda Function (thumbnailer) code" in text
        state = _terraform_state(tmp_path / "terraform")
        assert [str(state[f'aws_ecs_service.prod["{svc}"]']["task_definition"]).rsplit("/", 1)[1]
                for svc in ("api", "worker")] == ["prod-api:2", "prod-worker:2"]
        # the provider keeps the refused value in state: terraform believes what AWS (above) never applied
        assert state["aws_lambda_function.thumbnailer"]["image_uri"] == f"{REGISTRY}/thumbnailer:{BAD_SHA[:7]}"
    else:
        assert result.bypass == API_CALLS and f"the same API calls ({unavailable_reason()})" in text
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
    # the forecast names the lifecycle rule while the image still exists ...
    [forecast] = result.sweeps["lifecycle forecast"].incidents
    assert forecast.latent and forecast.severity == "warning"
    assert forecast.resources == ("ecs:prod/api", "ecs:prod/worker")
    digest = forecast.cause_key.rsplit("@", 1)[1]
    assert {(s.watcher_id, s.evidence["rule_description"], s.evidence["pushes_left"]) for s in forecast.signals} == {
        ("IMG101", "keep the last 10 images", 4)}
    # ... then the policy's run expires it (with the older, unused image) after those 4 pushes ...
    assert [repo for repo, _ in result.expired] == ["shop/app", "shop/app"] and ("shop/app", digest) in result.expired
    # ... and the latent hazard is reported before any task restarts; the forecast is resolved
    [latent] = result.sweeps["latent hazard"].incidents
    assert latent.latent and latent.resources == ("ecs:prod/api", "ecs:prod/worker")
    assert latent.cause_key.endswith(f"shop/app:{BAD_SHA[:7]}")
    assert [i.id for i in result.sweeps["latent hazard"].triage.resolved] == [forecast.id]
    # e. the postmortem is written from the journal
    assert result.postmortem.startswith("# Postmortem") and "rerun_build" in result.postmortem
    assert "Five-layer" in result.postmortem
    assert len(result.notifications) >= 3
    assert "BLOCKED" in text and "PASS" in text and "repaired" in text
    assert result.stages["agent: rerun and redeploy"] is ExitCode.CLEAN

"""The demo replay, non-interactively: each stage's outcome is asserted, not just the exit code."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from guard.exitcodes import ExitCode
from guard.sandbox.demo import BAD_SHA, replay

pytestmark = pytest.mark.slow


def test_replay_blocks_the_broken_deploy_with_the_exact_reasons() -> None:
    out = io.StringIO()
    result = replay(Console(file=out, width=200, emoji=False))
    assert result.stages == {"green deploy": ExitCode.CLEAN, "broken deploy": ExitCode.FINDINGS,
                             "latent hazard": ExitCode.FINDINGS, "tasks restart": ExitCode.FINDINGS}
    broken = result.reports["broken deploy"]
    assert sorted((f.check_id, f.target) for f in broken.findings) == [
        ("IMG001", "module.api.aws_ecs_task_definition.prod_api"),
        ("IMG001", "module.thumbnailer.aws_lambda_function.thumbnailer"),
        ("IMG001", "module.worker.aws_ecs_task_definition.prod_worker"),
        ("PRV001", f"acme/shop@{BAD_SHA[:12]}"),
    ]
    [prv] = [f for f in broken.findings if f.check_id == "PRV001"]
    assert prv.evidence["state"] == "cancelled"
    assert result.reports["green deploy"].findings == ()
    [latent] = result.sweeps["latent hazard"].incidents
    assert latent.latent and latent.resources == ("ecs:prod/api",)
    assert [i.id for i in result.sweeps["latent hazard"].triage.opened] == [latent.id]
    restart = result.sweeps["tasks restart"]
    assert restart.triage.opened == () and [i.id for i in restart.triage.updated] == [latent.id]
    assert not restart.incidents[0].latent
    assert [m["text"].split(" ")[1] for m in result.notifications] == [latent.id, latent.id]
    text = out.getvalue()
    assert "BLOCKED" in text and "concluded cancelled" in text and "PASS" in text

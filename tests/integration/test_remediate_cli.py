"""The remediation verbs end to end through the CLI: remediate, rollback, postmortem, iam-policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import main
from tests.support.remedyrun import World, cli_world, deploy


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    return cli_world(world, monkeypatch, "observe")


def test_remediate_defaults_to_observe_and_postmortem_renders(cli: World) -> None:
    bad = deploy(cli, "broken")
    [inc] = cli.sweep().incidents
    out = CliRunner().invoke(main, ["remediate", "--format", "json"])
    assert out.exit_code == 1, out.output
    [r] = json.loads(out.stdout)["remediations"]
    assert r["mode"] == "observe" and r["status"] == "refused" and r["incident_id"] == inc.id
    assert cli.service()["taskDefinition"] == bad
    pm = CliRunner().invoke(main, ["postmortem", inc.id])
    assert pm.exit_code == 0 and "# Postmortem" in pm.stdout and "observe mode" in pm.stdout
    assert CliRunner().invoke(main, ["remediate", "INC-doesnotexist"]).exit_code == 2


def test_rollback_asks_then_waits_for_steady(cli: World, monkeypatch: pytest.MonkeyPatch) -> None:
    deploy(cli, "broken")
    no = CliRunner().invoke(main, ["rollback", "--service", "prod/api"], input="n\n")
    assert no.exit_code == 1 and "not confirmed" in no.stdout
    cli.sim.tick()
    import guard.actions as actions

    monkeypatch.setattr(actions.time, "sleep", lambda s: cli.sim.tick())
    yes = CliRunner().invoke(main, ["rollback", "--service", "prod/api", "--yes"])
    assert yes.exit_code == 0, yes.output
    assert "done: steady" in yes.stdout and cli.service()["taskDefinition"].endswith("api:1")
    bad = CliRunner().invoke(main, ["rollback", "--service", "prod/api", "--lambda", "x"])
    assert bad.exit_code == 2


def test_iam_policy_names_exact_services(cli: World) -> None:
    out = CliRunner().invoke(main, ["iam-policy", "--role", "remediate"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    [stmt] = [s for s in doc["Statement"] if s["Sid"] == "RollbackServices"]
    assert stmt["Resource"] == ["arn:aws:ecs:us-east-1:123456789012:service/prod/api",
                                "arn:aws:ecs:us-east-1:123456789012:service/prod/worker"]
    assert not any("Delete" in a for s in doc["Statement"] for a in s["Action"])


def test_remediation_config_errors_exit_2(cli: World, tmp_path: Path) -> None:
    (cli.root / "guard.toml").write_text('[remediate]\nmode = "yolo"\n')
    out = CliRunner().invoke(main, ["remediate"])
    assert out.exit_code == 2 and "observe, propose or act" in out.stderr
    (cli.root / "guard.toml").write_text('[[remediate.allow]]\nresource = "ecs:*"\nactions = ["delete_service"]\n')
    out = CliRunner().invoke(main, ["remediate"])
    assert out.exit_code == 2 and "unknown action kind" in out.stderr

"""A cluster named in the scope that does not exist: the sweep says so, sweeps the rest, and fails closed (exit 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.watchrun import cli_on_steady_api


def test_a_missing_cluster_is_named_and_the_others_are_still_swept(aws: Scenario, sim: EcsSimulator, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cli_on_steady_api(aws, sim, tmp_path, monkeypatch)
    args = ["watch", "--once", "--state", str(tmp_path / "s"), "--cluster", "prod", "--cluster", "nope"]
    out = CliRunner().invoke(main, [*args, "--format", "json"])
    assert out.exit_code == 3, out.output
    doc = json.loads(out.stdout)
    [unverified] = doc["unverified"]
    assert unverified["target"] == "ecs:nope/*" and unverified["error_code"] == "ClusterNotFound"
    assert "cluster nope does not exist in us-east-1: check --cluster or [watch] clusters" in unverified["reason"]
    assert doc["summary"]["services"] == 1  # prod/api was still swept
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 3 and "ClusterNotFoundException" not in table.output
    assert "cluster nope does not exist" in " ".join(table.output.split())

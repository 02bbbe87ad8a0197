"""Every JSON report (check, watch, verify, remediate) validates against docs/schema/report-v1.schema.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition
from tests.support.remedyrun import World, deploy
from tests.support.watchrun import cli_on_steady_api

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "schema" / "report-v1.schema.json").read_text())


def _valid(doc: dict[str, Any], kind: str) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(doc, SCHEMA)
    jsonschema.validate(doc, {**SCHEMA, "oneOf": [{"$ref": f"#/$defs/{kind}"}]})


def test_check_reports_validate(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    good = export_task_definition(aws, aws.task_definition("api", [("app", f"{repo}:v1")]), tmp_path / "good.json")
    bad = export_task_definition(aws, aws.task_definition("api", [("app", f"{repo}:gone")]), tmp_path / "bad.json")
    for path, code in ((good, 0), (bad, 1)):
        out = guard("--task-def", path)
        assert out.code == code
        _valid(out.doc, "checkReport")


def test_watch_reports_validate(aws: Scenario, sim: EcsSimulator, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    cli_on_steady_api(aws, sim, tmp_path, monkeypatch)
    args = ["watch", "--once", "--format", "json", "--state", str(tmp_path / "s")]
    first = CliRunner().invoke(main, args)
    aws.delete_image("shop/api", tag="v1")
    second = CliRunner().invoke(main, args)
    assert (first.exit_code, second.exit_code) == (0, 1)
    for out in (first, second):
        _valid(json.loads(out.stdout), "watchReport")


def test_remediate_report_validates(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world.root)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (world.root / "guard.toml").write_text(f'[watch]\nstate = "{world.root / "state"}"\n[notify]\nheartbeat = false\n')
    deploy(world, "broken")
    world.sweep()
    out = CliRunner().invoke(main, ["remediate", "--dry-run", "--format", "json"])
    doc = json.loads(out.stdout)
    assert doc["remediations"]
    _valid(doc, "remediateReport")


def test_verify_report_validates(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world.root)
    out = CliRunner().invoke(main, ["verify", "--service", "prod/api", "--format", "json"])
    assert out.exit_code == 0, out.output
    _valid(json.loads(out.stdout), "verifyReport")


def test_a_report_missing_a_contract_key_is_refused() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "findings": []}, SCHEMA)

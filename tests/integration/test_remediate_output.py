"""What a person reads from `guard remediate` and `guard rollback`: lines that fit the terminal, words kept whole."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from guard.cli import main
from tests.support.remedyrun import World, cli_world, deploy


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    return cli_world(world, monkeypatch, "act")


def _run(args: list[str], width: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("COLUMNS", str(width))
    out = CliRunner().invoke(main, args)
    assert out.exit_code in (0, 1), out.output
    return out.stdout.splitlines()


def _words(lines: list[str]) -> set[str]:
    return {word for line in lines for word in line.split()}


@pytest.mark.parametrize("width", [80, 160])
def test_remediate_fits_the_terminal_and_never_cuts_a_word(cli: World, width: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    deploy(cli, "broken")
    [inc] = cli.sweep().incidents
    doc = json.loads(CliRunner().invoke(main, ["remediate", "--dry-run", "--format", "json"]).stdout)
    [report] = doc["remediations"]
    texts = [r["reason"] for r in report["results"]] + [r["action"]["description"] for r in report["results"]]
    assert max(len(t) for t in texts) > 80  # something must wrap at 80 columns
    lines = _run(["remediate", "--dry-run"], width, monkeypatch)
    assert all(len(line) <= width for line in lines), lines
    assert re.fullmatch(rf"{inc.id} refused \(mode act, dry run\)", lines[0])  # the ID and outcome on one line
    words = _words(lines)
    assert all(set(text.split()) <= words for text in texts)  # each word whole, wherever the line broke
    assert f"guard postmortem {inc.id}" in [line.strip() for line in lines]
    if width == 160:
        assert all(any(text in line for line in lines) for text in texts)  # nothing wraps when it fits


@pytest.mark.parametrize("width", [80, 160])
def test_rollback_fits_the_terminal(cli: World, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    deploy(cli, "broken")
    cli.sim.tick()
    import guard.actions as actions

    monkeypatch.setattr(actions.time, "sleep", lambda s: cli.sim.tick())
    lines = _run(["rollback", "--service", "prod/api", "--yes"], width, monkeypatch)
    assert all(len(line) <= width for line in lines), lines
    words = _words(lines)
    assert "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1" in words  # an ARN is never split
    [journal] = [w for w in words if re.fullmatch(r"MAN-[0-9a-f]{12}\)", w)]  # nor an ID
    [done] = [n for n, line in enumerate(lines) if line.startswith("done: steady")]
    assert journal in (lines[done] if width == 160 else lines[-1])
    assert all(line.startswith("  ") for line in lines[done + 1:])  # continuation lines are indented

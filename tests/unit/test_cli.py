"""The CLI shell itself: verbs that need an optional part say how to get it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from guard.cli import hoist_global_options, main


def test_demo_without_the_sandbox_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def no_moto(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "moto" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", no_moto)
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 2
    assert "pip install 'deploy-guard[sandbox]'" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(("args", "expected"), [
    (["check", "--config", "g.toml", "--plan", "p.json"], ["--config", "g.toml", "check", "--plan", "p.json"]),
    (["--debug", "watch", "--region=eu-west-1", "--once"], ["--debug", "--region=eu-west-1", "watch", "--once"]),
    (["--config", "check", "watch", "--profile", "p"], ["--config", "check", "--profile", "p", "watch"]),
    (["check", "--plan", "p.json", "--", "--debug"], ["check", "--plan", "p.json", "--", "--debug"]),
    (["--help"], ["--help"]),
])
def test_global_options_are_accepted_after_the_verb(args: list[str], expected: list[str]) -> None:
    assert hoist_global_options(args, {"check", "watch"}) == expected


def test_unknown_profile_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    result = CliRunner().invoke(main, ["iam-policy", "--profile", "nosuch"])
    assert result.exit_code == 2 and "AWS profile 'nosuch'" in result.stderr


def test_notify_test_without_routes_fails_and_says_what_to_add(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["notify", "--test"])
    assert result.exit_code == 1 and "no routes configured" in result.stderr and "[[notify.routes]]" in result.stderr


def test_checks_lists_every_rule_and_the_own_outcomes_as_a_table() -> None:
    from guard.docs import render_catalogue
    from guard.registry import all_rules

    table = CliRunner().invoke(main, ["checks"], env={"COLUMNS": "80"})
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for rule_id in [*all_rules(), "GRD000", "GRD001", "GRD002"]:
        assert any(line.startswith(rule_id) for line in lines), rule_id
    markdown = CliRunner().invoke(main, ["checks", "--format", "markdown"])
    assert markdown.stdout == render_catalogue() and "| GRD002 |" in markdown.stdout

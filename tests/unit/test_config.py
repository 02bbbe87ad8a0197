"""Configuration loading and validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from guard.actions import action_types
from guard.config import Allow, GuardConfig, RemediateConfig, check_action_kinds, load_config
from guard.models import InputError, Severity


def test_defaults_without_files(tmp_path: Path) -> None:
    assert load_config(cwd=tmp_path) == GuardConfig()


def test_guard_toml(tmp_path: Path) -> None:
    (tmp_path / "guard.toml").write_text(
        'fail_on = "warning"\nbuild_workflows = ["build.yml"]\n[severity]\nIMG003 = "error"\n'
        '[accounts]\n"222222222222" = "arn:aws:iam::222222222222:role/guard-read"\n'
        '[parity]\nreplace = [["staging", "prod"]]\nignore = ["env:*.DEBUG"]\n')
    cfg = load_config(cwd=tmp_path)
    assert cfg.fail_on is Severity.WARNING
    assert cfg.severity == {"IMG003": Severity.ERROR}
    assert cfg.build_workflows == ("build.yml",)
    assert cfg.account_roles == {"222222222222": "arn:aws:iam::222222222222:role/guard-read"}
    assert cfg.parity.replace == (("staging", "prod"),)
    assert cfg.parity.ignore == ("env:*.DEBUG",)


def test_pyproject_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname="x"\n[tool.guard]\ndisabled = ["IMG003"]\n')
    assert load_config(cwd=tmp_path).disabled == frozenset({"IMG003"})


@pytest.mark.parametrize(("text", "needle"), [
    ("fail_on = 'fatal'", "fail_on"),
    ("typo_key = 1", "unknown setting"),
    ("[accounts]\nabc = 'arn:x'", "12-digit"),
    ("[parity]\nreplace = [['a']]", "pairs"),
    ("disabled = 'IMG001'", "list of strings"),
    ("not toml = = =", "not valid TOML"),
])
def test_bad_config_is_an_input_error(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "guard.toml").write_text(text)
    with pytest.raises(InputError, match=needle):
        load_config(cwd=tmp_path)


def test_explicit_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_config_is_a_leaf() -> None:
    code = ("import guard.config, sys; assert not any(m.startswith(('botocore', 'boto3', 'rich', 'github', "
            "'anthropic')) for m in sys.modules), sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], check=False)
    assert done.returncode == 0, done.stderr


def test_allow_list_kinds_are_checked_against_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "guard.toml").write_text(
        '[[remediate.allow]]\nresource = "ecs:prod/*"\nactions = ["ecs_rollback"]\n'
        '[[remediate.allow]]\nresource = "ecs:*"\nactions = ["redeploy", "delete_service", "drop_table"]\n')
    config = load_config(cwd=tmp_path)
    assert config.remediate.allow[1].actions == ("redeploy", "delete_service", "drop_table")
    with pytest.raises(InputError) as caught:
        check_action_kinds(config, ("ecs_rollback", "redeploy", "escalate"))
    assert str(caught.value) == (f"{tmp_path / 'guard.toml'}: unknown action kind(s) ['delete_service', 'drop_table']; "
                                 "known: ['ecs_rollback', 'escalate', 'redeploy']")
    check_action_kinds(config, ("ecs_rollback", "redeploy", "delete_service", "drop_table"))


def test_every_registered_action_kind_passes_the_check() -> None:
    config = GuardConfig(remediate=RemediateConfig(allow=(Allow("*", tuple(action_types())),)))
    check_action_kinds(config, action_types())

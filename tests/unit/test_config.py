"""Configuration loading and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.config import GuardConfig, load_config
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

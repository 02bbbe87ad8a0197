"""The CLI shell itself: verbs that need an optional part say how to get it."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from click.testing import CliRunner

from guard.cli import main


def test_demo_without_the_sandbox_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def no_moto(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "moto" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", no_moto)
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 2
    assert "pip install 'deploy-guard[sandbox]'" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)

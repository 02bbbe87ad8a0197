"""Check discovery, ID rules and the generated catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from guard.docs import render_catalogue
from guard.registry import all_checks, all_rules, all_watchers

ROOT = Path(__file__).resolve().parents[2]


def test_every_check_has_metadata_and_a_matching_module_name() -> None:
    checks = all_checks()
    assert {"IMG001", "IMG002", "IMG003", "PRV001", "CFG001", "REF001", "REF002", "REF003", "TFP001"} <= set(checks)
    for cid, cls in all_rules().items():
        assert re.fullmatch(r"[A-Z]{3}\d{3}", cid)
        assert cls.__module__.rsplit(".", 1)[-1].startswith(cid.lower() + "_"), cls.__module__
        assert cls.title and cls.proves and cls.cannot_prove and cls.__doc__


def test_watchers_are_registered_apart_from_checks() -> None:
    assert {"ECS101", "ECS102", "ECS103", "ECS104", "ECS105", "LMB101", "LMB102"} <= set(all_watchers())
    assert not set(all_watchers()) & set(all_checks())


def test_every_rule_has_a_test_module() -> None:
    for cls in all_rules().values():
        name = cls.__module__.rsplit(".", 1)[-1]
        assert (ROOT / "tests" / "checks" / f"test_{name}.py").is_file(), f"no tests/checks/test_{name}.py"


def test_catalogue_is_up_to_date() -> None:
    assert (ROOT / "docs" / "checks.md").read_text() == render_catalogue(), "run `make docs`"

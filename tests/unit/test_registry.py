"""Check discovery, ID rules and the generated catalogue."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from guard.docs import render_catalogue
from guard.registry import RegistryError, all_checks, all_rules, all_watchers

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


def _package(root: Path, name: str, modules: dict[str, str]) -> str:
    """A throwaway package of check modules under `root` (on sys.path), each module a check class body."""
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    header = ("from __future__ import annotations\nfrom guard.check import Check\n"
              "from checks.predeploy.img001_image_exists import ImageExists\n\n\n")
    for module, body in modules.items():
        (root / name / f"{module}.py").write_text(header + body)
    return name


def _check(cls: str, rule_id: str) -> str:
    return f"class {cls}(Check):\n    id = {rule_id!r}\n\n    def run(self, plan, ctx):\n        return []\n"


def test_discovery_skips_abstract_and_foreign_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = _package(tmp_path, "only_one_check", {
        "base": "class Abstract(Check):\n    pass\n",
        "zzz001_one": _check("One", "ZZZ001"),
    })
    assert [(k, v.__name__) for k, v in all_rules(package).items()] == [("ZZZ001", "One")]


def test_duplicate_ids_fail_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = _package(tmp_path, "twin_checks", {"a": _check("A", "ZZZ002"), "b": _check("B", "ZZZ002")})
    with pytest.raises(RegistryError, match=r"duplicate ID ZZZ002: twin_checks\.a\.A and twin_checks\.b\.B"):
        all_rules(package)


def test_malformed_ids_fail_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = _package(tmp_path, "bad_id_checks", {"a": _check("A", "ZZ2")})
    with pytest.raises(RegistryError, match="malformed ID 'ZZ2'"):
        all_rules(package)

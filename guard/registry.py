"""Discovers checks and watchers by walking the `checks` package; a duplicate ID fails at load."""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache
from typing import Any

from guard.check import Check
from guard.watcher import Watcher

_ID = re.compile(r"^[A-Z]{3}\d{3}$")


class RegistryError(Exception):
    """Two rules share an ID, or an ID is malformed."""


def _subclasses(cls: type) -> list[type]:
    out: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


@cache
def all_rules(package: str = "checks") -> dict[str, type[Any]]:
    """Import every module under `package`; return every concrete check and watcher by ID, sorted."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        importlib.import_module(info.name)
    found: dict[str, type[Any]] = {}
    for cls in _subclasses(Check) + _subclasses(Watcher):
        if not cls.__module__.startswith(f"{package}.") or getattr(cls, "__abstractmethods__", None):
            continue
        rule_id = getattr(cls, "id", "")
        if not _ID.match(rule_id):
            raise RegistryError(f"{cls.__module__}.{cls.__name__}: malformed ID {rule_id!r}")
        if rule_id in found:
            other = found[rule_id]
            raise RegistryError(f"duplicate ID {rule_id}: {other.__module__} and {cls.__module__}")
        found[rule_id] = cls
    return dict(sorted(found.items()))


def all_checks(package: str = "checks") -> dict[str, type[Check]]:
    """Pre-deploy checks by ID."""
    return {k: v for k, v in all_rules(package).items() if issubclass(v, Check)}


def all_watchers(package: str = "checks") -> dict[str, type[Watcher]]:
    """Post-deploy watchers by ID."""
    return {k: v for k, v in all_rules(package).items() if issubclass(v, Watcher)}

"""Discovers checks by walking the `checks` package; a duplicate ID fails at load."""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache

from guard.check import Check

_ID = re.compile(r"^[A-Z]{3}\d{3}$")


class RegistryError(Exception):
    """Two checks share an ID, or an ID is malformed."""


def _subclasses(cls: type) -> list[type[Check]]:
    out: list[type[Check]] = []
    sub: type[Check]
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


@cache
def all_checks(package: str = "checks") -> dict[str, type[Check]]:
    """Import every module under `package` and return its concrete checks by ID, sorted."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        importlib.import_module(info.name)
    found: dict[str, type[Check]] = {}
    for cls in _subclasses(Check):
        if not cls.__module__.startswith(f"{package}.") or getattr(cls, "__abstractmethods__", None):
            continue
        if not _ID.match(cls.id):
            raise RegistryError(f"{cls.__module__}.{cls.__name__}: malformed check ID {cls.id!r}")
        if cls.id in found:
            other = found[cls.id]
            raise RegistryError(f"duplicate check ID {cls.id}: {other.__module__} and {cls.__module__}")
        found[cls.id] = cls
    return dict(sorted(found.items()))

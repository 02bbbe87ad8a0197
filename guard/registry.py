"""Discovers checks and watchers by walking the `checks` package; a duplicate ID fails at load."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from guard.check import Check
from guard.discovery import DiscoveryError, discover
from guard.watcher import Watcher

_ID = re.compile(r"^[A-Z]{3}\d{3}$")


class RegistryError(DiscoveryError):
    """Two rules share an ID, or an ID is malformed."""


def _rule_id(cls: type[Any]) -> str:
    rule_id = getattr(cls, "id", "")
    if not _ID.match(rule_id):
        raise RegistryError(f"{cls.__module__}.{cls.__name__}: malformed ID {rule_id!r}")
    return rule_id


@cache
def all_rules(package: str = "checks") -> dict[str, type[Any]]:
    """Import every module under `package`; return every concrete check and watcher by ID, sorted."""
    return discover(package, (Check, Watcher), _rule_id, what="ID", error=RegistryError)


def all_checks(package: str = "checks") -> dict[str, type[Check]]:
    """Pre-deploy checks by ID."""
    return {k: v for k, v in all_rules(package).items() if issubclass(v, Check)}


def all_watchers(package: str = "checks") -> dict[str, type[Watcher]]:
    """Post-deploy watchers by ID."""
    return {k: v for k, v in all_rules(package).items() if issubclass(v, Watcher)}

"""Discovery in one place: import every module of a package and collect its concrete subclasses of given bases."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DiscoveryError(Exception):
    """Two discovered classes share a key."""


def _subclasses(cls: type[T]) -> list[type[T]]:
    out: list[type[T]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def discover(package: str, bases: tuple[type[T], ...], key: Callable[[type[T]], str], *, what: str = "key",
             error: type[Exception] = DiscoveryError) -> dict[str, type[T]]:
    """Concrete subclasses of `bases` defined under `package` (every module imported), by `key`, sorted.

    Classes defined outside the package and abstract classes are skipped; two classes with the same key
    raise `error`, naming both.
    """
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        importlib.import_module(info.name)
    found: dict[str, type[T]] = {}
    for base in bases:
        for cls in _subclasses(base):
            inside = cls.__module__ == package or cls.__module__.startswith(f"{package}.")
            if not inside or inspect.isabstract(cls) or cls in found.values():
                continue
            name = key(cls)
            other = found.setdefault(name, cls)
            if other is not cls:
                raise error(f"duplicate {what} {name}: {other.__module__}.{other.__qualname__} and "
                            f"{cls.__module__}.{cls.__qualname__}")
    return dict(sorted(found.items()))

"""`guard.toml` or `[tool.guard]` in pyproject.toml, validated into a frozen GuardConfig."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.models import InputError, Severity


@dataclass(frozen=True)
class ParityConfig:
    """Declared, expected differences between staging and prod."""

    replace: tuple[tuple[str, str], ...] = ()
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class GuardConfig:
    """Everything the gate reads from configuration; defaults are the safe choice."""

    fail_on: Severity = Severity.ERROR
    severity: Mapping[str, Severity] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    build_workflows: tuple[str, ...] = ()
    account_roles: Mapping[str, str] = field(default_factory=dict)
    parity: ParityConfig = ParityConfig()
    source: str = "defaults"


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where} must be a list of strings")
    return tuple(value)


def _severity(value: Any, where: str) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        raise InputError(f"{where} must be one of error, warning, info; got {value!r}") from None


def parse_config(table: Mapping[str, Any], source: str) -> GuardConfig:
    """Validate a `[tool.guard]` table; unknown keys are refused so typos never pass silently."""
    known = {"fail_on", "severity", "disabled", "build_workflows", "accounts", "parity"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise InputError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    sev = table.get("severity", {})
    if not isinstance(sev, dict):
        raise InputError(f"{source}: severity must be a table of CHECK_ID = \"error|warning|info\"")
    accounts = table.get("accounts", {})
    if not isinstance(accounts, dict) or not all(
        isinstance(k, str) and k.isdigit() and len(k) == 12 and isinstance(v, str) and v.startswith("arn:")
        for k, v in accounts.items()
    ):
        raise InputError(f"{source}: accounts must map 12-digit account IDs to role ARNs")
    parity = table.get("parity", {})
    if not isinstance(parity, dict) or set(parity) - {"replace", "ignore"}:
        raise InputError(f"{source}: parity takes only `replace` and `ignore`")
    replace = parity.get("replace", [])
    if not isinstance(replace, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) and s for s in p) for p in replace
    ):
        raise InputError(f"{source}: parity.replace must be a list of [staging, prod] string pairs")
    return GuardConfig(
        fail_on=_severity(table.get("fail_on", "error"), f"{source}: fail_on"),
        severity={str(k): _severity(v, f"{source}: severity.{k}") for k, v in sev.items()},
        disabled=frozenset(_strs(table.get("disabled", []), f"{source}: disabled")),
        build_workflows=_strs(table.get("build_workflows", []), f"{source}: build_workflows"),
        account_roles=dict(accounts),
        parity=ParityConfig(tuple((a, b) for a, b in replace),
                            _strs(parity.get("ignore", []), f"{source}: parity.ignore")),
        source=source,
    )


def load_config(path: Path | None = None, cwd: Path | None = None) -> GuardConfig:
    """Read `path`, else ./guard.toml, else ./pyproject.toml's [tool.guard], else defaults."""
    base = cwd or Path.cwd()
    candidates = [path] if path else [base / "guard.toml", base / "pyproject.toml"]
    for candidate in candidates:
        if candidate is None or not candidate.is_file():
            if path is not None:
                raise InputError(f"config file {path} does not exist")
            continue
        try:
            doc = tomllib.loads(candidate.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{candidate}: not valid TOML: {exc}") from None
        if candidate.name == "pyproject.toml":
            table = doc.get("tool", {}).get("guard")
            if table is None:
                continue
        else:
            table = doc.get("tool", {}).get("guard", doc)
        if not isinstance(table, dict):
            raise InputError(f"{candidate}: [tool.guard] must be a table")
        return parse_config(table, str(candidate))
    return GuardConfig()

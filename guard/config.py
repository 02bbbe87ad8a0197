"""`guard.toml` or `[tool.guard]` in pyproject.toml, validated into a frozen GuardConfig."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.models import InputError, Severity
from guard.notify import NotifyConfig, parse_notify_config
from guard.policy import MAX_SETTING, RemediateConfig, parse_remediate_config


@dataclass(frozen=True)
class ParityConfig:
    """Declared, expected differences between staging and prod."""

    replace: tuple[tuple[str, str], ...] = ()
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class WatchConfig:
    """The `[watch]` table: scope, thresholds and where state lives."""

    clusters: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    functions: tuple[str, ...] | None = None
    state: str = ".guard/state"
    lookback_minutes: int = 30
    stall_after_minutes: int = 30
    below_desired_grace_minutes: int = 10
    crash_threshold: int = 3
    interval_seconds: int = 60


@dataclass(frozen=True)
class GuardConfig:
    """Everything the gate reads from configuration; defaults are the safe choice."""

    fail_on: Severity = Severity.ERROR
    severity: Mapping[str, Severity] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    build_workflows: tuple[str, ...] = ()
    account_roles: Mapping[str, str] = field(default_factory=dict)
    parity: ParityConfig = ParityConfig()
    watch: WatchConfig = WatchConfig()
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    remediate: RemediateConfig = field(default_factory=RemediateConfig)
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


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where} must be a table")
    return value


def _watch(value: Any, source: str) -> WatchConfig:
    table = _table(value, f"{source}: watch")
    ints = ("lookback_minutes", "stall_after_minutes", "below_desired_grace_minutes", "crash_threshold",
            "interval_seconds")
    unknown = sorted(set(table) - {"clusters", "services", "functions", "state", *ints})
    if unknown:
        raise InputError(f"{source}: unknown watch setting(s) {', '.join(unknown)}")
    for name in ints:
        v = table.get(name, 1)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_SETTING:
            raise InputError(f"{source}: watch.{name} must be a positive integer (at most {MAX_SETTING})")
    state = table.get("state", ".guard/state")
    if not isinstance(state, str) or not state:
        raise InputError(f"{source}: watch.state must be a path, s3://bucket/prefix or dynamodb://table")
    functions = table.get("functions")
    return WatchConfig(
        clusters=_strs(table.get("clusters", []), f"{source}: watch.clusters"),
        services=_strs(table.get("services", []), f"{source}: watch.services"),
        functions=None if functions is None else _strs(functions, f"{source}: watch.functions"),
        state=state,
        **{name: int(table[name]) for name in ints if name in table},
    )


def parse_config(table: Mapping[str, Any], source: str) -> GuardConfig:
    """Validate a `[tool.guard]` table; unknown keys are refused so typos never pass silently."""
    known = {"fail_on", "severity", "disabled", "build_workflows", "accounts", "parity", "watch", "notify",
             "remediate"}
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
        watch=_watch(table.get("watch", {}), source),
        notify=parse_notify_config(_table(table.get("notify", {}), f"{source}: notify"), source),
        remediate=parse_remediate_config(_table(table.get("remediate", {}), f"{source}: remediate"), source),
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
        except OSError as exc:
            raise InputError(f"{candidate}: cannot read: {exc.strerror or exc}") from None
        # TOMLDecodeError and UnicodeDecodeError are ValueErrors, as is an integer over Python's digit
        # limit; absurd nesting exhausts the recursion limit.
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{candidate}: not valid TOML: {exc}") from None
        tool = doc.get("tool", {})
        if not isinstance(tool, dict):
            raise InputError(f"{candidate}: [tool] must be a table")
        if candidate.name == "pyproject.toml":
            table = tool.get("guard")
            if table is None:
                continue
        else:
            table = tool.get("guard", doc)
        if not isinstance(table, dict):
            raise InputError(f"{candidate}: [tool.guard] must be a table")
        return parse_config(table, str(candidate))
    return GuardConfig()

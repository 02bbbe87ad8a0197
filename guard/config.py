"""`guard.toml` or `[tool.guard]` in pyproject.toml, validated into a frozen GuardConfig.

A leaf: only the standard library and guard.models, so reading configuration never loads an SDK.
"""

from __future__ import annotations

import re
import tomllib
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from guard.models import InputError, Severity

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_SLACK_URL_ENV = "SLACK_WEBHOOK_URL"
# Upper bound of every integer setting: larger values overflow timedelta/sleep far from the config.
MAX_SETTING = 10**9
MAX_WORKERS = 32  # one botocore connection pool (32) per client
REPO_PATTERN = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
SHA_PATTERN = re.compile(r"[0-9a-f]{40}")
TAG_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # 12 digest hex follow: within 128
SNS_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    # Lifecycle forecasts (IMG004, IMG101): an expiry within *_warn_* is reported (warning), within *_error_*
    # (or now) it is an error; days for age rules, more pushes to the repository for count and untagged rules.
    lifecycle_warn_days: int = 14
    lifecycle_warn_pushes: int = 5
    lifecycle_error_days: int = 2
    lifecycle_error_pushes: int = 1
    # How long IMG004 (the gate) and IMG101 (a sweep) wait for ECR's lifecycle policy preview, asked only when the
    # evaluator says an image in question expires now or cannot read the policy; past it, the evaluator answers.
    lifecycle_preview_gate_seconds: int = 20
    lifecycle_preview_watch_seconds: int = 10


class RouteType(StrEnum):
    """Route types a `[[notify.routes]]` entry may name."""

    SLACK = "slack"
    SNS = "sns"
    GITHUB_ISSUE = "github_issue"
    GITHUB_STATUS = "github_status"


@dataclass(frozen=True)
class SlackConfig:
    """A Slack webhook route; the URL comes from env var `url_env` unless a literal `url` is given."""

    name: str
    url_env: str = DEFAULT_SLACK_URL_ENV
    url: str | None = None


@dataclass(frozen=True)
class SnsConfig:
    """An SNS topic route."""

    name: str
    topic_arn: str


@dataclass(frozen=True)
class GitHubIssueConfig:
    """A GitHub issue route; `repository` defaults to GITHUB_REPOSITORY when the routes are built."""

    name: str
    repository: str | None = None
    labels: tuple[str, ...] = ("deploy-guard", "incident")


@dataclass(frozen=True)
class GitHubStatusConfig:
    """A commit-status route; `sha` defaults to GITHUB_SHA when the routes are built."""

    name: str
    repository: str | None = None
    sha: str | None = None
    context: str = "deploy-guard/watch"


RouteConfig = SlackConfig | SnsConfig | GitHubIssueConfig | GitHubStatusConfig


@dataclass(frozen=True)
class NotifyConfig:
    """The `[notify]` table: whether to emit a heartbeat, and the routes beyond stdout."""

    heartbeat: bool = True
    routes: tuple[RouteConfig, ...] = ()
    source: str = "defaults"


class Mode(StrEnum):
    """observe: detect and notify; propose: plan and post, act on approval; act: act within policy."""

    OBSERVE = "observe"
    PROPOSE = "propose"
    ACT = "act"


@dataclass(frozen=True)
class Allow:
    """Resources (fnmatch patterns such as `ecs:prod/*`) and the action kinds allowed on them."""

    resource: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class RemediateConfig:
    """The `[remediate]` table; defaults are the safe ones (observe, nothing allowed)."""

    mode: Mode = Mode.OBSERVE
    allow: tuple[Allow, ...] = ()
    max_actions_per_incident: int = 3
    max_actions_per_hour: int = 10
    kill_switch_parameter: str | None = None
    kill_switch_object: str | None = None
    token_budget: int = 20000
    max_turns: int = 8
    model: str = DEFAULT_MODEL
    build_repository: str | None = None
    build_workflow: str | None = None
    lambda_alias: str = "live"
    lock_ttl_seconds: int = 900
    wait_timeout_seconds: int = 900
    poll_seconds: int = 15
    protect_tag_prefix: str = "keep-"  # protect_image tags an in-use image `<prefix><12 hex of its digest>`


@dataclass(frozen=True)
class GuardConfig:
    """Everything the gate reads from configuration; defaults are the safe choice."""

    fail_on: Severity = Severity.ERROR
    severity: Mapping[str, Severity] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    build_workflows: tuple[str, ...] = ()
    build_jobs: tuple[str, ...] = ()
    account_roles: Mapping[str, str] = field(default_factory=dict)
    parity: ParityConfig = ParityConfig()
    watch: WatchConfig = WatchConfig()
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    remediate: RemediateConfig = field(default_factory=RemediateConfig)
    workers: int = 16  # concurrent AWS reads (gate references, watch batches); botocore retries throttling
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
            "interval_seconds", "lifecycle_warn_days", "lifecycle_warn_pushes", "lifecycle_error_days",
            "lifecycle_error_pushes", "lifecycle_preview_gate_seconds", "lifecycle_preview_watch_seconds")
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


_ROUTE_KEYS: Mapping[RouteType, frozenset[str]] = {
    RouteType.SLACK: frozenset({"type", "name", "url_env", "url"}),
    RouteType.SNS: frozenset({"type", "name", "topic_arn"}),
    RouteType.GITHUB_ISSUE: frozenset({"type", "name", "repository", "labels"}),
    RouteType.GITHUB_STATUS: frozenset({"type", "name", "repository", "sha", "context"}),
}


def _opt_str(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise InputError(f"{where}.{key} must be a non-empty string")
    return value.strip() if isinstance(value, str) else None


def _scheme(url: str) -> str:
    """The URL's scheme, "" when it does not parse (urlsplit raises ValueError on a bad IPv6 literal)."""
    try:
        return urllib.parse.urlsplit(url).scheme
    except ValueError:
        return ""


def _parse_route(entry: Any, where: str, default_name: str) -> RouteConfig:
    if not isinstance(entry, dict):
        raise InputError(f"{where} must be a table")
    raw_type = entry.get("type")
    try:
        kind = RouteType(str(raw_type))
    except ValueError:
        known = ", ".join(t.value for t in RouteType)
        raise InputError(f"{where}.type must be one of {known}; got {raw_type!r}") from None
    unknown = sorted(set(entry) - _ROUTE_KEYS[kind])
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} for a {kind.value} route; "
                         f"known: {', '.join(sorted(_ROUTE_KEYS[kind]))}")
    name = _opt_str(entry, "name", where) or default_name
    repository = _opt_str(entry, "repository", where)
    if repository is not None and not REPO_PATTERN.fullmatch(repository):
        raise InputError(f"{where}.repository must be owner/name; got {repository!r}")
    if kind is RouteType.SLACK:
        url_env, url = _opt_str(entry, "url_env", where), _opt_str(entry, "url", where)
        if url_env and url:
            raise InputError(f"{where}: give url_env or url, not both")
        if url_env is not None and not _ENV_NAME.fullmatch(url_env):
            raise InputError(f"{where}.url_env must name an environment variable; got {url_env!r}")
        if url is not None and _scheme(url) not in ("http", "https"):
            raise InputError(f"{where}.url is not an http(s) URL")  # never echoed: it is a secret
        return SlackConfig(name, url_env or DEFAULT_SLACK_URL_ENV, url)
    if kind is RouteType.SNS:
        arn = _opt_str(entry, "topic_arn", where)
        if arn is None or not SNS_ARN_PATTERN.fullmatch(arn):
            raise InputError(f"{where}.topic_arn must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME); "
                             f"got {arn!r}")
        return SnsConfig(name, arn)
    if kind is RouteType.GITHUB_ISSUE:
        labels = entry.get("labels", ["deploy-guard", "incident"])
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise InputError(f"{where}.labels must be a non-empty list of strings")
        return GitHubIssueConfig(name, repository, tuple(labels))
    sha = _opt_str(entry, "sha", where)
    if sha is not None and not SHA_PATTERN.fullmatch(sha):
        raise InputError(f"{where}.sha must be a full 40-hex commit SHA; got {sha!r}")
    return GitHubStatusConfig(name, repository, sha, _opt_str(entry, "context", where) or "deploy-guard/watch")


def parse_notify_config(table: Mapping[str, Any], source: str) -> NotifyConfig:
    """Validate a `[notify]` table; unknown keys and route types are refused so typos never pass silently."""
    known = {"heartbeat", "routes"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise InputError(f"{source}: unknown notify setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    heartbeat = table.get("heartbeat", True)
    if not isinstance(heartbeat, bool):
        raise InputError(f"{source}: notify.heartbeat must be true or false")
    entries = table.get("routes", [])
    if not isinstance(entries, list):
        raise InputError(f"{source}: notify.routes must be an array of tables ([[notify.routes]])")
    types = [e.get("type") if isinstance(e, dict) else None for e in entries]
    routes = tuple(
        _parse_route(entry, f"{source}: notify.routes[{i}]",
                     str(types[i]) if types.count(types[i]) == 1 else f"{types[i]}#{i}")
        for i, entry in enumerate(entries))
    names = [r.name for r in routes]
    duplicates = sorted({n for n in names if names.count(n) > 1} | ({"stdout"} & set(names)))
    if duplicates:
        raise InputError(f"{source}: notify.routes: route name(s) {', '.join(duplicates)} used twice "
                         "(stdout is reserved)")
    return NotifyConfig(heartbeat, routes, source)


def parse_remediate_config(table: Mapping[str, Any], source: str) -> RemediateConfig:
    """Validate `[remediate]`; unknown keys and modes are refused (action kinds: `check_action_kinds`)."""
    ints = ("max_actions_per_incident", "max_actions_per_hour", "token_budget", "max_turns", "lock_ttl_seconds",
            "wait_timeout_seconds", "poll_seconds")
    strs = ("kill_switch_parameter", "kill_switch_object", "model", "build_repository", "build_workflow",
            "lambda_alias", "protect_tag_prefix")
    unknown = sorted(set(table) - {"mode", "allow", *ints, *strs})
    if unknown:
        raise InputError(f"{source}: unknown remediate setting(s) {', '.join(unknown)}")
    try:
        mode = Mode(table.get("mode", "observe"))
    except ValueError:
        raise InputError(f"{source}: remediate.mode must be observe, propose or act") from None
    for name in ints:
        v = table.get(name, 1)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_SETTING:
            raise InputError(f"{source}: remediate.{name} must be a positive integer (at most {MAX_SETTING})")
    for name in strs:
        if name in table and (not isinstance(table[name], str) or not table[name]):
            raise InputError(f"{source}: remediate.{name} must be a non-empty string")
    if "protect_tag_prefix" in table and not TAG_PREFIX_PATTERN.fullmatch(str(table["protect_tag_prefix"])):
        raise InputError(f"{source}: remediate.protect_tag_prefix must start an ECR tag (letters, digits, '.', "
                         "'_', '-'; at most 100 characters, starting with a letter or digit)")
    obj = table.get("kill_switch_object")
    bucket, _, key = str(obj).removeprefix("s3://").partition("/")
    if obj is not None and not (str(obj).startswith("s3://") and bucket and key):
        raise InputError(f"{source}: remediate.kill_switch_object must be s3://bucket/key")
    allow = table.get("allow", [])
    if not isinstance(allow, list):
        raise InputError(f"{source}: remediate.allow must be a list of tables")
    rules = []
    for entry in allow:
        if not isinstance(entry, dict) or set(entry) != {"resource", "actions"} or \
                not isinstance(entry["resource"], str) or not isinstance(entry["actions"], list):
            raise InputError(f"{source}: each [[remediate.allow]] needs `resource` and `actions` only")
        rules.append(Allow(entry["resource"], tuple(map(str, entry["actions"]))))
    values: dict[str, Any] = {n: int(table[n]) for n in ints if n in table}
    values.update({n: str(table[n]) for n in strs if n in table})
    config = RemediateConfig(mode=mode, allow=tuple(rules), **values)
    if config.poll_seconds * 3 > config.lock_ttl_seconds:
        raise InputError(f"{source}: remediate.poll_seconds ({config.poll_seconds}) must be at most a third of "
                         f"lock_ttl_seconds ({config.lock_ttl_seconds}): the claim is renewed between polls")
    return config


def parse_config(table: Mapping[str, Any], source: str) -> GuardConfig:
    """Validate a `[tool.guard]` table; unknown keys are refused so typos never pass silently."""
    known = {"fail_on", "severity", "disabled", "build_workflows", "build_jobs", "accounts", "parity", "watch",
             "notify", "remediate", "workers"}
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
    workers = table.get("workers", GuardConfig.workers)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= MAX_WORKERS:
        raise InputError(f"{source}: workers must be an integer from 1 to {MAX_WORKERS}")
    return GuardConfig(
        fail_on=_severity(table.get("fail_on", "error"), f"{source}: fail_on"),
        severity={str(k): _severity(v, f"{source}: severity.{k}") for k, v in sev.items()},
        disabled=frozenset(_strs(table.get("disabled", []), f"{source}: disabled")),
        build_workflows=_strs(table.get("build_workflows", []), f"{source}: build_workflows"),
        build_jobs=_strs(table.get("build_jobs", []), f"{source}: build_jobs"),
        account_roles=dict(accounts),
        parity=ParityConfig(tuple((a, b) for a, b in replace),
                            _strs(parity.get("ignore", []), f"{source}: parity.ignore")),
        watch=_watch(table.get("watch", {}), source),
        notify=parse_notify_config(_table(table.get("notify", {}), f"{source}: notify"), source),
        remediate=parse_remediate_config(_table(table.get("remediate", {}), f"{source}: remediate"), source),
        workers=workers,
        source=source,
    )


def check_action_kinds(config: GuardConfig, known: Collection[str]) -> None:
    """Refuse `[[remediate.allow]]` action kinds outside `known` (the registered action types)."""
    kinds = set(known)
    for rule in config.remediate.allow:
        bad = sorted(set(rule.actions) - kinds)
        if bad:
            raise InputError(f"{config.source}: unknown action kind(s) {bad}; known: {sorted(kinds)}")


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

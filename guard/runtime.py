"""One runtime: configuration plus environment, turned into the wired objects every entry point needs.

The CLI, the Lambda handler, the demo, the benchmarks and the tests all build a `Runtime` and ask it for
what they need (AWS sessions, the state store, notification routes, a watchdog, a remediator, a check
context). Each object is built once, on first use, so a verb that never reaches AWS never imports boto3,
and a verb that never plans never imports the anthropic SDK.

Two AWS sessions: `aws` reaches the account-region being checked, swept or repaired; `home` reaches where
deploy-guard keeps its own state and sends its notifications. They are one session unless `target` names
another account-region (a watchdog shard), and they share one call counter either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from guard.config import GuardConfig, check_action_kinds, load_config
from guard.models import InputError
from guard.progress import ProgressLine

if TYPE_CHECKING:
    from guard.actions import ActionContext
    from guard.agent.playbook import PlanContext
    from guard.context import CheckContext, Commit
    from guard.gateways.aws import AwsSession, AwsSettings
    from guard.gateways.github import PyGithubGateway
    from guard.gateways.stats import ApiStats
    from guard.notify.routes import Route
    from guard.policy import PolicyGate
    from guard.remediate import Planner, Remediator
    from guard.state import StateStore
    from guard.watch import Watchdog, WatchScope
    from guard.watcher import WatchSettings

Clock = Callable[[], datetime]
GitHubFactory = Callable[["ApiStats"], "PyGithubGateway"]


def _github_from_env(stats: ApiStats) -> PyGithubGateway:
    from guard.gateways.github import PyGithubGateway

    return PyGithubGateway.from_env(stats)


@dataclass
class Runtime:
    """Everything an entry point wires, built lazily from `config` and the environment.

    `state` overrides `[watch] state`; `target` points `aws` at another account-region; `clock`, `wait`,
    `environ` and `github_factory` are injected by the sandbox (simulated time, a local GitHub).
    """

    config: GuardConfig = field(default_factory=GuardConfig)
    state: str | None = None
    settings: AwsSettings | None = None
    target: AwsSettings | None = None
    clock: Clock = field(default=lambda: datetime.now(UTC))
    wait: Callable[[float], None] | None = None
    progress: Callable[[str], None] = field(default_factory=ProgressLine)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    github_factory: GitHubFactory = _github_from_env
    stdout_route: TextIO | None = None
    extra_routes: tuple[Route, ...] = ()

    @classmethod
    def load(cls, path: Path | None = None, *, cwd: Path | None = None, **overrides: Any) -> Runtime:
        """Read the configuration (`path`, else ./guard.toml or [tool.guard]) and validate it whole."""
        from guard.actions import action_types

        config = load_config(path, cwd)
        check_action_kinds(config, action_types())
        return cls(config, **overrides)

    # -- AWS and state -----------------------------------------------------------------------------
    @cached_property
    def home(self) -> AwsSession:
        """The session for deploy-guard's own state, notifications, metrics and kill switch."""
        from guard.gateways.aws import AwsSession, AwsSettings

        base = self.settings or AwsSettings()
        return AwsSession(replace(base, account_roles=base.account_roles or self.config.account_roles))

    @cached_property
    def aws(self) -> AwsSession:
        """The session for the account-region being checked, swept or repaired."""
        from guard.gateways.aws import AwsSession

        if self.target is None:
            return self.home
        return AwsSession(self.target, self.home.stats)

    @cached_property
    def store(self) -> StateStore:
        """The state store named by `state` or `[watch] state`; a malformed URL is an input error."""
        from guard.state import store_from_url

        try:
            return store_from_url(self.state or self.config.watch.state, self.home)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    # -- notification ------------------------------------------------------------------------------
    @cached_property
    def routes(self) -> list[Route]:
        """The configured routes, after this process's own output when `stdout_route` is set."""
        from guard.notify.routes import StdoutRoute, build_routes

        own: list[Route] = [StdoutRoute(self.stdout_route)] if self.stdout_route is not None else []
        return [*own, *self.extra_routes, *build_routes(self.config.notify, self.home, self.home.stats,
                                                        self.environ)]

    # -- the gate ----------------------------------------------------------------------------------
    def check_context(self, commit: Commit) -> CheckContext:
        """Read-only ports for the pre-deploy checks."""
        from guard.context import CheckContext

        return CheckContext(self.aws, self.config, commit, github_factory=self.github_factory, wait=self.wait)

    # -- the watchdog ------------------------------------------------------------------------------
    @property
    def watch_settings(self) -> WatchSettings:
        """The `[watch]` thresholds."""
        from guard.lifecycle_policy import LifecycleHorizon
        from guard.watcher import WatchSettings

        wc = self.config.watch
        return WatchSettings(timedelta(minutes=wc.lookback_minutes), timedelta(minutes=wc.stall_after_minutes),
                             timedelta(minutes=wc.below_desired_grace_minutes), wc.crash_threshold,
                             LifecycleHorizon.from_config(wc))

    def watch_scope(self, clusters: tuple[str, ...] = (), services: tuple[str, ...] = (),
                    functions: tuple[str, ...] | None = None, *, no_lambda: bool = False) -> WatchScope:
        """What to sweep: arguments win over `[watch]`; `no_lambda` leaves functions out."""
        from guard.watch import WatchScope

        wc = self.config.watch
        chosen = () if no_lambda else (functions or wc.functions)
        region = self.target.region if self.target else None
        return WatchScope(clusters or wc.clusters, services or wc.services, chosen, region)

    def watchdog(self, *, heartbeat: bool | None = None, shard: str | None = None) -> Watchdog:
        """A watchdog over `aws`, keeping state in `store`, alerting through `routes`, metrics (`shard`) to `home`."""
        from guard.watch import Watchdog

        return Watchdog(self.aws, self.store, settings=self.watch_settings, routes=self.routes,
                        heartbeat=self.config.notify.heartbeat if heartbeat is None else heartbeat,
                        clock=self.clock, home=self.home, shard=shard, workers=self.config.workers, wait=self.wait)

    # -- remediation -------------------------------------------------------------------------------
    @cached_property
    def github(self) -> PyGithubGateway | None:
        """The GitHub gateway remediation plans with, when a token and a build repository are configured."""
        if not (self.environ.get("GITHUB_TOKEN") and self.config.remediate.build_repository):
            return None
        return self.github_factory(self.aws.stats)

    def policy_gate(self) -> PolicyGate:
        """The policy gate every action passes."""
        from guard.policy import PolicyGate

        return PolicyGate(self.config.remediate, self.store, self.home, github=self.github, clock=self.clock,
                          environ=self.environ)

    def action_context(self) -> ActionContext:
        """Write-capable ports for the actions, with the configured waiting policy."""
        from guard.actions import ActionContext

        rc = self.config.remediate
        factory = self.github_factory
        extra: dict[str, Any] = {"wait": self.wait} if self.wait is not None else {}
        return ActionContext(self.aws, clock=self.clock, timeout_s=rc.wait_timeout_seconds, poll_s=rc.poll_seconds,
                             progress=self.progress, routes=self.routes,
                             github_factory=lambda aws: factory(aws.stats), **extra)

    def plan_context(self) -> PlanContext:
        """What planning may read."""
        from guard.agent.playbook import PlanContext

        return PlanContext(self.store, self.aws, self.config.remediate, self.github)

    def planner(self) -> Planner:
        """The model-backed planner when ANTHROPIC_API_KEY is set, else the deterministic playbook."""
        if self.environ.get("ANTHROPIC_API_KEY"):
            from guard.agent.llm import LlmPlanner

            return LlmPlanner()
        from guard.agent.playbook import playbook_planner

        return playbook_planner

    def remediator(self, planner: Planner | None = None, actor: str | None = None) -> Remediator:
        """A remediator wired to this runtime's gate, ports and planner."""
        from guard.remediate import Remediator

        extra: dict[str, Any] = {"actor": actor} if actor else {}
        return Remediator(self.store, self.policy_gate(), self.action_context(), self.plan_context(),
                          planner or self.planner(), clock=self.clock, **extra)

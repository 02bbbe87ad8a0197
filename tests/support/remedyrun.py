"""A remediation world on the sandbox: simulator, GitHub server, watchdog and remediator sharing one state."""

from __future__ import annotations

import io
from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from guard.agent.playbook import playbook_planner
from guard.config import Allow, GuardConfig, Mode, RemediateConfig
from guard.gateways.aws import AwsSession, AwsSettings
from guard.gateways.github import PyGithubGateway
from guard.models import Incident
from guard.notify.messages import Notification
from guard.remediate import Planner, RemediationReport, Remediator
from guard.runtime import Runtime
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.github_server import DEFAULT_TOKEN, GitHubSandbox
from guard.sandbox.scenarios import Scenario
from guard.state import LocalStore
from guard.watch import WatchReport

REPO = "acme/shop"
GOOD = "1a2b3c4" + "0" * 33
BAD = "e4f0a31" + "7" * 33
ALLOW = (Allow("ecs:prod/*", ("ecs_rollback", "redeploy")), Allow(f"github:{REPO}", ("rerun_build",)),
         Allow("lambda:*", ("lambda_rollback",)))


@dataclass
class Pager:
    """A notification route that accepts everything and keeps it (the on-call pager of these tests)."""

    received: list[Notification] = field(default_factory=list)
    name: str = "pager"

    def send(self, n: Notification) -> None:
        """Keep `n`."""
        self.received.append(n)


@dataclass
class World:
    """Everything a remediation test touches; `remediate` builds a fresh Remediator each call."""

    aws: Scenario
    sim: EcsSimulator
    github: GitHubSandbox
    root: Path
    config: RemediateConfig = field(default_factory=lambda: RemediateConfig(
        mode=Mode.ACT, allow=ALLOW, build_repository=REPO, wait_timeout_seconds=300, poll_seconds=15))
    environ: dict[str, str] = field(default_factory=dict)
    notes: io.StringIO = field(default_factory=io.StringIO)
    sessions: list[AwsSession] = field(default_factory=list)
    pager: Pager = field(default_factory=Pager)
    state: str = ""

    @property
    def store(self) -> LocalStore:
        """The shared state (watchdog incidents, known-good, journals)."""
        return LocalStore(self.root / "state")

    def runtime(self, wait: Callable[[float], None] | None = None, **config: Any) -> Runtime:
        """A runtime as one invocation builds it, on simulated time; its AWS session is kept for `calls`."""
        runtime = Runtime(GuardConfig(remediate=replace(self.config, **config)),
                          state=self.state or str(self.root / "state"),
                          settings=AwsSettings(max_attempts=1), clock=self.sim.now, wait=wait or self.tick,
                          progress=lambda message: None, stdout_route=self.notes, extra_routes=(self.pager,),
                          environ=ChainMap(self.environ, {"GITHUB_TOKEN": DEFAULT_TOKEN}),
                          github_factory=lambda stats: PyGithubGateway(self.github.api_url, DEFAULT_TOKEN, stats,
                                                                       backoff=0))
        self.sessions.append(runtime.aws)
        return runtime

    def calls(self, api: str) -> int:
        """Calls of `api` across every session so far."""
        return sum(s.stats.calls[api] for s in self.sessions)

    def sweep(self) -> WatchReport:
        """One watchdog sweep of the prod cluster and every function."""
        runtime = self.runtime()
        return runtime.watchdog(heartbeat=False).sweep(runtime.watch_scope(("prod",)))

    def tick(self, _seconds: float) -> None:
        """The injected sleeper: time passes for GitHub and ECS instead of the test sleeping."""
        self.github.advance()
        self.sim.advance(_seconds)
        self.sim.tick()

    def remediator(self, planner: Planner = playbook_planner, actor: str = "test-actor",
                   wait: Callable[[float], None] | None = None, **config: Any) -> Remediator:
        """A Remediator as one invocation would build it."""
        return self.runtime(wait, **config).remediator(planner, actor)

    def remediate(self, incident: Incident, mode: Mode = Mode.ACT, dry_run: bool = False,
                  **kwargs: Any) -> RemediationReport:
        """Run one remediation of `incident`."""
        return self.remediator(**kwargs).run(incident.id, mode=mode, dry_run=dry_run)

    def service(self, name: str = "api") -> dict[str, Any]:
        """DescribeServices as AWS answers now."""
        svc: dict[str, Any] = self.aws.client("ecs").describe_services(cluster="prod", services=[name])["services"][0]
        return svc


@pytest.fixture(name="world")
def world_fixture(aws: Scenario, sim: EcsSimulator, github: GitHubSandbox, tmp_path: Path) -> World:
    """A prod cluster with services api and worker steady on the GOOD image, known-good recorded."""
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", GOOD[:7])
    aws.cluster("prod")
    for name in ("api", "worker"):
        aws.service("prod", name, aws.task_definition(name, [("app", f"{repo}:{GOOD[:7]}")]), desired=2)
        sim.enable_circuit_breaker("prod", name, enable=False)
    sim.tick(2)
    github.add_run(REPO, head_sha=GOOD, conclusion="success")
    w = World(aws, sim, github, tmp_path)
    assert w.sweep().known_good == ("ecs:prod/api", "ecs:prod/worker")
    return w


def deploy(world: World, tag: str, services: tuple[str, ...] = ("api",)) -> str:
    """Point services at a new revision using `shop/api:<tag>` and let ECS try to start it."""
    repo = world.aws.repository("shop/api")
    arn = ""
    for name in services:
        arn = world.aws.task_definition(name, [("app", f"{repo}:{tag}")])
        world.aws.client("ecs").update_service(cluster="prod", service=name, taskDefinition=arn)
    world.sim.tick()
    return arn


def cli_world(world: World, monkeypatch: pytest.MonkeyPatch, mode: str) -> World:
    """The world as `guard` run in its root sees it: a guard.toml in `mode`, no model key."""
    monkeypatch.chdir(world.root)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (world.root / "guard.toml").write_text(
        f'[watch]\nstate = "{world.root / "state"}"\n[notify]\nheartbeat = false\n'
        f'[remediate]\nmode = "{mode}"\npoll_seconds = 1\nwait_timeout_seconds = 10\n'
        '[[remediate.allow]]\nresource = "ecs:prod/*"\nactions = ["ecs_rollback", "redeploy"]\n')
    return world

"""`guard demo`: the incident replayed on an embedded sandbox (moto over HTTP + a local GitHub server)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from guard.config import GuardConfig
from guard.context import CheckContext, Commit
from guard.exitcodes import ExitCode
from guard.gate import GateInputs, GateReport, build_plan, run_checks
from guard.gateways.aws import AwsSession
from guard.notify import SlackRoute
from guard.report.table import render_table
from guard.report.watch import render_watch_table
from guard.sandbox.aws import DEFAULT_ACCOUNT, AwsSandbox
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.github_server import DEFAULT_TOKEN, GitHubSandbox
from guard.sandbox.plans import (
    PlannedLambda,
    PlannedTaskDefinition,
    lambda_change,
    plan_document,
    task_definition_change,
)
from guard.sandbox.scenarios import Scenario
from guard.sandbox.webhook_server import WebhookSandbox
from guard.state import LocalStore
from guard.watch import Watchdog, WatchReport, WatchScope

REPO = "acme/shop"
GOOD_SHA = "9c1e7b2" + "4d" * 16 + "a"
BAD_SHA = "e4f0a31" + "7b" * 16 + "c"
SERVICES = ("api", "worker")


@dataclass(frozen=True)
class World:
    """What the demo account holds, for the stages to refer to."""

    registry: str
    execution_role: str
    lambda_role: str
    good_run: int
    bad_run: int


EXPECTED = {"green deploy": ExitCode.CLEAN, "broken deploy": ExitCode.FINDINGS, "latent hazard": ExitCode.FINDINGS,
            "tasks restart": ExitCode.FINDINGS}


@dataclass
class DemoResult:
    """Each stage's outcome, asserted by the replay test."""

    stages: dict[str, ExitCode] = field(default_factory=dict)
    reports: dict[str, GateReport] = field(default_factory=dict)
    sweeps: dict[str, WatchReport] = field(default_factory=dict)
    notifications: list[dict[str, object]] = field(default_factory=list)

    @property
    def as_expected(self) -> bool:
        """Every stage ended as the story says."""
        return self.stages == EXPECTED


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def seed(aws: Scenario, github: GitHubSandbox) -> World:
    """A small shop: two clusters (staging, prod), two services each, an image Lambda, GitHub builds."""
    registry = aws.repository("shop/api").split("/", 1)[0]
    for repo in ("shop/worker", "shop/thumbnailer"):
        aws.repository(repo)
    for repo in ("shop/api", "shop/worker"):
        aws.push_image(repo, GOOD_SHA[:7], arch="amd64")
    aws.push_image("shop/thumbnailer", GOOD_SHA[:7], arch="arm64")
    execution = aws.role("shop-task-execution")
    lambda_role = aws.role("shop-thumbnailer", trust_service="lambda.amazonaws.com")
    for env in ("staging", "prod"):
        aws.cluster(env)
        for svc in SERVICES:
            aws.log_group(f"/ecs/{env}/{svc}")
            td = aws.task_definition(f"{env}-{svc}", [(svc, f"{registry}/shop/{svc}:{GOOD_SHA[:7]}")],
                                     execution_role=execution, log_group=f"/ecs/{env}/{svc}")
            aws.service(env, svc, td)
    aws.lambda_function("thumbnailer", f"{registry}/shop/thumbnailer:{GOOD_SHA[:7]}", arch="arm64",
                        role_arn=lambda_role)
    good = github.add_run(REPO, head_sha=GOOD_SHA, workflow="build.yml", name="build", conclusion="success")
    bad = github.add_run(REPO, head_sha=BAD_SHA, workflow="build.yml", name="build", conclusion="cancelled")
    return World(registry, execution, lambda_role, good, bad)


def deploy_plan(world: World, sha: str) -> dict[str, object]:
    """The Terraform plan the deploy job makes for `sha`: both prod services and the Lambda."""
    tag = sha[:7]
    changes = [task_definition_change(PlannedTaskDefinition(
        f"prod-{svc}", [(svc, f"{world.registry}/shop/{svc}:{tag}")], module=f"module.{svc}",
        execution_role=world.execution_role, log_group=f"/ecs/prod/{svc}")) for svc in SERVICES]
    changes.append(lambda_change(PlannedLambda("thumbnailer", f"{world.registry}/shop/thumbnailer:{tag}",
                                               world.lambda_role, module="module.thumbnailer", arch="arm64")))
    return plan_document(changes, {"image_tag": tag})


def _gate(workdir: Path, world: World, sha: str, name: str) -> GateReport:
    path = workdir / f"{name.replace(' ', '-')}.tfplan.json"
    path.write_text(json.dumps(deploy_plan(world, sha), indent=2))
    ctx = CheckContext(AwsSession(), GuardConfig(build_workflows=("build.yml",)), Commit(REPO, sha))
    return run_checks(build_plan(GateInputs(plans=(path,)), ctx), ctx)


def replay(console: Console) -> DemoResult:
    """Start the sandbox, seed the account, and run each stage; nothing is left running."""
    result = DemoResult()
    with AwsSandbox() as sandbox, GitHubSandbox() as github, tempfile.TemporaryDirectory() as tmp, \
            _environment({**sandbox.environ(), "GITHUB_API_URL": github.api_url, "GITHUB_TOKEN": DEFAULT_TOKEN}):
        console.print(f"[dim]sandbox: AWS (moto) at {sandbox.endpoint_url}, GitHub at {github.api_url}[/]")
        world = seed(Scenario(sandbox), github)
        console.print(f"Seeded account {DEFAULT_ACCOUNT}: clusters staging and prod (api, worker), Lambda "
                      f"thumbnailer (arm64), ECR shop/*; {REPO} has build run {world.good_run} (success) for "
                      f"{GOOD_SHA[:7]} and run {world.bad_run} (cancelled by a CI race) for {BAD_SHA[:7]}.")
        stages = [
            ("green deploy", GOOD_SHA, "The deploy job for the built commit runs `guard check` on its plan."),
            ("broken deploy", BAD_SHA, "The build for the next commit was cancelled; the deploy job runs "
             "anyway and points ECS and the Lambda at images that were never pushed."),
        ]
        for name, sha, story in stages:
            console.print(Panel(story, title=f"[bold]{name}[/]: guard check --plan {name.replace(' ', '-')}"
                                f".tfplan.json --sha {sha[:7]}", expand=False))
            report = _gate(Path(tmp), world, sha, name)
            render_table(report, console)
            result.stages[name] = report.exit_code
            result.reports[name] = report
        _watch_stages(console, sandbox, Path(tmp), result)
    return result


def _watch_stages(console: Console, sandbox: AwsSandbox, tmp: Path, result: DemoResult) -> None:
    """The image under the steady prod services expires; the watchdog sees it before and after restarts."""
    sim = EcsSimulator(sandbox)
    sim.tick(2)
    with WebhookSandbox() as hook:
        dog = Watchdog(AwsSession(), LocalStore(tmp / "state"), routes=[SlackRoute(hook.url)], heartbeat=False)
        scope = WatchScope(clusters=("prod",), functions=())
        dog.sweep(scope)
        Scenario(sandbox).delete_image("shop/api", tag=GOOD_SHA[:7])
        sim.tick()
        steps = [
            ("latent hazard", "A lifecycle rule expires shop/api:" + GOOD_SHA[:7] + " while prod/api runs on it. "
             "Nothing fails yet: running tasks keep their image. `guard watch --once`:", None),
            ("tasks restart", "25 hours later the tasks are replaced, cannot pull the image, and fail to start. "
             "The next sweep updates the same incident (not a new alert):", "api"),
        ]
        for name, story, restart in steps:
            if restart:
                sim.restart_tasks("prod", restart)
                sim.tick()
            console.print(Panel(story, title=f"[bold]{name}[/]", expand=False))
            sweep = dog.sweep(scope)
            render_watch_table(sweep, console)
            result.stages[name] = sweep.exit_code
            result.sweeps[name] = sweep
        result.notifications = list(hook.received)
        console.print(f"[dim]{len(hook.received)} notification(s) reached the Slack webhook: "
                      + "; ".join(str(m.get("text", ""))[:90] for m in hook.received) + "[/]")


def run_demo(console: Console | None = None) -> int:
    """Print the replay; exit 0 when every stage ended as the story says."""
    console = console or Console(emoji=False, highlight=False)
    result = replay(console)
    verdict = "[bold green]every stage behaved as expected[/]" if result.as_expected else \
        "[bold red]a stage did not behave as expected[/]"
    console.print(f"\nDemo finished: {verdict}. The sandbox is stopped; nothing is left running.")
    return 0 if result.as_expected else 1

"""`guard demo`: the incident replayed end to end on an embedded sandbox (moto, local GitHub, ECS simulator).

Every symptom comes from a cause: images that were never pushed, a cancelled build, tasks restarted by
the scheduler simulator. Nothing outside this process is contacted and nothing is left running.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from botocore.exceptions import ClientError
from rich.console import Console
from rich.panel import Panel

from guard.agent.playbook import playbook_planner
from guard.config import Allow, GuardConfig, Mode, NotifyConfig, RemediateConfig, SlackConfig
from guard.context import Commit
from guard.exitcodes import ExitCode
from guard.gate import GateInputs, GateReport, run
from guard.gateways.github import PyGithubGateway
from guard.records import postmortem_key
from guard.remediate import RemediationReport
from guard.report.table import render_table
from guard.report.watch import render_watch_table
from guard.runtime import Runtime
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
from guard.watch import WatchReport

REPO = "acme/shop"
GOOD_SHA = "9c1e7b2" + "4d" * 16 + "a"
BAD_SHA = "e4f0a31" + "7b" * 16 + "c"
NEXT_SHA = "5d8c0f6" + "2e" * 16 + "b"
SERVICES = ("api", "worker")
EXPECTED = {"green deploy": ExitCode.CLEAN, "broken deploy": ExitCode.FINDINGS, "gate bypassed": ExitCode.FINDINGS,
            "tasks restart": ExitCode.FINDINGS, "agent: rerun and redeploy": ExitCode.CLEAN,
            "after repair": ExitCode.CLEAN, "second bad deploy": ExitCode.FINDINGS,
            "agent: rollback when the rerun fails": ExitCode.CLEAN, "latent hazard": ExitCode.FINDINGS}


@dataclass(frozen=True)
class World:
    """What the demo account holds, for the stages to refer to."""

    registry: str
    execution_role: str
    lambda_role: str
    good_run: int
    bad_run: int


@dataclass
class DemoResult:
    """Each stage's outcome, asserted by the replay test."""

    stages: dict[str, ExitCode] = field(default_factory=dict)
    reports: dict[str, GateReport] = field(default_factory=dict)
    sweeps: dict[str, WatchReport] = field(default_factory=dict)
    remediations: dict[str, RemediationReport] = field(default_factory=dict)
    notifications: list[dict[str, object]] = field(default_factory=list)
    lambda_rejected: str = ""
    postmortem: str = ""

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
    """A small shop: clusters staging and prod (api and worker share the shop/app image), an arm64 image
    Lambda, ECR repositories with lifecycle policies, roles, log groups, and two builds in GitHub."""
    registry = aws.repository("shop/app").split("/", 1)[0]
    aws.repository("thumbnailer")
    built = [aws.push_image("shop/app", GOOD_SHA[:7], arch="amd64"),
             aws.push_image("thumbnailer", GOOD_SHA[:7], arch="arm64")]
    ecr = aws.client("ecr")
    for repo in ("shop/app", "thumbnailer"):
        ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=json.dumps({"rules": [{
            "rulePriority": 1, "description": "keep the last 10 images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
            "action": {"type": "expire"}}]}))
    execution = aws.role("shop-task-execution")
    lambda_role = aws.role("shop-thumbnailer", trust_service="lambda.amazonaws.com")
    for env in ("staging", "prod"):
        aws.cluster(env)
        for svc in SERVICES:
            aws.log_group(f"/ecs/{env}/{svc}")
            td = aws.task_definition(f"{env}-{svc}", [(svc, f"{registry}/shop/app:{GOOD_SHA[:7]}")],
                                     execution_role=execution, log_group=f"/ecs/{env}/{svc}")
            aws.service(env, svc, td)
    aws.lambda_function("thumbnailer", f"{registry}/thumbnailer:{GOOD_SHA[:7]}", arch="arm64",
                        role_arn=lambda_role)
    good = github.add_run(REPO, head_sha=GOOD_SHA, workflow="build.yml", name="build", conclusion="success")
    for digest in built:  # the build attests what it pushed (PRV002)
        github.add_attestation(REPO, digest, sha=GOOD_SHA, workflow="build.yml", run_id=good)
    bad = github.add_run(REPO, head_sha=BAD_SHA, workflow="build.yml", name="build", conclusion="cancelled")
    return World(registry, execution, lambda_role, good, bad)


def deploy_plan(world: World, sha: str) -> dict[str, object]:
    """The Terraform plan the deploy job makes for `sha`: both prod services and the Lambda."""
    tag = sha[:7]
    changes = [task_definition_change(PlannedTaskDefinition(
        f"prod-{svc}", [(svc, f"{world.registry}/shop/app:{tag}")], module=f"module.{svc}",
        execution_role=world.execution_role, log_group=f"/ecs/prod/{svc}")) for svc in SERVICES]
    changes.append(lambda_change(PlannedLambda("thumbnailer", f"{world.registry}/thumbnailer:{tag}",
                                               world.lambda_role, module="module.thumbnailer", arch="arm64")))
    return plan_document(changes, {"image_tag": tag})


class _Replay:
    """The stages, sharing one sandbox, one simulator and one state directory."""

    def __init__(self, console: Console, sandbox: AwsSandbox, github: GitHubSandbox, hook: WebhookSandbox,
                 tmp: Path) -> None:
        self.console, self.sandbox, self.github, self.hook, self.tmp = console, sandbox, github, hook, tmp
        self.aws = Scenario(sandbox)
        self.world = seed(self.aws, github)
        self.sim = EcsSimulator(sandbox)
        for svc in SERVICES:  # like the services of the outage: no deployment circuit breaker
            self.sim.enable_circuit_breaker("prod", svc, enable=False)
        self.sim.tick(2)
        config = GuardConfig(
            build_workflows=("build.yml",),
            notify=NotifyConfig(heartbeat=False, routes=(SlackConfig("slack", url=hook.url),)),
            remediate=RemediateConfig(mode=Mode.ACT, build_repository=REPO, poll_seconds=15,
                                      wait_timeout_seconds=600,
                                      allow=(Allow("ecs:prod/*", ("ecs_rollback", "redeploy")),
                                             Allow(f"github:{REPO}", ("rerun_build",)))))
        self.runtime = Runtime(config, state=str(tmp / "state"), wait=self._wait,
                               environ={"GITHUB_TOKEN": DEFAULT_TOKEN},
                               progress=lambda message: self.console.print(f"  [dim]… {message}[/]"),
                               github_factory=lambda stats: PyGithubGateway(github.api_url, DEFAULT_TOKEN, stats))
        self.store = self.runtime.store
        self.result = DemoResult()

    def _wait(self, seconds: float) -> None:
        """Simulated time passes for GitHub and ECS instead of the demo sleeping."""
        self.github.advance()
        self.sim.advance(seconds)
        self.sim.tick()

    def story(self, name: str, text: str) -> None:
        self.console.print(Panel(text, title=f"[bold]{name}[/]", expand=False))

    def gate(self, name: str, sha: str, text: str) -> None:
        self.story(name, text + f"\n$ guard check --plan {name.replace(' ', '-')}.tfplan.json --sha {sha[:7]}")
        path = self.tmp / f"{name.replace(' ', '-')}.tfplan.json"
        path.write_text(json.dumps(deploy_plan(self.world, sha), indent=2))
        report = run(GateInputs(plans=(path,)), self.runtime.check_context(Commit(REPO, sha)))
        render_table(report, self.console)
        self.result.stages[name] = report.exit_code
        self.result.reports[name] = report

    def sweep(self, name: str) -> WatchReport:
        self.console.print("$ guard watch --once --cluster prod")
        report = replace(self.runtime).watchdog().sweep(self.runtime.watch_scope(("prod",)))
        render_watch_table(report, self.console)
        self.result.stages[name] = report.exit_code
        self.result.sweeps[name] = report
        return report

    def bypass(self, sha: str) -> None:
        """What a hand-run `terraform apply` does: new revisions for both prod services, then the Lambda."""
        ecs = self.aws.client("ecs")
        for svc in SERVICES:
            td = self.aws.task_definition(f"prod-{svc}", [(svc, f"{self.world.registry}/shop/app:{sha[:7]}")],
                                          execution_role=self.world.execution_role, log_group=f"/ecs/prod/{svc}")
            ecs.update_service(cluster="prod", service=svc, taskDefinition=td)

    def remediate(self, name: str, incident: str) -> None:
        self.console.print(f"$ guard remediate {incident} --mode act")
        # the agent's escalations would go to this process's output only, never to the team's channel
        agent = replace(self.runtime, config=replace(self.runtime.config, notify=NotifyConfig(heartbeat=False)),
                        stdout_route=io.StringIO())
        report = agent.remediator(playbook_planner, "demo-agent").run(incident, mode=Mode.ACT)
        for r in report.results:
            self.console.print(f"  {r.status:9} {r.action['description']}: {r.reason}")
        self.console.print(f"  [bold]{report.status.value}[/]; journal and postmortem: {report.postmortem_key}")
        self.result.stages[name] = report.exit_code
        self.result.remediations[name] = report

    def run(self) -> DemoResult:
        w = self.world
        self.console.print(
            f"Seeded account {DEFAULT_ACCOUNT}: clusters staging and prod (api and worker on shop/app), Lambda "
            f"thumbnailer (arm64), ECR with lifecycle policies; {REPO} has build run {w.good_run} (success) for "
            f"{GOOD_SHA[:7]} and run {w.bad_run} (cancelled by a CI race) for {BAD_SHA[:7]}.")
        self.gate("green deploy", GOOD_SHA, "The deploy job for the built commit runs the gate on its plan.")
        self.gate("broken deploy", BAD_SHA, "The build for the next commit was cancelled; the deploy job runs anyway "
                  "and points ECS and the Lambda at images that were never pushed. The gate blocks it.")
        self.story("gate bypassed", "Someone runs `terraform apply` by hand. ECS is changed first; then the "
                   "Lambda change is rejected. The old tasks keep serving, so nothing looks wrong from outside.")
        self.bypass(BAD_SHA)
        with _environment({"MOTO_LAMBDA_STUB_ECR": "false"}):
            try:
                self.aws.client("lambda").update_function_code(
                    FunctionName="thumbnailer", ImageUri=f"{w.registry}/thumbnailer:{BAD_SHA[:7]}")
            except ClientError as exc:
                error = exc.response.get("Error", {})
                self.result.lambda_rejected = f"{error.get('Code')}: {error.get('Message')}"
        self.console.print(f"  Lambda update rejected: {self.result.lambda_rejected}")
        self.sim.tick()
        incident = self.sweep("gate bypassed").incidents[0].id
        self.story("tasks restart", "Hours later the old tasks are replaced. Their successors cannot pull the "
                   "image: the load balancer would answer 503. The same incident is updated, not raised again.")
        for svc in SERVICES:
            self.sim.restart_tasks("prod", svc)
        self.sim.tick()
        self.sweep("tasks restart")
        self.story("agent: rerun and redeploy", "The agent (mode act, deterministic playbook) finds the cancelled "
                   "build for the missing tag, reruns it, confirms the image now exists in ECR, redeploys both "
                   "services and waits until they are steady.")
        self.github.on_rerun = self._build(success=True)
        self.remediate("agent: rerun and redeploy", incident)
        self.sim.tick()
        self.sweep("after repair")
        self.story("agent: rollback when the rerun fails", "The next commit's build fails for real. It is applied "
                   "by hand again; the agent's rerun fails too, so it rolls prod/api back to the revision the "
                   "watchdog recorded as healthy.")
        self.github.add_run(REPO, head_sha=NEXT_SHA, workflow="build.yml", name="build", conclusion="failure")
        self.github.on_rerun = self._build(success=False)
        ecs = self.aws.client("ecs")
        td = self.aws.task_definition("prod-api", [("api", f"{w.registry}/shop/app:{NEXT_SHA[:7]}")],
                                      execution_role=w.execution_role, log_group="/ecs/prod/api")
        ecs.update_service(cluster="prod", service="api", taskDefinition=td)
        self.sim.tick()
        second = next(i.id for i in self.sweep("second bad deploy").incidents if NEXT_SHA[:7] in i.cause_key)
        self.remediate("agent: rollback when the rerun fails", second)
        self.story("latent hazard", f"A lifecycle rule expires shop/app:{BAD_SHA[:7]} while both prod services "
                   "run on it. Nothing fails yet; the next sweep warns before any task restarts.")
        self.sim.tick()
        self.aws.delete_image("shop/app", tag=BAD_SHA[:7])
        self.sweep("latent hazard")
        self.result.notifications = list(self.hook.received)
        postmortem = self.store.get(postmortem_key(incident))
        self.result.postmortem = postmortem.data.decode() if postmortem else ""
        out = Path(tempfile.gettempdir()) / f"deploy-guard-postmortem-{incident}.md"
        out.write_text(self.result.postmortem)
        self.console.print(f"{len(self.hook.received)} notification(s) reached the Slack webhook. "
                           f"Postmortem of {incident}: {out} (also `guard postmortem {incident}`).")
        return self.result

    def _build(self, *, success: bool) -> Callable[[str, int], str | None]:
        """The CI runner: a successful rerun pushes the commit's images, a failing one pushes nothing."""

        def on_rerun(repo: str, run_id: int) -> str:
            if success:
                for repo_name, arch in (("shop/app", "amd64"), ("thumbnailer", "arm64")):
                    self.aws.push_image(repo_name, BAD_SHA[:7], arch=arch)
                return "success"
            return "failure"

        return on_rerun


def replay(console: Console) -> DemoResult:
    """Start the sandbox, seed the account, and run every stage; nothing is left running."""
    with AwsSandbox() as sandbox, GitHubSandbox() as github, WebhookSandbox() as hook, \
            tempfile.TemporaryDirectory() as tmp, \
            _environment({**sandbox.environ(), "GITHUB_API_URL": github.api_url, "GITHUB_TOKEN": DEFAULT_TOKEN}):
        sandbox.reset()  # moto's backends are per process: start from an empty account whatever ran before
        console.print(f"[dim]sandbox: AWS (moto) at {sandbox.endpoint_url}, GitHub at {github.api_url}, "
                      f"Slack webhook at {hook.url}[/]")
        return _Replay(console, sandbox, github, hook, Path(tmp)).run()


def run_demo(console: Console | None = None) -> int:
    """Print the replay; exit 0 when every stage ended as the story says."""
    console = console or Console(emoji=False, highlight=False)
    result = replay(console)
    verdict = "[bold green]every stage behaved as expected[/]" if result.as_expected else \
        f"[bold red]a stage did not behave as expected: {result.stages}[/]"
    console.print(f"\nDemo finished: {verdict}. The sandbox is stopped; nothing is left running.")
    return 0 if result.as_expected else 1

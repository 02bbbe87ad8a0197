"""`guard demo`: the incident replayed end to end on an embedded sandbox (moto, local GitHub, ECS simulator).

Every symptom comes from a cause: images that were never pushed, a cancelled build, tasks restarted by
the scheduler simulator, a real `terraform apply` that fails half-way. Nothing outside this process is
contacted. Every `$ guard …` line it prints is the command a reader can retype: the demo writes the
guard.toml it runs with, and with `keep` (`guard demo --keep`) the sandbox stays up afterwards as a
playground until Ctrl-C (or SIGTERM); otherwise nothing is left running.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from botocore.exceptions import ClientError
from rich.console import Console
from rich.panel import Panel

from guard.agent.playbook import playbook_planner
from guard.config import Mode
from guard.context import Commit
from guard.exitcodes import ExitCode
from guard.gate import GateInputs, GateReport, run
from guard.models import InputError
from guard.postmortem import postmortem_from_journal
from guard.remediate import RemediationReport
from guard.report.table import render_table
from guard.report.watch import render_watch_table
from guard.runtime import Runtime
from guard.sandbox.aws import DEFAULT_ACCOUNT, AwsSandbox
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.github_server import DEFAULT_TOKEN, GitHubSandbox
from guard.sandbox.lifecycle import apply_lifecycle_policies
from guard.sandbox.plans import (
    PlannedLambda,
    PlannedTaskDefinition,
    lambda_change,
    plan_document,
    task_definition_change,
)
from guard.sandbox.scenarios import Scenario
from guard.sandbox.terraform import TerraformError, Workspace, find_mirror, unavailable_reason, workspace
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
            "agent: rollback when the rerun fails": ExitCode.CLEAN, "lifecycle forecast": ExitCode.CLEAN,
            "latent hazard": ExitCode.FINDINGS}
BRANCH_PUSHES = (6, 4)  # branch builds pushed to shop/app before the forecast, then before the policy's run
TERRAFORM, API_CALLS = "terraform", "api"
PLAYGROUND_TICK_S = 2.0
_TF_DONE = re.compile(r"^(\S+): (Creation|Modifications) complete")
_TF_API_ERROR = re.compile(r"api error (\w+): (.*)")
# The team's Terraform for prod: it adopts the services and the function (import blocks), registers new
# task-definition revisions, points the services at them, and only then updates the function.
BYPASS_TF = """variable "registry" { type = string }
variable "tag" { type = string }
variable "region" { type = string }
variable "cluster_arn" { type = string }
variable "execution_role" { type = string }
variable "lambda_role" { type = string }

locals { services = toset(["api", "worker"]) }

import {
  for_each = local.services
  to       = aws_ecs_service.prod[each.key]
  id       = "prod/${each.key}"
}

import {
  to = aws_lambda_function.thumbnailer
  id = "thumbnailer"
}

resource "aws_ecs_task_definition" "prod" {
  for_each                 = local.services
  family                   = "prod-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = "256"
  memory                   = "512"
  execution_role_arn       = var.execution_role
  runtime_platform {
    cpu_architecture        = "X86_64"
    operating_system_family = "LINUX"
  }
  container_definitions = jsonencode([{
    name = each.key, image = "${var.registry}/shop/app:${var.tag}", essential = true, memory = 512,
    portMappings = [{ containerPort = 8080, protocol = "tcp" }],
    logConfiguration = { logDriver = "awslogs", options = {
      "awslogs-group" = "/ecs/prod/${each.key}", "awslogs-region" = var.region,
      "awslogs-stream-prefix" = "prod-${each.key}" } }
  }])
}

resource "aws_ecs_service" "prod" {
  for_each        = local.services
  name            = each.key
  cluster         = var.cluster_arn
  task_definition = aws_ecs_task_definition.prod[each.key].arn
  desired_count   = 2
  launch_type     = "FARGATE"
  lifecycle {
    ignore_changes = [network_configuration]
  }
}

resource "aws_lambda_function" "thumbnailer" {
  function_name = "thumbnailer"
  package_type  = "Image"
  image_uri     = "${var.registry}/thumbnailer:${var.tag}"
  architectures = ["arm64"]
  role          = var.lambda_role
  depends_on    = [aws_ecs_service.prod]
}
"""


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
    bypass: str = ""  # TERRAFORM (a real partial apply) or API_CALLS (terraform or its provider missing)
    after_bypass: dict[str, str] = field(default_factory=dict)  # resource -> the image it runs, read back
    lambda_rejected: str = ""
    expired: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest) the lifecycle run expired
    postmortem: str = ""
    postmortem_path: Path | None = None

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


def guard_toml(root: Path, webhook_url: str) -> str:
    """The configuration every stage runs with (state under `root`, alerts to the local Slack webhook)."""
    return f"""# deploy-guard configuration of the demo's sandbox (`guard demo` wrote it)
build_workflows = ["build.yml"]

[watch]
state = {json.dumps(str(root / "state"))}

[notify]
heartbeat = false

[[notify.routes]]
type = "slack"
name = "slack"
url = {json.dumps(webhook_url)}

[remediate]
mode = "act"
build_repository = "{REPO}"
poll_seconds = 15
wait_timeout_seconds = 600

[[remediate.allow]]
resource = "ecs:prod/*"
actions = ["ecs_rollback", "redeploy"]

[[remediate.allow]]
resource = "github:{REPO}"
actions = ["rerun_build"]
"""


class _Replay:
    """The stages, sharing one sandbox, one simulator and one directory (guard.toml, state, plans, terraform)."""

    def __init__(self, console: Console, sandbox: AwsSandbox, github: GitHubSandbox, hook: WebhookSandbox,
                 root: Path) -> None:
        self.console, self.sandbox, self.github, self.hook, self.root = console, sandbox, github, hook, root
        self.aws = Scenario(sandbox)
        self.world = seed(self.aws, github)
        self.sim = EcsSimulator(sandbox)
        for svc in SERVICES:  # like the services of the outage: no deployment circuit breaker
            self.sim.enable_circuit_breaker("prod", svc, enable=False)
        self.sim.tick(2)
        self.config_path = root / "guard.toml"
        self.config_path.write_text(guard_toml(root, hook.url))
        # the verbs' own wiring (Runtime.load of that file); only time is simulated instead of slept
        self.runtime = Runtime.load(self.config_path, wait=self._wait,
                                    progress=lambda message: self.console.print(f"  [dim]… {message}[/]"))
        self.store = self.runtime.store
        self.result = DemoResult()

    def _wait(self, seconds: float) -> None:
        """Simulated time passes for GitHub and ECS instead of the demo sleeping."""
        self.github.advance()
        self.sim.advance(seconds)
        self.sim.tick()

    def plain(self, text: str) -> None:
        """Print `text` as it is: no markup, no highlighting, never wrapped (commands and paths are copied)."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def command(self, *args: str) -> None:
        """Print the `guard` command a stage runs."""
        self.plain("$ " + shlex.join(["guard", "--config", str(self.config_path), *args]))

    def story(self, name: str, text: str) -> None:
        self.console.print(Panel(text, title=f"[bold]{name}[/]", expand=False))

    def gate(self, name: str, sha: str, text: str) -> None:
        self.story(name, text)
        path = self.root / f"{name.replace(' ', '-')}.tfplan.json"
        path.write_text(json.dumps(deploy_plan(self.world, sha), indent=2))
        self.command("check", "--plan", str(path), "--sha", sha)
        report = run(GateInputs(plans=(path,)), self.runtime.check_context(Commit.from_env(None, sha)))
        render_table(report, self.console)
        self.result.stages[name] = report.exit_code
        self.result.reports[name] = report

    def sweep(self, name: str, *, verbose: bool = False) -> WatchReport:
        self.command("watch", "--once", "--cluster", "prod", *(["--verbose"] if verbose else []))
        report = replace(self.runtime).watchdog().sweep(self.runtime.watch_scope(("prod",)))
        render_watch_table(report, self.console, verbose=verbose)
        self.result.stages[name] = report.exit_code
        self.result.sweeps[name] = report
        return report

    def plan_bypass(self, sha: str, background: ThreadPoolExecutor) -> Future[Workspace] | None:
        """Start `terraform init` and `plan` for the hand-run apply in the background; None without terraform."""
        if unavailable_reason() is not None:
            return None
        ws = workspace(self.root / "terraform", self.sandbox)
        ws.write("main.tf", BYPASS_TF)
        w = self.world
        variables = {"registry": w.registry, "tag": sha[:7], "region": self.sandbox.region,
                     "cluster_arn": f"arn:aws:ecs:{self.sandbox.region}:{DEFAULT_ACCOUNT}:cluster/prod",
                     "execution_role": w.execution_role, "lambda_role": w.lambda_role}

        def prepare() -> Workspace:
            ws.init()
            ws.plan("bypass.tfplan", **variables)
            return ws

        return background.submit(prepare)

    def bypass(self, sha: str, planned: Future[Workspace] | None) -> None:
        """What a hand-run `terraform apply` does: new revisions for both prod services, then the Lambda fails."""
        why = unavailable_reason()
        if planned is not None:
            try:
                self._apply(planned.result())
            except TerraformError as exc:
                why = f"terraform could not plan: {str(exc).strip().splitlines()[-1]}"
            else:
                return
        self.result.bypass = API_CALLS
        self.plain(f"  in place of terraform apply, the same API calls ({why})")
        ecs = self.aws.client("ecs")
        for svc in SERVICES:
            td = self.aws.task_definition(f"prod-{svc}", [(svc, f"{self.world.registry}/shop/app:{sha[:7]}")],
                                          execution_role=self.world.execution_role, log_group=f"/ecs/prod/{svc}")
            ecs.update_service(cluster="prod", service=svc, taskDefinition=td)
        with _environment({"MOTO_LAMBDA_STUB_ECR": "false"}):  # Lambda checks the image exists in ECR
            try:
                self.aws.client("lambda").update_function_code(
                    FunctionName="thumbnailer", ImageUri=f"{self.world.registry}/thumbnailer:{sha[:7]}")
            except ClientError as exc:
                error = exc.response.get("Error", {})
                self.result.lambda_rejected = f"{error.get('Code')}: {error.get('Message')}"

    def _apply(self, ws: Workspace) -> None:
        """The real partial apply: ECS changes land, the Lambda's UpdateFunctionCode is refused, apply exits 1."""
        self.result.bypass = TERRAFORM
        self.plain(f"  real terraform apply, hashicorp/aws from {find_mirror()}, in {ws.path}")
        self.plain("$ terraform plan -out=bypass.tfplan && terraform apply bypass.tfplan")
        with _environment({"MOTO_LAMBDA_STUB_ECR": "false"}):  # Lambda checks the image exists in ECR
            proc = ws.run("apply", "-input=false", "-no-color", "bypass.tfplan", check=False)
        for line in proc.stdout.splitlines():
            if _TF_DONE.match(line):
                self.plain(f"  {line}")
        errors = [line.strip() for line in proc.stderr.splitlines() if line.strip().startswith("Error:")]
        rejected = next((m for m in map(_TF_API_ERROR.search, errors) if m), None)
        self.result.lambda_rejected = f"{rejected.group(1)}: {rejected.group(2)}" if rejected else "; ".join(errors)
        self.plain(f"  terraform apply exited {proc.returncode}: {errors[0] if errors else 'no error'}")

    def read_back(self) -> dict[str, str]:
        """The image each prod service's task definition and the Lambda's code name, as AWS reports them."""
        ecs = self.aws.client("ecs")
        found = {}
        for service in ecs.describe_services(cluster="prod", services=list(SERVICES))["services"]:
            td = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
            found[f"ecs:prod/{service['serviceName']}"] = str(td["containerDefinitions"][0]["image"])
        code = self.aws.client("lambda").get_function(FunctionName="thumbnailer")["Code"]
        found["lambda:thumbnailer"] = str(code["ImageUri"])
        return found

    def remediate(self, name: str, incident: str) -> None:
        self.command("remediate", incident, "--mode", "act")
        report = replace(self.runtime).remediator(playbook_planner, "demo-agent").run(incident, mode=Mode.ACT)
        for r in report.results:
            self.console.print(f"  {r.status:9} {r.action['description']}: {r.reason}")
        journal = Path(self.runtime.config.watch.state) / report.postmortem_key
        self.plain(f"  {report.status.value}; journal and postmortem: {journal}")
        self.result.stages[name] = report.exit_code
        self.result.remediations[name] = report

    def run(self, *, files_stay: bool) -> DemoResult:
        """Every stage in order; terraform plans the hand-run apply in the background meanwhile."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-terraform") as background:
            return self._run(files_stay, background)

    def _run(self, files_stay: bool, background: ThreadPoolExecutor) -> DemoResult:
        w = self.world
        self.console.print(
            f"Seeded account {DEFAULT_ACCOUNT}: clusters staging and prod (api and worker on shop/app), Lambda "
            f"thumbnailer (arm64), ECR with lifecycle policies; {REPO} has build run {w.good_run} (success) for "
            f"{GOOD_SHA[:7]} and run {w.bad_run} (cancelled by a CI race) for {BAD_SHA[:7]}.")
        self.plain(f"guard.toml: {self.config_path}")
        planned = self.plan_bypass(BAD_SHA, background)
        self.gate("green deploy", GOOD_SHA, "The deploy job for the built commit runs the gate on its plan.")
        self.gate("broken deploy", BAD_SHA, "The build for the next commit was cancelled; the deploy job runs anyway "
                  "and points ECS and the Lambda at images that were never pushed. The gate blocks it.")
        self.story("gate bypassed", "Someone runs `terraform apply` by hand. ECS is changed first; then the "
                   "Lambda change is rejected. The old tasks keep serving, so nothing looks wrong from outside.")
        self.bypass(BAD_SHA, planned)
        self.result.after_bypass = self.read_back()
        now = self.result.after_bypass.items()
        self.plain("  AWS now: " + ", ".join(f"{target} on {image.split('/', 1)[1]}" for target, image in now))
        self.console.print(f"  Lambda update rejected: {self.result.lambda_rejected}", markup=False)
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
        self.story("lifecycle forecast", "CI pushes branch builds to shop/app, whose lifecycle rule keeps the last "
                   f"10 images. Before the rule reaches shop/app:{BAD_SHA[:7]}, which both prod services run, the "
                   "sweep names the rule and how many more pushes it takes (IMG101, a warning).")
        self.sim.tick()
        self._push_branches(1, BRANCH_PUSHES[0])
        self.sweep("lifecycle forecast", verbose=True)
        self.story("latent hazard", f"{BRANCH_PUSHES[1]} pushes later the rule's next run expires "
                   f"shop/app:{BAD_SHA[:7]} while both prod services run on it. Nothing fails yet; the next sweep "
                   "warns before any task restarts.")
        self._push_branches(BRANCH_PUSHES[0] + 1, sum(BRANCH_PUSHES))
        details = self.aws.client("ecr").describe_images(repositoryName="shop/app")["imageDetails"]
        tags = {d["imageDigest"]: ",".join(d.get("imageTags", [])) for d in details}
        self.result.expired = apply_lifecycle_policies(self.sandbox)  # as ECR runs the policies
        self.plain("  lifecycle policies ran: expired " + ", ".join(
            f"{repo}:{tags.get(digest) or digest}" for repo, digest in self.result.expired))
        self.sweep("latent hazard")
        self.result.notifications = list(self.hook.received)
        self.result.postmortem = postmortem_from_journal(self.store, incident)  # what `guard postmortem` prints
        out = (self.root if files_stay else Path(tempfile.gettempdir())) / f"deploy-guard-postmortem-{incident}.md"
        out.write_text(self.result.postmortem)
        self.result.postmortem_path = out
        self.plain(f"{len(self.hook.received)} notification(s) reached the Slack webhook. Postmortem of {incident}: "
                   f"{out}")
        if files_stay:
            self.command("postmortem", incident)
        return self.result

    def serve(self) -> None:
        """The playground: print how to reach the sandbox, keep its time moving, return on Ctrl-C / SIGTERM."""
        exports = playground_environment(self.sandbox, self.github)
        if self.result.bypass == TERRAFORM:
            exports["TF_CLI_CONFIG_FILE"] = str(self.root / "terraform" / "cli.tfrc")
        env_file = self.root / "env.sh"
        env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in exports.items()))
        self.console.print("\nThe sandbox keeps running as a playground (Ctrl-C stops it). In another shell:")
        for name, value in exports.items():
            self.plain(f"export {name}={shlex.quote(value)}")
        self.plain(f"(the same lines are in {env_file}: source it)")
        self.plain(f"\n{self.config_path}:")
        self.plain(self.config_path.read_text().rstrip())
        self.plain("\nEvery `$ guard …` line above runs as printed; reruns of the build now succeed and "
                           "the ECS simulator keeps ticking.")
        self.github.on_rerun = self._build(success=True)
        stop = threading.Event()
        try:
            while not stop.wait(PLAYGROUND_TICK_S):
                self.github.advance()
                self.sim.tick()
        except KeyboardInterrupt:
            self.console.print("\nStopping the playground.")

    def _push_branches(self, first: int, last: int) -> None:
        for n in range(first, last + 1):
            self.aws.push_image("shop/app", f"branch-{n}", arch="amd64")

    def _build(self, *, success: bool) -> Callable[[str, int], str | None]:
        """The CI runner: a successful rerun pushes the commit's images, a failing one pushes nothing."""

        def on_rerun(repo: str, run_id: int) -> str:
            if success:
                for repo_name, arch in (("shop/app", "amd64"), ("thumbnailer", "arm64")):
                    self.aws.push_image(repo_name, BAD_SHA[:7], arch=arch)
                return "success"
            return "failure"

        return on_rerun


def playground_environment(sandbox: AwsSandbox, github: GitHubSandbox) -> dict[str, str]:
    """The standard variables that point AWS and GitHub clients (and `guard`) at the sandbox."""
    return {**sandbox.environ(), "GITHUB_API_URL": github.api_url, "GITHUB_TOKEN": DEFAULT_TOKEN,
            "GITHUB_REPOSITORY": REPO}


def playground_directory(directory: Path | None) -> Path:
    """Where `--keep` keeps its files: `directory` (created; must be empty), else a new temporary directory."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="deploy-guard-playground-"))
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InputError(f"{directory} is not an empty directory: the playground's state must start empty")
    directory.mkdir(parents=True, exist_ok=True)
    return directory.resolve()


@contextmanager
def _directory(directory: Path | None) -> Iterator[Path]:
    if directory is not None:
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="deploy-guard-demo-") as tmp:
        yield Path(tmp)


def replay(console: Console, directory: Path | None = None, *, keep: bool = False) -> DemoResult:
    """Start the sandbox, seed the account, and run every stage; nothing is left running on return.

    The files (guard.toml, state, plans, terraform workspace) go to `directory`, where they stay, else to a
    temporary directory; with `keep`, the sandbox serves as a playground until Ctrl-C or SIGTERM.
    """
    with AwsSandbox() as sandbox, GitHubSandbox() as github, WebhookSandbox() as hook, \
            _directory(directory) as root, _environment(playground_environment(sandbox, github)):
        sandbox.reset()  # moto's backends are per process: start from an empty account whatever ran before
        console.print(f"[dim]sandbox: AWS (moto) at {sandbox.endpoint_url}, GitHub at {github.api_url}, "
                      f"Slack webhook at {hook.url}[/]")
        demo = _Replay(console, sandbox, github, hook, root)
        result = demo.run(files_stay=directory is not None)
        if keep:
            demo.serve()
        return result


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(console: Console | None = None, kept: Path | None = None) -> int:
    """Print the replay (then serve the playground in `kept`); exit 0 when every stage ended as the story says."""
    console = console or Console(emoji=False, highlight=False)
    previous = signal.signal(signal.SIGTERM, _interrupt) if kept is not None else None
    try:
        result = replay(console, kept, keep=kept is not None)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    verdict = "[bold green]every stage behaved as expected[/]" if result.as_expected else \
        f"[bold red]a stage did not behave as expected: {result.stages}[/]"
    where = f" Its files stay in {kept}." if kept is not None else \
        " `guard demo --keep` keeps it running to retype the commands."
    console.print(f"\nDemo finished: {verdict}. The sandbox is stopped; nothing is left running.{where}")
    return 0 if result.as_expected else 1

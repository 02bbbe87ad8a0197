"""The `guard` command: thin verbs over guard.gate (and, later, watch and remediate)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from guard.exitcodes import ExitCode
from guard.models import InputError, Severity

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class GlobalOptions:
    """Options shared by every verb."""

    config: Path | None
    debug: bool


def _fail(message: str, code: ExitCode) -> None:
    click.echo(f"guard: {message}", err=True)
    sys.exit(int(code))


@contextmanager
def _exit_on_bad_input() -> Iterator[None]:
    """Bad input or configuration: exit 2; AWS or GitHub could not be read: exit 3 (fail closed)."""
    from guard.errors import GatewayError

    try:
        yield
    except (InputError, ValueError) as exc:
        _fail(str(exc), ExitCode.USAGE)
    except GatewayError as exc:
        _fail(f"could not verify: {exc}", ExitCode.UNVERIFIED)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="deploy-guard", prog_name="guard")
@click.option("--config", type=click.Path(path_type=Path), help="guard.toml (default: ./guard.toml or "
              "[tool.guard] in ./pyproject.toml).")
@click.option("--debug", is_flag=True, help="Print tracebacks of crashed checks to stderr.")
@click.pass_context
def main(ctx: click.Context, config: Path | None, debug: bool) -> None:
    """deploy-guard: stop broken deploys before they land.

    Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage or input error, 3 could not verify.
    """
    from guard.logs import quiet_wire_loggers

    quiet_wire_loggers()
    ctx.obj = GlobalOptions(config, debug)


@main.command()
@click.option("--plan", "plans", multiple=True, type=click.Path(path_type=Path),
              help="`terraform show -json` output, or a binary plan file (needs terraform on PATH).")
@click.option("--task-def", "task_defs", multiple=True, type=click.Path(path_type=Path),
              help="ECS task definition JSON (registered or rendered).")
@click.option("--service", "services", multiple=True, metavar="CLUSTER/SERVICE",
              help="A live ECS service; combine with --image to check a new image for it.")
@click.option("--image", "images", multiple=True, metavar="CONTAINER=URI",
              help="New image for a container of the --service(s).")
@click.option("--lambda", "lambdas", multiple=True, metavar="FUNCTION", help="A live image-based Lambda.")
@click.option("--image-uri", "image_uris", multiple=True, metavar="URI",
              help="New image for the --lambda at the same position.")
@click.option("--parity", nargs=2, metavar="STAGING PROD",
              help="Compare two configs: files, ecs:CLUSTER/SERVICE or lambda:FUNCTION.")
@click.option("--sha", help="Commit being deployed (default: GITHUB_SHA).")
@click.option("--repository", help="owner/repo whose builds to check (default: GITHUB_REPOSITORY).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--fail-on", type=click.Choice([s.value for s in Severity]), default=None,
              help="Lowest severity that fails the run (default: error, or fail_on in config).")
@click.option("--allow-unverified", is_flag=True, help="Exit 0/1 even when something could not be verified.")
@click.pass_obj
def check(opts: GlobalOptions, plans: tuple[Path, ...], task_defs: tuple[Path, ...], services: tuple[str, ...],
          images: tuple[str, ...], lambdas: tuple[str, ...], image_uris: tuple[str, ...],
          parity: tuple[str, str] | None, sha: str | None, repository: str | None, fmt: str,
          fail_on: str | None, allow_unverified: bool) -> None:
    """Verify every image and reference a deploy will use, before it is applied."""
    from guard import gate
    from guard.config import load_config
    from guard.context import CheckContext, Commit
    from guard.errors import GatewayError
    from guard.gateways.aws import AwsSession, AwsSettings

    started = time.monotonic()
    inputs = gate.GateInputs(plans, task_defs, services, images, lambdas, image_uris, parity or None)
    try:
        config = load_config(opts.config)
        aws = AwsSession(AwsSettings(account_roles=config.account_roles))
        ctx = CheckContext(aws, config, Commit.from_env(repository, sha))
        plan = gate.build_plan(inputs, ctx)
    except InputError as exc:
        _fail(str(exc), ExitCode.USAGE)
        return
    except GatewayError as exc:
        _fail(f"could not read the deploy's inputs: {exc}", ExitCode.UNVERIFIED)
        return
    report = gate.run_checks(plan, ctx, allow_unverified=allow_unverified,
                             fail_on=Severity(fail_on) if fail_on else None, debug=opts.debug, started=started)
    _emit(report, fmt)
    sys.exit(int(report.exit_code))


def _emit(report: Any, fmt: str) -> None:
    from guard.report.github import publish

    for line in publish(report):  # the runner reads workflow commands on both streams
        click.echo(line, err=fmt == "json")
    if fmt == "json":
        from guard.report.json_ import render_json

        click.echo(render_json(report))
    else:
        from rich.console import Console

        from guard.report.table import render_table

        render_table(report, Console(emoji=False, highlight=False))


@main.command()
@click.option("--cluster", "clusters", multiple=True, help="Cluster to sweep (default: every cluster, or [watch]).")
@click.option("--service", "services", multiple=True, help="Service name or CLUSTER/SERVICE (default: all).")
@click.option("--function", "functions", multiple=True, help="Lambda function (default: every image function).")
@click.option("--no-lambda", is_flag=True, help="Do not watch Lambda functions.")
@click.option("--state", help="Where incidents and known-good live: a directory, s3://BUCKET/PREFIX or "
              "dynamodb://TABLE (default: [watch] state, else .guard/state).")
@click.option("--once", is_flag=True, help="One sweep, then exit with its code.")
@click.option("--interval", type=click.IntRange(min=5), help="Seconds between sweeps (default: [watch] or 60).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def watch(opts: GlobalOptions, clusters: tuple[str, ...], services: tuple[str, ...], functions: tuple[str, ...],
          no_lambda: bool, state: str | None, once: bool, interval: int | None, fmt: str) -> None:
    """Sweep ECS services and Lambda functions for failures and latent hazards; report incidents."""
    from guard.config import load_config
    from guard.errors import GatewayError
    from guard.gateways.aws import AwsSession, AwsSettings
    from guard.notify import StdoutRoute, build_routes
    from guard.state import store_from_url
    from guard.watch import Watchdog, WatchScope
    from guard.watcher import WatchSettings

    if no_lambda and functions:
        _fail("--no-lambda and --function contradict each other", ExitCode.USAGE)
    try:
        config = load_config(opts.config)
        wc = config.watch
        aws = AwsSession(AwsSettings(account_roles=config.account_roles))
        store = store_from_url(state or wc.state, aws)
        routes = [*build_routes(config.notify, aws, aws.stats)]
        if fmt == "table":
            routes.insert(0, StdoutRoute(sys.stderr))
    except (InputError, ValueError) as exc:
        _fail(str(exc), ExitCode.USAGE)
        return
    from datetime import timedelta

    scope = WatchScope(clusters or wc.clusters, services or wc.services,
                       () if no_lambda else (functions or wc.functions))
    settings = WatchSettings(timedelta(minutes=wc.lookback_minutes), timedelta(minutes=wc.stall_after_minutes),
                             timedelta(minutes=wc.below_desired_grace_minutes), wc.crash_threshold)
    dog = Watchdog(aws, store, settings=settings, routes=routes, heartbeat=config.notify.heartbeat)
    while True:
        try:
            report = dog.sweep(scope, debug=opts.debug)
        except GatewayError as exc:
            _fail(f"could not read or write watchdog state: {exc}", ExitCode.UNVERIFIED)
            return
        _emit_watch(report, fmt)
        if once:
            sys.exit(int(report.exit_code))
        time.sleep(interval or wc.interval_seconds)


def _emit_watch(report: Any, fmt: str) -> None:
    if fmt == "json":
        from guard.report.watch import render_watch_json

        click.echo(render_watch_json(report))
    else:
        from rich.console import Console

        from guard.report.watch import render_watch_table

        render_watch_table(report, Console(emoji=False, highlight=False))


@main.command()
@click.option("--test", "test_routes", is_flag=True, required=True,
              help="Send a test message through every configured route; exit 1 if any fails.")
@click.pass_obj
def notify(opts: GlobalOptions, test_routes: bool) -> None:
    """Self-test the notification routes (a route that silently fails is how alerts get lost)."""
    from guard.config import load_config
    from guard.gateways.aws import AwsSession, AwsSettings
    from guard.notify import StdoutRoute, build_routes, notify_test

    try:
        config = load_config(opts.config)
        aws = AwsSession(AwsSettings(max_attempts=2))
        routes = [StdoutRoute(sys.stderr), *build_routes(config.notify, aws, aws.stats)]
    except (InputError, ValueError) as exc:
        _fail(str(exc), ExitCode.USAGE)
        return
    results = notify_test(routes)
    for r in results:
        click.echo(f"{'ok    ' if r.ok else 'FAILED'} {r.route}" + (f": {r.error}" if r.error else ""))
    if len(routes) == 1:
        click.echo("warning: no routes configured in [notify]: incidents reach only this process's output",
                   err=True)
    sys.exit(int(ExitCode.FINDINGS if any(not r.ok for r in results) else ExitCode.CLEAN))


def _remediation_runtime(opts: GlobalOptions, state: str | None, progress: Any = None) -> Any:
    """Config, AWS session, state store, gate, action and plan contexts: shared by remediate and rollback."""
    from guard.actions import ActionContext
    from guard.agent.playbook import PlanContext
    from guard.config import load_config
    from guard.gateways.aws import AwsSession, AwsSettings
    from guard.notify import StdoutRoute, build_routes
    from guard.policy import PolicyGate
    from guard.state import store_from_url

    config = load_config(opts.config)
    aws = AwsSession(AwsSettings(account_roles=config.account_roles))
    store = store_from_url(state or config.watch.state, aws)
    rc = config.remediate
    routes = [StdoutRoute(sys.stderr), *build_routes(config.notify, aws, aws.stats)]
    ctx = ActionContext(aws, timeout_s=rc.wait_timeout_seconds, poll_s=rc.poll_seconds, routes=routes,
                        progress=progress or (lambda message: click.echo(f"  … {message}", err=True)))
    github = None
    if os.environ.get("GITHUB_TOKEN") and rc.build_repository:
        from guard.gateways.github import PyGithubGateway

        github = PyGithubGateway.from_env(aws.stats)
    return config, store, PolicyGate(rc, store, aws), ctx, PlanContext(store, aws, rc, github)


def _planner() -> Any:
    """The model-backed planner when ANTHROPIC_API_KEY is set, else the deterministic playbook."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        from guard.agent.llm import LlmPlanner

        return LlmPlanner()
    from guard.agent.playbook import playbook_planner

    return playbook_planner


@main.command()
@click.argument("incident_id", required=False)
@click.option("--mode", type=click.Choice(["observe", "propose", "act"]), help="Default: [remediate] mode, "
              "else observe.")
@click.option("--dry-run", is_flag=True, help="Plan and show every decision; change nothing.")
@click.option("--state", help="Watchdog state (default: [watch] state).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def remediate(opts: GlobalOptions, incident_id: str | None, mode: str | None, dry_run: bool, state: str | None,
              fmt: str) -> None:
    """Plan and, within policy, repair open incidents; every step is journaled."""
    from guard.policy import Mode
    from guard.remediate import Remediator, open_incident_ids

    with _exit_on_bad_input():
        config, store, gate, ctx, plan_ctx = _remediation_runtime(opts, state)
        ids = [incident_id] if incident_id else open_incident_ids(store)
        remediator = Remediator(store, gate, ctx, plan_ctx, _planner())
        run_mode = Mode(mode) if mode else config.remediate.mode
        reports = [remediator.run(i, mode=run_mode, dry_run=dry_run) for i in ids]
    if fmt == "json":
        import json

        click.echo(json.dumps({"version": 1, "remediations": [r.to_json() for r in reports]}, indent=2))
    else:
        for r in reports:
            click.echo(f"{r.incident_id}: {r.status} (mode {r.mode.value}{', dry run' if dry_run else ''})")
            for res in r.results:
                click.echo(f"  {res.status:9} {res.action.get('description', res.action.get('kind'))}: {res.reason}")
            if r.postmortem_key:
                click.echo(f"  postmortem: {r.postmortem_key} (guard postmortem {r.incident_id})")
        if not reports:
            click.echo("no open incidents")
    sys.exit(int(max((r.exit_code for r in reports), default=ExitCode.CLEAN)))


@main.command()
@click.option("--service", metavar="CLUSTER/SERVICE", help="ECS service to roll back.")
@click.option("--lambda", "function", metavar="FUNCTION", help="Lambda function whose alias to roll back.")
@click.option("--to", "target", help="Task definition ARN or Lambda version (default: the recorded known-good).")
@click.option("--alias", help="Lambda alias (default: [remediate] lambda_alias, else live).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--state", help="Watchdog state holding the known-good records (default: [watch] state).")
@click.pass_obj
def rollback(opts: GlobalOptions, service: str | None, function: str | None, target: str | None,
             alias: str | None, yes: bool, state: str | None) -> None:
    """Roll one service or Lambda alias back to its known-good revision, and wait until it is steady."""
    from guard.manual import manual_rollback

    if bool(service) == bool(function):
        _fail("give exactly one of --service CLUSTER/SERVICE or --lambda FUNCTION", ExitCode.USAGE)
    with _exit_on_bad_input():
        _, store, gate, ctx, plan_ctx = _remediation_runtime(opts, state)
        code = manual_rollback(store, gate, ctx, plan_ctx, service=service, function=function, target=target,
                               alias=alias, confirm=None if yes else click.confirm, echo=click.echo)
    sys.exit(int(code))


@main.command()
@click.argument("incident_id")
@click.option("--state", help="Watchdog state (default: [watch] state).")
@click.option("--output", type=click.Path(path_type=Path), help="Write the Markdown here instead of stdout.")
@click.pass_obj
def postmortem(opts: GlobalOptions, incident_id: str, state: str | None, output: Path | None) -> None:
    """Render the incident's postmortem from its journal."""
    from datetime import UTC, datetime

    from guard.config import load_config
    from guard.gateways.aws import AwsSession
    from guard.journal import EntryKind, Journal
    from guard.postmortem import render_postmortem
    from guard.state import store_from_url
    from guard.triage import incident_from_json

    try:
        config = load_config(opts.config)
        store = store_from_url(state or config.watch.state, AwsSession())
        entries = Journal(store, incident_id).entries()
    except (InputError, ValueError) as exc:
        _fail(str(exc), ExitCode.USAGE)
        return
    if not entries:
        _fail(f"no journal for {incident_id}", ExitCode.USAGE)
    snapshot = next((e.data for e in entries if e.kind is EntryKind.INCIDENT), None)
    incident = incident_from_json(snapshot) if snapshot else None
    text = render_postmortem(incident, entries, generated_at=datetime.now(UTC).isoformat())
    if output:
        output.write_text(text)
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@main.command("iam-policy")
@click.option("--role", "roles", multiple=True, type=click.Choice(["check", "watch", "remediate"]),
              help="Capabilities to grant (default: all three).")
@click.pass_obj
def iam_policy(opts: GlobalOptions, roles: tuple[str, ...]) -> None:
    """Print the least-privilege IAM policy for the configured scope (allowlist expanded to exact ARNs)."""
    from guard.config import load_config
    from guard.errors import GatewayError
    from guard.gateways.aws import AwsSession
    from guard.iam import render_policy, scope_from_config

    try:
        config = load_config(opts.config)
        scope = scope_from_config(config, AwsSession(), roles or ("check", "watch", "remediate"))
        click.echo(render_policy(scope))
    except (InputError, ValueError) as exc:
        _fail(str(exc), ExitCode.USAGE)
    except GatewayError as exc:
        _fail(f"could not read the account to scope the policy: {exc}", ExitCode.UNVERIFIED)


@main.command("checks")
def list_checks() -> None:
    """List every check with its ID, default severity and what it proves."""
    from guard.docs import render_catalogue

    click.echo(render_catalogue(), nl=False)


@main.command()
def demo() -> None:
    """Replay the incident on an embedded sandbox (moto + local GitHub): no AWS account needed."""
    from guard.sandbox.demo import run_demo

    sys.exit(run_demo())

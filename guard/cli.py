"""The `guard` command: thin verbs over the core.

Each verb parses its options, gets its objects from `guard.runtime.Runtime`, calls one core function,
renders, and exits with the contract's code. Bad input exits 2 and unreadable AWS or GitHub exits 3, through
one guard shared by every verb.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from guard.exitcodes import ExitCode
from guard.models import InputError, Severity

if TYPE_CHECKING:
    from rich.console import Console

    from guard.runtime import Runtime

@dataclass(frozen=True)
class GlobalOptions:
    """Options shared by every verb, accepted before or after it."""

    config: Path | None
    debug: bool
    region: str | None = None
    profile: str | None = None


_VALUED = ("--config", "--region", "--profile")
_FLAGS = ("--debug",)


def hoist_global_options(args: list[str], verbs: set[str]) -> list[str]:
    """Move global options written after the verb in front of it (`guard check --region X` as the AWS CLI)."""
    i = 0
    while i < len(args) and args[i] not in verbs:
        i += 2 if args[i] in _VALUED else 1
    if i >= len(args):
        return args
    head, verb, rest = args[:i], args[i], args[i + 1:]
    moved: list[str] = []
    kept: list[str] = []
    j = 0
    while j < len(rest):
        token = rest[j]
        if token == "--":
            kept += rest[j:]
            break
        if token in _FLAGS or token.startswith(tuple(f"{o}=" for o in _VALUED)):
            moved.append(token)
        elif token in _VALUED and j + 1 < len(rest):
            moved += rest[j:j + 2]
            j += 1
        else:
            kept.append(token)
        j += 1
    return [*head, *moved, verb, *kept]


class _Guard(click.Group):
    """The `guard` group: global options may also follow the verb."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Hoist global options, then parse as usual."""
        return super().parse_args(ctx, hoist_global_options(args, set(self.commands)))


def _fail(message: str, code: ExitCode) -> None:
    click.echo(f"guard: {message}", err=True)
    sys.exit(int(code))


@contextmanager
def _exit_on_bad_input(unreadable: str = "could not verify") -> Iterator[None]:
    """Bad input or configuration: exit 2; AWS or GitHub could not be read: exit 3 (fail closed)."""
    from guard.errors import GatewayError

    try:
        yield
    except (InputError, ValueError) as exc:
        _fail(str(exc), ExitCode.USAGE)
    except GatewayError as exc:
        _fail(f"{unreadable}: {exc}", ExitCode.UNVERIFIED)


def _runtime(opts: GlobalOptions, **overrides: Any) -> Runtime:
    """The runtime for this invocation (configuration read and validated whole; --region, --profile applied)."""
    from guard.runtime import Runtime

    if opts.region or opts.profile:
        from dataclasses import replace

        from guard.gateways.aws import AwsSettings

        settings = overrides.get("settings") or AwsSettings()
        overrides["settings"] = replace(settings, region=opts.region or settings.region,
                                        profile=opts.profile or settings.profile)
    return Runtime.load(opts.config, **overrides)


def _console() -> Console:
    from rich.console import Console

    return Console(emoji=False, highlight=False)


@click.group(cls=_Guard, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="deploy-guard", prog_name="guard")
@click.option("--config", type=click.Path(path_type=Path), help="guard.toml (default: ./guard.toml or "
              "[tool.guard] in ./pyproject.toml).")
@click.option("--region", help="AWS region (default: AWS_REGION, then the profile's region).")
@click.option("--profile", help="AWS named profile (default: the standard credential chain).")
@click.option("--debug", is_flag=True, help="Print tracebacks of crashed checks to stderr.")
@click.pass_context
def main(ctx: click.Context, config: Path | None, region: str | None, profile: str | None, debug: bool) -> None:
    """deploy-guard: stop broken deploys before they land.

    Global options may come before or after the verb. Exit codes: 0 clean, 1 findings at or above
    --fail-on, 2 usage or input error, 3 could not verify.
    """
    from guard.logs import quiet_wire_loggers

    quiet_wire_loggers()
    ctx.obj = GlobalOptions(config, debug, region, profile)


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
    from guard.context import Commit
    from guard.report.render import emit_check

    inputs = gate.GateInputs(plans, task_defs, services, images, lambdas, image_uris, parity or None)
    options = gate.GateOptions(Severity(fail_on) if fail_on else None, allow_unverified, opts.debug)
    with _exit_on_bad_input("could not read the deploy's inputs"):
        runtime = _runtime(opts)
        report = gate.run(inputs, runtime.check_context(Commit.from_env(repository, sha)), options)
    emit_check(report, fmt, _console)  # rich is imported only for a table
    sys.exit(int(report.exit_code))


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
@click.option("--verbose", "-v", is_flag=True, help="Show each incident's evidence per resource.")
@click.pass_obj
def watch(opts: GlobalOptions, clusters: tuple[str, ...], services: tuple[str, ...], functions: tuple[str, ...],
          no_lambda: bool, state: str | None, once: bool, interval: int | None, fmt: str, verbose: bool) -> None:
    """Sweep ECS services and Lambda functions for failures and latent hazards; report incidents."""
    from guard.report.render import emit_watch
    from guard.watch import watch_loop

    if no_lambda and functions:
        _fail("--no-lambda and --function contradict each other", ExitCode.USAGE)
    with _exit_on_bad_input("could not read or write watchdog state"):
        runtime = _runtime(opts, state=state, stdout_route=sys.stderr if fmt == "table" else None)
        dog, scope = runtime.watchdog(), runtime.watch_scope(clusters, services, functions, no_lambda=no_lambda)
        for report in watch_loop(dog, scope, interval or runtime.config.watch.interval_seconds, once=once,
                                 debug=opts.debug):
            emit_watch(report, fmt, _console(), verbose=verbose, stamp=not once)
    sys.exit(int(report.exit_code))


@main.command()
@click.option("--test", "test_routes", is_flag=True, required=True,
              help="Send a test message through every configured route; exit 1 if any fails.")
@click.pass_obj
def notify(opts: GlobalOptions, test_routes: bool) -> None:
    """Self-test the notification routes (a route that silently fails is how alerts get lost)."""
    from guard.gateways.aws import AwsSettings
    from guard.notify.routes import notify_test

    with _exit_on_bad_input():
        routes = _runtime(opts, settings=AwsSettings(max_attempts=2), stdout_route=sys.stderr).routes
    results = notify_test(routes)
    for r in results:
        click.echo(f"{'ok    ' if r.ok else 'FAILED'} {r.route}" + (f": {r.error}" if r.error else ""))
    if len(routes) == 1:
        _fail("no routes configured in [notify]: incidents would reach only this process's output; add a "
              "[[notify.routes]] table (slack, sns, github_issue or github_status)", ExitCode.FINDINGS)
    sys.exit(int(ExitCode.FINDINGS if any(not r.ok for r in results) else ExitCode.CLEAN))


@main.command()
@click.argument("incident_id", required=False)
@click.option("--mode", type=click.Choice(["observe", "propose", "act"]), help="Default: [remediate] mode, "
              "else observe.")
@click.option("--dry-run", is_flag=True, help="Plan and show every decision; change nothing.")
@click.option("--take-over", is_flag=True, help="Take the incident from whoever holds it (journaled); needs "
              "INCIDENT_ID.")
@click.option("--state", help="Watchdog state (default: [watch] state).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def remediate(opts: GlobalOptions, incident_id: str | None, mode: str | None, dry_run: bool, take_over: bool,
              state: str | None, fmt: str) -> None:
    """Plan and, within policy, repair open incidents; every step is journaled."""
    from guard.config import Mode
    from guard.records import open_incident_ids
    from guard.remediate import default_actor
    from guard.report.render import emit_remediation

    if take_over and not incident_id:
        _fail("--take-over needs the INCIDENT_ID to take over", ExitCode.USAGE)
    with _exit_on_bad_input():
        runtime = _runtime(opts, state=state, stdout_route=sys.stderr)
        remediator = runtime.remediator(actor=f"person via guard remediate ({default_actor()})" if take_over else None)
        run_mode = Mode(mode) if mode else runtime.config.remediate.mode
        ids = [incident_id] if incident_id else open_incident_ids(runtime.store)
        reports = [remediator.run(i, mode=run_mode, dry_run=dry_run, take_over=take_over) for i in ids]
    emit_remediation(reports, fmt, dry_run, _console())
    for report in reports:
        for note in report.notes:
            click.echo(f"{report.incident_id}: {note}", err=True)
    sys.exit(int(max((r.exit_code for r in reports), default=ExitCode.CLEAN)))


@main.command()
@click.option("--service", metavar="CLUSTER/SERVICE", help="ECS service to roll back.")
@click.option("--lambda", "function", metavar="FUNCTION", help="Lambda function whose alias to roll back.")
@click.option("--to", "target", help="Task definition ARN or Lambda version (default: the recorded known-good).")
@click.option("--alias", help="Lambda alias (default: [remediate] lambda_alias, else live).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force-unrecorded", is_flag=True, help="Allow a --to target never recorded healthy without asking "
              "(journaled as a person's choice).")
@click.option("--state", help="Watchdog state holding the known-good records (default: [watch] state).")
@click.pass_obj
def rollback(opts: GlobalOptions, service: str | None, function: str | None, target: str | None,
             alias: str | None, yes: bool, force_unrecorded: bool, state: str | None) -> None:
    """Roll one service or Lambda alias back to its known-good revision, and wait until it is steady."""
    from guard.manual import manual_rollback
    from guard.report.render import line_printer

    if bool(service) == bool(function):
        _fail("give exactly one of --service CLUSTER/SERVICE or --lambda FUNCTION", ExitCode.USAGE)
    with _exit_on_bad_input():
        runtime = _runtime(opts, state=state, stdout_route=sys.stderr)
        code = manual_rollback(runtime, service=service, function=function, target=target, alias=alias,
                               confirm=None if yes else click.confirm, echo=line_printer(_console()),
                               force_unrecorded=force_unrecorded)
    sys.exit(int(code))


@main.command()
@click.argument("incident_id")
@click.option("--state", help="Watchdog state (default: [watch] state).")
@click.option("--output", type=click.Path(path_type=Path), help="Write the Markdown here instead of stdout.")
@click.pass_obj
def postmortem(opts: GlobalOptions, incident_id: str, state: str | None, output: Path | None) -> None:
    """Render the incident's postmortem from its journal."""
    from guard.postmortem import postmortem_from_journal

    with _exit_on_bad_input():
        text = postmortem_from_journal(_runtime(opts, state=state).store, incident_id)
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
    from guard.iam import render_policy, scope_from_config

    with _exit_on_bad_input("could not read the account to scope the policy"):
        runtime = _runtime(opts)
        click.echo(render_policy(scope_from_config(runtime.config, runtime.aws,
                                                   roles or ("check", "watch", "remediate"))))


@main.command("checks")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table", show_default=True)
def list_checks(fmt: str) -> None:
    """List every check, watcher and deploy-guard's own outcome IDs (markdown adds what each proves)."""
    from guard.docs import render_catalogue, render_catalogue_table

    if fmt == "markdown":
        click.echo(render_catalogue(), nl=False)
    else:
        render_catalogue_table(_console())


@main.command()
@click.option("--keep", is_flag=True, help="Leave the sandbox running afterwards as a playground: print the "
              "environment exports and the guard.toml to retype every command; Ctrl-C or SIGTERM stops it (exit 0).")
@click.option("--dir", "directory", type=click.Path(path_type=Path), help="With --keep: an empty directory for "
              "guard.toml, the state, the plans and the Terraform workspace (default: a new temporary directory).")
def demo(keep: bool, directory: Path | None) -> None:
    """Replay the incident on an embedded sandbox (moto + local GitHub): no AWS account needed."""
    import importlib.util

    if importlib.util.find_spec("moto") is None:
        _fail("the demo runs on an embedded AWS sandbox that needs the `sandbox` extra: "
              "pip install 'deploy-guard[sandbox]'", ExitCode.USAGE)
    if directory is not None and not keep:
        _fail("--dir needs --keep (without it the demo's files are removed)", ExitCode.USAGE)
    from guard.sandbox.demo import playground_directory, run_demo

    with _exit_on_bad_input():
        kept = playground_directory(directory) if keep else None
    sys.exit(run_demo(kept=kept))


@main.command()
@click.option("--service", "services", multiple=True, metavar="CLUSTER/SERVICE[=TASK_DEFINITION]",
              help="Service whose deployment to wait for (default revision: the deployment in flight).")
@click.option("--lambda", "functions", multiple=True, metavar="FUNCTION[=IMAGE_URI]",
              help="Function whose code update to wait for.")
@click.option("--timeout", type=click.IntRange(min=1), default=900, show_default=True, help="Deadline in seconds.")
@click.option("--poll", type=click.IntRange(min=1), default=15, show_default=True,
              help="Longest wait between looks, in seconds (looks start about 1 s apart and back off to it).")
@click.option("--rollback", "roll_back", is_flag=True, help="Roll failed targets back to their known-good revision "
              "through the policy gate.")
@click.option("--state", help="Watchdog state holding the known-good records (default: [watch] state).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def verify(opts: GlobalOptions, services: tuple[str, ...], functions: tuple[str, ...], timeout: int, poll: int,
           roll_back: bool, state: str | None, fmt: str) -> None:
    """Wait for deployed services and functions to reach their new revision; fail with the cause if they do not."""
    from guard.report.render import emit_verify
    from guard.verify import VerifyOptions, parse_targets, run_verify

    with _exit_on_bad_input():
        targets = parse_targets(services, functions)
        runtime = _runtime(opts, state=state)
        options = VerifyOptions(timeout, poll, runtime.config.watch.crash_threshold)
        report = run_verify(runtime, targets, options, rollback=roll_back)
    emit_verify(report, fmt, _console())
    sys.exit(int(report.exit_code))


# A run allocates a few hundred thousand long-lived objects (botocore's service models, clients) in a burst.
_GC_YOUNG_THRESHOLD = 20_000


def run() -> None:
    """The `guard` executable: `main`, with garbage collection set for a short, allocation-heavy process.

    Collections run less often while clients load (the default triggers a young collection every 700
    allocations), and everything alive at exit is frozen, so the interpreter does not sweep the whole heap
    once more on its way out. Cycles are still collected: a long `guard watch` loop keeps a bounded heap.
    """
    import gc

    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    try:
        main()
    finally:
        gc.freeze()

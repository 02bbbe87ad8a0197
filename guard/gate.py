"""The pre-deploy gate: inputs -> DeployPlan -> checks -> report. The CLI (and so the Action) calls `run`."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.check import Check, Result
from guard.context import CheckContext
from guard.errors import GatewayError
from guard.exitcodes import ExitCode, exit_code
from guard.gateways.ecs import Boto3Ecs
from guard.gateways.lambda_ import Boto3Lambda
from guard.models import DeployPlan, Finding, InputError, Severity, Target, TargetKind, Unverified
from guard.outcomes import CRASHED
from guard.plan import MAX_INPUT_BYTES
from guard.plan.lambda_ import target_from_function_config
from guard.plan.taskdef import load_task_definition, parse_json_document, target_from_task_definition
from guard.plan.terraform import load_plan_file
from guard.registry import all_checks


@dataclass(frozen=True)
class GateInputs:
    """What to verify, as given on the command line."""

    plans: tuple[Path, ...] = ()
    task_defs: tuple[Path, ...] = ()
    services: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    lambdas: tuple[str, ...] = ()
    image_uris: tuple[str, ...] = ()
    parity: tuple[str, str] | None = None

    def validate(self) -> None:
        """Refuse conflicting or incomplete options before any work."""
        if self.images and not self.services:
            raise InputError("--image CONTAINER=URI needs --service CLUSTER/SERVICE")
        if not (self.plans or self.task_defs or self.services or self.lambdas or self.parity):
            raise InputError("nothing to check: give --plan, --task-def, --service, --lambda or --parity")
        if self.image_uris and len(self.image_uris) != len(self.lambdas):
            raise InputError(f"--image-uri given {len(self.image_uris)} time(s) for {len(self.lambdas)} "
                             "--lambda: give one --image-uri per --lambda, in the same order")
        for svc in self.services:
            if svc.count("/") != 1 or not all(svc.split("/")):
                raise InputError(f"--service {svc!r}: expected CLUSTER/SERVICE")
        for img in self.images:
            name, sep, uri = img.partition("=")
            if not sep or not name or not uri:
                raise InputError(f"--image {img!r}: expected CONTAINER=URI")


@dataclass(frozen=True)
class GateReport:
    """Everything a renderer needs; `exit_code` follows the contract."""

    targets: tuple[Target, ...]
    findings: tuple[Finding, ...]
    unverified: tuple[Unverified, ...]
    stats: dict[str, Any]
    duration_s: float
    exit_code: ExitCode
    checks_run: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class GateOptions:
    """How the outcome becomes an exit code: the failing severity, unverified handling, tracebacks."""

    fail_on: Severity | None = None
    allow_unverified: bool = False
    debug: bool = False


def run(inputs: GateInputs, ctx: CheckContext, options: GateOptions = GateOptions()) -> GateReport:
    """Build the deploy plan from the inputs (InputError, GatewayError before any check) and check it."""
    started = time.monotonic()
    plan = build_plan(inputs, ctx)
    return run_checks(plan, ctx, allow_unverified=options.allow_unverified, fail_on=options.fail_on,
                      debug=options.debug, started=started)


def read_text(path: Path) -> str:
    """Read a UTF-8 input file with a clear error (missing, too large, not text)."""
    try:
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise InputError(f"{path}: larger than {MAX_INPUT_BYTES // 2**20} MiB")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def _live_task_definition(ctx: CheckContext, spec: str) -> dict[str, Any]:
    cluster, name = spec.split("/")
    ecs = Boto3Ecs(ctx.aws)
    svc = ecs.services(cluster, [name])[name]
    if svc is None or svc.get("status") == "INACTIVE":
        raise InputError(f"service {spec}: no such service in cluster {cluster} ({ctx.aws.default_region})")
    td = ecs.task_definition(svc["taskDefinition"])
    if td is None:
        raise InputError(f"service {spec}: its task definition {svc['taskDefinition']} does not exist")
    return td


def _live_service(ctx: CheckContext, spec: str, overrides: dict[str, str]) -> Target:
    td = _live_task_definition(ctx, spec)
    names = {c.get("name") for c in td.get("containerDefinitions", [])}
    return target_from_task_definition(td, name=spec, source=f"live:{td.get('taskDefinitionArn', spec)}",
                                       kind=TargetKind.SERVICE,
                                       overrides={k: v for k, v in overrides.items() if k in names})


def _live_lambda(ctx: CheckContext, name: str, image_uri: str | None) -> Target:
    fn = Boto3Lambda(ctx.aws).function(name)
    if fn is None:
        raise InputError(f"--lambda {name}: no such function ({ctx.aws.default_region})")
    return target_from_function_config(fn, image_uri=image_uri, source=f"live:{name}")


def _parity_side(ctx: CheckContext, spec: str) -> Target:
    if spec.startswith("ecs:"):
        return _live_service(ctx, spec[4:], {}) if spec.count("/") == 1 else _bad_spec(spec)
    if spec.startswith("lambda:"):
        return _live_lambda(ctx, spec[7:], None)
    text = read_text(Path(spec))
    doc = parse_json_document(text, spec)
    if isinstance(doc, dict) and ("Configuration" in doc or "FunctionName" in doc):
        return target_from_function_config(doc, image_uri=None, source=spec)
    targets = load_task_definition(text, spec).targets
    return targets[0]


def _bad_spec(spec: str) -> Target:
    raise InputError(f"--parity {spec!r}: expected a file, ecs:CLUSTER/SERVICE or lambda:FUNCTION")


def build_plan(inputs: GateInputs, ctx: CheckContext) -> DeployPlan:
    """Turn every input into targets; InputError for anything malformed or unknown."""
    inputs.validate()
    targets: list[Target] = []
    for path in inputs.plans:
        targets.extend(load_plan_file(path).targets)
    for path in inputs.task_defs:
        targets.extend(load_task_definition(read_text(path), str(path)).targets)
    overrides = dict(i.split("=", 1) for i in inputs.images)
    for spec in inputs.services:
        targets.append(_live_service(ctx, spec, overrides))
    used = {c.name for t in targets if t.kind is TargetKind.SERVICE for c in t.containers}
    unused = sorted(set(overrides) - used)
    if unused:
        raise InputError(f"--image {', '.join(unused)}: no such container in {', '.join(inputs.services)}")
    uris: Sequence[str | None] = inputs.image_uris or [None] * len(inputs.lambdas)
    for fn, uri in zip(inputs.lambdas, uris, strict=True):
        targets.append(_live_lambda(ctx, fn, uri))
    if inputs.parity:
        ctx.parity = ((_parity_side(ctx, inputs.parity[0]), _parity_side(ctx, inputs.parity[1])),)
    return DeployPlan(tuple(targets))


def _run_one(check: Check, plan: DeployPlan, ctx: CheckContext, debug: bool) -> list[Result]:
    try:
        return list(check.run(plan, ctx))
    except GatewayError as exc:
        return [check.unverified("*", exc, exc.code)]
    except Exception as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        return [Unverified(CRASHED, "*", f"check {check.id} crashed: {type(exc).__name__}: {exc}", "Crash")]


def run_checks(plan: DeployPlan, ctx: CheckContext, *, allow_unverified: bool = False,
               fail_on: Severity | None = None, debug: bool = False, started: float | None = None) -> GateReport:
    """Look every image up in one batch while every enabled check runs concurrently; decide the exit code.

    The checks that read images wait for that batch (the ECR reader answers each image once); the others
    start their own lookups at once.
    """
    started = time.monotonic() if started is None else started
    cfg = ctx.config
    checks = [cls(cfg.severity.get(cid)) for cid, cls in all_checks().items() if cid not in cfg.disabled]
    with ThreadPoolExecutor(max_workers=len(checks) + 1) as pool:
        prefetch = pool.submit(ctx.ecr.lookup, plan.images())
        results = list(pool.map(lambda c: _run_one(c, plan, ctx, debug), checks))
        prefetch.result()
    flat = [r for rs in results for r in rs]
    findings = tuple(sorted((r for r in flat if isinstance(r, Finding)),
                            key=lambda f: (-f.severity.rank, f.check_id, f.target, f.message)))
    unverified = tuple(r for r in flat if isinstance(r, Unverified))
    code = exit_code(findings, unverified, fail_on=fail_on or cfg.fail_on, allow_unverified=allow_unverified)
    duration = round(time.monotonic() - started, 3)
    return GateReport(plan.targets, findings, unverified, ctx.stats.to_json(), duration, code,
                      tuple(c.id for c in checks))

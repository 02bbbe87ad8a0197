"""Remediation benchmark: containment latency (incident -> verified rollback) and kill-switch latency."""

from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from guard.actions import ActionContext
from guard.agent.playbook import PlanContext, playbook_planner
from guard.gateways.aws import AwsSession
from guard.journal import EntryKind, Journal
from guard.notify import StdoutRoute
from guard.policy import Allow, Mode, PolicyGate, RemediateConfig
from guard.remediate import Remediator
from guard.sandbox.aws import AwsSandbox
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from guard.state import LocalStore
from guard.watch import Watchdog, WatchScope

POLL_S = 15
SWITCH = "/deploy-guard/kill-switch"


def _incident(sandbox: AwsSandbox, root: Path) -> tuple[Scenario, EcsSimulator, LocalStore, str]:
    """Service prod/api steady on v1 (known-good recorded), then deployed onto a missing image."""
    sandbox.reset()
    aws = Scenario(sandbox)
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    aws.cluster("prod")
    aws.service("prod", "api", aws.task_definition("api", [("app", f"{repo}:v1")]), desired=2)
    sim = EcsSimulator(sandbox)
    sim.enable_circuit_breaker("prod", "api", enable=False)
    sim.tick(2)
    store = LocalStore(root)
    Watchdog(AwsSession(), store, heartbeat=False, clock=sim.now).sweep(WatchScope(clusters=("prod",)))
    bad = aws.task_definition("api", [("app", f"{repo}:broken")])
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=bad)
    sim.tick()
    [inc] = Watchdog(AwsSession(), store, heartbeat=False, clock=sim.now).sweep(
        WatchScope(clusters=("prod",))).incidents
    return aws, sim, store, inc.id


def _remediator(sim: EcsSimulator, store: LocalStore, aws: AwsSession, config: RemediateConfig,
                waited: list[float]) -> Remediator:

    def wait(seconds: float) -> None:
        waited.append(seconds)
        sim.advance(seconds)
        sim.tick()

    ctx = ActionContext(aws, wait=wait, clock=sim.now, poll_s=POLL_S, timeout_s=600,
                        routes=[StdoutRoute(io.StringIO())])
    return Remediator(store, PolicyGate(config, store, aws, clock=sim.now, environ={}), ctx,
                      PlanContext(store, aws, config), playbook_planner, "bench", sim.now)


def _kill_switch_latency(sandbox: AwsSandbox, root: Path, config: RemediateConfig) -> tuple[float, float]:
    """Set the SSM switch right after the gate allowed an action; return (switch -> refusal, one check)."""
    aws_s, sim, store, incident = _incident(sandbox, root)
    ssm = aws_s.client("ssm")
    ssm.put_parameter(Name=SWITCH, Value="off", Type="String", Overwrite=True)
    rem = _remediator(sim, store, AwsSession(), config, [])
    engaged_at = 0.0
    decide = rem.gate.decide

    def flip_after_decision(*args: Any, **kwargs: Any) -> Any:
        nonlocal engaged_at
        decision = decide(*args, **kwargs)
        ssm.put_parameter(Name=SWITCH, Value="on", Type="String", Overwrite=True)
        engaged_at = time.monotonic()
        return decision

    rem.gate.decide = flip_after_decision  # type: ignore[method-assign]
    rem.run(incident, mode=Mode.ACT)
    refusal = time.monotonic() - engaged_at
    if not any(e.kind is EntryKind.KILL_SWITCH for e in Journal(store, incident).entries()):
        raise AssertionError("the kill switch did not stop the action")
    started = time.monotonic()
    if not rem.gate.kill_switch():
        raise AssertionError("the kill switch does not read as engaged")
    return refusal, time.monotonic() - started


def run(runs: int = 5) -> dict[str, Any]:
    """Containment and kill-switch latency over `runs` replays each."""
    config = RemediateConfig(mode=Mode.ACT, allow=(Allow("ecs:prod/*", ("ecs_rollback", "redeploy")),),
                             kill_switch_parameter=SWITCH)
    containment: list[dict[str, float]] = []
    switch_checks: list[float] = []
    refusals: list[float] = []
    with AwsSandbox() as sandbox, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(sandbox.environ())
        for i in range(runs):
            _, sim, store, incident = _incident(sandbox, Path(tmp) / f"c{i}")
            aws, waited = AwsSession(), list[float]()
            started = time.monotonic()
            report = _remediator(sim, store, aws, config, waited).run(incident, mode=Mode.ACT)
            if report.status != "repaired":
                raise AssertionError(f"containment replay did not repair: {report.to_json()}")
            containment.append({"wall_s": time.monotonic() - started, "simulated_s": sum(waited),
                                "api_calls": aws.stats.total_calls})
            refusal, check = _kill_switch_latency(sandbox, Path(tmp) / f"k{i}", config)
            refusals.append(refusal)
            switch_checks.append(check)
    return {
        "benchmark": "guard remediate",
        "runs": runs,
        "containment": {
            "description": "incident open -> rollback verified steady (wall time in the sandbox; simulated "
                           f"time = ECS poll waits at {POLL_S}s each)",
            "wall_s_median": round(statistics.median(c["wall_s"] for c in containment), 3),
            "simulated_s_median": statistics.median(c["simulated_s"] for c in containment),
            "api_calls_median": statistics.median(c["api_calls"] for c in containment),
        },
        "kill_switch": {
            "description": "switch set (SSM parameter) -> the next action refused; the switch is read "
                           "immediately before every action, so the bound is one SSM GetParameter",
            "switch_to_refusal_s_median": round(statistics.median(refusals), 4),
            "check_s_median": round(statistics.median(switch_checks), 4),
        },
    }

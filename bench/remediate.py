"""Remediation benchmark: containment latency (incident -> verified rollback) and kill-switch latency."""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.meta import LATENCIES_MS, environment, fresh_sandbox, latency, spread
from guard.agent.playbook import playbook_planner
from guard.config import Allow, GuardConfig, Mode, RemediateConfig
from guard.journal import EntryKind, Journal
from guard.remediate import RemediationStatus
from guard.runtime import Runtime
from guard.sandbox.aws import AwsSandbox
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from guard.state import StateStore

SWITCH = "/deploy-guard/kill-switch"


def _incident(sandbox: AwsSandbox, root: Path) -> tuple[Scenario, EcsSimulator, StateStore, str]:
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
    runtime = Runtime(state=str(root), clock=sim.now)
    runtime.watchdog(heartbeat=False).sweep(runtime.watch_scope(("prod",)))
    bad = aws.task_definition("api", [("app", f"{repo}:broken")])
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=bad)
    sim.tick()
    [inc] = replace(runtime).watchdog(heartbeat=False).sweep(runtime.watch_scope(("prod",))).incidents
    return aws, sim, runtime.store, inc.id


def _runtime(sim: EcsSimulator, root: Path, config: RemediateConfig, waited: list[float]) -> Runtime:
    """The remediation runtime on simulated time, with no environment (no kill-switch variable)."""

    def wait(seconds: float) -> None:
        waited.append(seconds)
        sim.advance(seconds)
        sim.tick()

    return Runtime(GuardConfig(remediate=config), state=str(root), clock=sim.now, wait=wait, environ={},
                   progress=lambda message: None, stdout_route=io.StringIO())


def _kill_switch_latency(sandbox: AwsSandbox, root: Path, config: RemediateConfig) -> tuple[float, float]:
    """Set the SSM switch right after the gate allowed an action; return (switch -> refusal, one check)."""
    aws_s, sim, store, incident = _incident(sandbox, root)
    ssm = aws_s.client("ssm")
    ssm.put_parameter(Name=SWITCH, Value="off", Type="String", Overwrite=True)
    rem = _runtime(sim, root, config, []).remediator(playbook_planner, "bench")
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
    out: dict[str, Any] = {"benchmark": "guard remediate", "environment": environment(), "runs": runs,
                           "latencies": []}
    with fresh_sandbox() as sandbox, tempfile.TemporaryDirectory() as tmp:
        for ms in LATENCIES_MS:
            with latency(sandbox, ms):
                out["latencies"].append(_replays(sandbox, Path(tmp) / str(ms), config, runs, ms))
    return out


def _replays(sandbox: AwsSandbox, root: Path, config: RemediateConfig, runs: int, ms: int) -> dict[str, Any]:
    containment: list[dict[str, float]] = []
    switch_checks: list[float] = []
    refusals: list[float] = []
    for i in range(runs):
        scenario, sim, _, incident = _incident(sandbox, root / f"c{i}")
        scenario.client("ssm").put_parameter(Name=SWITCH, Value="off", Type="String", Overwrite=True)
        waited: list[float] = []
        runtime = _runtime(sim, root / f"c{i}", config, waited)
        started = time.monotonic()
        report = runtime.remediator(playbook_planner, "bench").run(incident, mode=Mode.ACT)
        if report.status is not RemediationStatus.REPAIRED:
            raise AssertionError(f"containment replay did not repair: {report.to_json()}")
        containment.append({"wall_s": time.monotonic() - started, "simulated_s": sum(waited),
                            "api_calls": runtime.aws.stats.total_calls})
        refusal, check = _kill_switch_latency(sandbox, root / f"k{i}", config)
        refusals.append(refusal)
        switch_checks.append(check)
    return {
        "added_latency_ms": ms,
        "containment": {
            "description": "incident open -> rollback verified steady (wall time in the sandbox; simulated "
                           "time = the ECS poll waits, about 1 s apart, backing off to poll_seconds)",
            "wall_s": spread([c["wall_s"] for c in containment]),
            "simulated_s": spread([c["simulated_s"] for c in containment]),
            "api_calls_median": statistics.median(c["api_calls"] for c in containment),
        },
        "kill_switch": {
            "description": "switch set (SSM parameter) -> the next action refused; the switch is read "
                           "immediately before every action, so the bound is one SSM GetParameter",
            "switch_to_refusal_s": spread(refusals, 4),
            "check_s": spread(switch_checks, 4),
        },
    }

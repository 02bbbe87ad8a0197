"""Rollback benchmark: wall time from "roll back" to "verified steady" on a rollout simulated in real time.

Side by side on the same rollout: guard's `ecs_rollback` action (UpdateService, then polls about a second
apart that back off), fabfuel/ecs-deploy's `ecs deploy --task` (a check every second; the `bench`
extra installs it), and a naive script that polls at a fixed 15 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.meta import LATENCIES_MS, RUNS, environment, fresh_sandbox, latency, spread
from guard.actions import ActionContext, make_action
from guard.gateways.aws import AwsSession
from guard.sandbox.aws import AwsSandbox
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario

TICK_S = 1.0  # one scheduling round of the simulated ECS per second of wall time
NAIVE_POLL_S = 15.0
ECS_DEPLOY = Path(sys.executable).parent / "ecs"
VERIFIES = {
    "guard": "before acting: the service exists under the ECS controller, the target revision is ACTIVE and every "
             "ECR image of it exists; after UpdateService, polls (1 s apart at first, then a quarter of the time "
             "waited) until one deployment, PRIMARY on the target revision, rolloutState COMPLETED (FAILED fails "
             "at once), running = desired",
    "ecs_deploy": "before acting: nothing about the target's images; after UpdateService, a check every 1 s until "
                  "one deployment and as many RUNNING tasks of the service's revision (ListTasks + DescribeTasks) "
                  "as desired (a FAILED rollout fails); rolloutState COMPLETED is not required",
}
TIMING_NOTE = "guard's action runs in the benchmark's process (no start-up); ecs-deploy runs as a cold process, " \
    "so its times include its interpreter and boto3 start-up"


def _broken_rollout(sandbox: AwsSandbox) -> str:
    """prod/api steady on v1, then deployed onto an image that does not exist; returns v1's ARN."""
    sandbox.reset()
    aws = Scenario(sandbox)
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    aws.cluster("prod")
    good = aws.task_definition("api", [("app", f"{repo}:v1")])
    aws.service("prod", "api", good, desired=2)
    sim = EcsSimulator(sandbox)
    sim.enable_circuit_breaker("prod", "api", enable=False)
    sim.tick(2)
    bad = aws.task_definition("api", [("app", f"{repo}:broken")])
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=bad)
    sim.tick(2)
    return good


@contextmanager
def _ticking(sandbox: AwsSandbox) -> Iterator[None]:
    """Play one simulator round every TICK_S seconds of wall time in the background."""
    sim, stop = EcsSimulator(sandbox), threading.Event()

    def loop() -> None:
        while not stop.wait(TICK_S):
            sim.tick()

    thread = threading.Thread(target=loop, name="ecs-ticker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _guard(good: str) -> float:
    ctx = ActionContext(AwsSession(), timeout_s=300, poll_s=15)
    action = make_action("ecs_rollback", cluster="prod", service="api", task_definition=good)
    started = time.monotonic()
    if not action.precondition(ctx).ok:
        raise AssertionError("rollback precondition failed")
    action.execute(ctx)
    outcome = action.postcondition(ctx)
    if not outcome.ok:
        raise AssertionError(f"guard's rollback did not verify: {outcome.reason}")
    return time.monotonic() - started


def _ecs_deploy(good: str) -> float:
    started = time.monotonic()
    proc = subprocess.run([str(ECS_DEPLOY), "deploy", "prod", "api", "--task", good, "--timeout", "300"],
                          capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode:
        raise AssertionError(f"ecs deploy exited {proc.returncode}: {proc.stdout[-800:]}{proc.stderr[-800:]}")
    return time.monotonic() - started


def _naive(good: str) -> float:
    ecs = AwsSession().client("ecs")
    started = time.monotonic()
    ecs.update_service(cluster="prod", service="api", taskDefinition=good)
    while True:
        svc = ecs.describe_services(cluster="prod", services=["api"])["services"][0]
        deps = svc["deployments"]
        if len(deps) == 1 and deps[0]["taskDefinition"] == good and svc["runningCount"] == svc["desiredCount"]:
            return time.monotonic() - started
        time.sleep(NAIVE_POLL_S)


def run(runs: int = RUNS) -> dict[str, Any]:
    """Each contender `runs` times per added latency, each run on a freshly broken rollout."""
    contenders: dict[str, Callable[[str], float]] = {"guard": _guard, "naive_fixed_15s_poll": _naive}
    skipped = None
    if shutil.which(str(ECS_DEPLOY)):
        contenders["ecs_deploy"] = _ecs_deploy
    else:
        skipped = "ecs-deploy is not installed (pip install -e '.[bench]')"
    out: dict[str, Any] = {"benchmark": "ECS rollback to a known-good revision, until verified steady",
                           "environment": environment(), "tick_s": TICK_S, "ecs_deploy_skipped": skipped,
                           "verifies": VERIFIES, "timing": TIMING_NOTE, "latencies": []}
    with fresh_sandbox() as sandbox:
        for ms in LATENCIES_MS:
            figures: dict[str, Any] = {"added_latency_ms": ms}
            for name, contender in contenders.items():
                walls = []
                for _ in range(runs if name != "naive_fixed_15s_poll" else 1):
                    good = _broken_rollout(sandbox)
                    with latency(sandbox, ms), _ticking(sandbox):
                        walls.append(contender(good))
                figures[f"{name}_wall_s"] = spread(walls)
            if "ecs_deploy" in contenders:
                figures["guard_over_ecs_deploy_median"] = round(
                    figures["guard_wall_s"]["median"] / figures["ecs_deploy_wall_s"]["median"], 2)
            out["latencies"].append(figures)
    return out

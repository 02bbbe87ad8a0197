"""Build a Watchdog on the sandbox with the simulator's clock and a local state directory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from guard.gateways.aws import AwsSettings
from guard.notify.routes import Route
from guard.runtime import Runtime
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from guard.watch import WatchReport, WatchScope

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
Sweep = Callable[..., WatchReport]


@pytest.fixture(name="sim")
def sim_fixture(aws: Scenario) -> EcsSimulator:
    """The scheduler simulator on a fresh sandbox, its clock at T0."""
    return EcsSimulator(aws.sandbox, clock=lambda: T0)


@pytest.fixture(name="sweep")
def sweep_fixture(sim: EcsSimulator, tmp_path: Path) -> Sweep:
    """Sweep with a fresh Watchdog each call (as separate invocations) over one state directory."""

    def run(scope: WatchScope | None = None, routes: Sequence[Route] = (), heartbeat: bool = False) -> WatchReport:
        runtime = Runtime(state=str(tmp_path / "state"), settings=AwsSettings(max_attempts=1), clock=sim.now,
                          extra_routes=tuple(routes))
        return runtime.watchdog(heartbeat=heartbeat).sweep(scope or WatchScope())

    return run


def steady_service(aws: Scenario, sim: EcsSimulator, name: str, image: str, cluster: str = "prod",
                   desired: int = 2, **td: object) -> str:
    """A service on `image`, ticked to steady state; returns its task definition ARN."""
    arn = aws.task_definition(name, [("app", image)], **td)  # type: ignore[arg-type]
    if cluster not in {c.rsplit("/", 1)[-1] for c in aws.client("ecs").list_clusters()["clusterArns"]}:
        aws.cluster(cluster)
    aws.service(cluster, name, arn, desired=desired)
    sim.tick(2)
    return arn


def cli_on_steady_api(aws: Scenario, sim: EcsSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """prod/api steady on `shop/api:v1`, and the CLI run from `tmp_path` with heartbeats off; the repository."""
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "guard.toml").write_text("[notify]\nheartbeat = false\n")
    return repo

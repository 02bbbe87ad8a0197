"""What a person reads from `guard watch`: a few lines per incident at 80 columns, evidence on demand."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from guard.report.watch import render_watch_table
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from guard.watch import WatchReport
from tests.support.watchrun import Sweep, steady_service


def _render(report: WatchReport, width: int, verbose: bool = False) -> list[str]:
    out = io.StringIO()
    render_watch_table(report, Console(file=out, width=width, emoji=False, highlight=False, color_system=None),
                       verbose=verbose)
    return out.getvalue().splitlines()


@pytest.fixture
def outage(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> WatchReport:
    """Five services in two clusters failing on one missing image, with long names."""
    repo = aws.repository("platform/checkout-payments-service")
    aws.push_image("platform/checkout-payments-service", "v1")
    for i in range(5):
        steady_service(aws, sim, f"checkout-payments-{i}", f"{repo}:v1", cluster="prod" if i < 3 else "edge",
                       desired=1)
    aws.delete_image("platform/checkout-payments-service", tag="v1")
    for i in range(5):
        sim.restart_tasks("prod" if i < 3 else "edge", f"checkout-payments-{i}")
    sim.tick()
    return sweep()


@pytest.mark.parametrize("width", [80, 160])
def test_an_incident_takes_a_few_lines_and_fits_the_terminal(outage: WatchReport, width: int) -> None:
    [incident] = outage.incidents
    lines = _render(outage, width)
    assert all(len(line) <= width for line in lines)
    [row] = [i for i, line in enumerate(lines) if incident.id in line]  # the ID on one line, unwrapped
    assert "error" in lines[row] and "new" in lines[row]
    assert "+2 more" in "\n".join(lines)
    table = [line for line in lines[row:] if line.strip() and not line.startswith(("evidence", "swept"))]
    assert len(table) <= 4
    assert ".dkr.ecr." not in "\n".join(lines)  # the cause names the repository, not the registry host
    assert "platform/checkout-payments-service:v1" in "".join(line.strip() for line in table)


def test_verbose_names_each_resource_and_never_cuts_a_word(outage: WatchReport) -> None:
    lines = _render(outage, 80, verbose=True)
    text = "\n".join(lines)
    for i in range(5):
        cluster = "prod" if i < 3 else "edge"
        assert f"ecs:{cluster}/checkout-payments-{i} [" in text
    words = {w for line in lines for w in line.split()}
    assert "(CannotPullContainerError:" in words  # the stopped reason, whole

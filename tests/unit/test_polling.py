"""No fixed waits: action polls back off from about a second; the watch loop keeps a start-to-start period."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from guard.actions import ActionContext, Outcome
from guard.config import GuardConfig, parse_config
from guard.gateways.aws import AwsSession
from guard.gateways.stats import ApiStats
from guard.models import InputError
from guard.watch import WatchScope, watch_loop


def test_polls_start_after_a_second_and_back_off_to_the_configured_maximum() -> None:
    waits: list[float] = []
    probes = iter([False] * 40 + [True])
    ctx = ActionContext(AwsSession(), wait=waits.append, poll_s=15, timeout_s=900)
    outcome = ctx.until("steady", lambda: Outcome(next(probes), "rolling"))
    assert outcome.ok and waits[:7] == [1, 1, 1, 1, 1, 1.25, 1.5625]  # a short rollout is seen within a second
    assert waits[-3:] == [15, 15, 15] and len(waits) == 40
    for i, wait in enumerate(waits):  # never more than a quarter of the time waited so far (after the first 4 s)
        assert wait == min(max(1, sum(waits[:i]) / 4), 15)


def test_each_wait_says_what_is_awaited_how_long_so_far_and_the_deadline() -> None:
    said: list[str] = []
    probes = iter([False, False, True])
    ctx = ActionContext(AwsSession(), wait=lambda _s: None, poll_s=15, timeout_s=600, progress=said.append)
    ctx.until("prod/api steady", lambda: Outcome(next(probes), "1 of 2 running"))
    assert said == ["waiting for prod/api steady (0s of 600s): 1 of 2 running",
                    "waiting for prod/api steady (1s of 600s): 1 of 2 running"]


def test_polls_never_exceed_a_short_maximum_and_time_out_on_waited_time() -> None:
    waits: list[float] = []
    ctx = ActionContext(AwsSession(), wait=waits.append, poll_s=0.5, timeout_s=2)
    outcome = ctx.until("steady", lambda: Outcome(False, "rolling"))
    assert not outcome.ok and "timed out after 2s" in outcome.reason and waits == [0.5] * 4


class _Dog:
    """A watchdog stand-in whose sweeps take `durations` seconds of the fake clock."""

    def __init__(self, clock: list[float], durations: list[float]) -> None:
        self.clock, self.durations = clock, durations
        self.aws: Any = type("Aws", (), {"stats": ApiStats()})()
        self.starts: list[float] = []

    def sweep(self, scope: WatchScope, *, debug: bool = False) -> float:
        self.starts.append(self.clock[0])
        self.clock[0] += self.durations[len(self.starts) - 1]
        return self.clock[0]


def _run(durations: list[float], interval: float) -> tuple[_Dog, list[float]]:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    dog = _Dog(clock, durations)
    loop = watch_loop(dog, WatchScope(), interval, sleep=sleep, clock=lambda: clock[0])  # type: ignore[arg-type]
    for _ in durations:
        next(loop)
    return dog, slept


def test_watch_loop_keeps_a_fixed_start_to_start_period() -> None:
    dog, slept = _run([12, 3, 59, 1], 60)
    assert dog.starts == [100, 160, 220, 280] and slept == [48, 57, 1]


def test_watch_loop_says_when_a_sweep_overruns_and_starts_the_next_at_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="guard.watch"):
        dog, slept = _run([10, 75, 10, 10], 60)
    assert dog.starts == [100, 160, 235, 295] and slept == [50, 50]
    [record] = caplog.records
    assert "sweep took 75.0s, longer than the 60s interval" in record.getMessage()


def test_workers_setting_is_validated() -> None:
    assert GuardConfig().workers == 16 and parse_config({"workers": 4}, "t").workers == 4
    for bad in (0, 33, "8", True):
        with pytest.raises(InputError, match="workers must be an integer from 1 to 32"):
            parse_config({"workers": bad}, "t")

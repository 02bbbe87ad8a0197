"""Waits on a terminal are one live line, closed however the wait ends; elsewhere they are plain lines."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
from rich.console import Console

from guard.actions import ActionContext, Outcome
from guard.gateways.aws import AwsSession
from guard.progress import ProgressLine
from guard.runtime import Runtime

ERASE_LINE = "\x1b[2K"
SHOW_CURSOR = "\x1b[?25h"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal() -> tuple[ProgressLine, io.StringIO]:
    out = io.StringIO()
    return ProgressLine(Console(force_terminal=True, file=out, width=100)), out


def _wait(progress: ProgressLine, probes: Iterator[bool]) -> Outcome:
    ctx = ActionContext(AwsSession(), wait=lambda _s: None, poll_s=15, timeout_s=600, progress=progress)
    return ctx.until("prod/api steady", lambda: Outcome(next(probes), "1 of 2 running"))


def test_on_a_terminal_a_wait_is_one_live_line_removed_when_it_ends() -> None:
    progress, out = _terminal()
    progress("rolling back prod/api to api:1")
    assert _wait(progress, iter([False, False, False, True])).ok
    text = out.getvalue()
    assert "  … rolling back prod/api to api:1\n" in text  # a note stays
    [shown] = re.findall(r"waiting for prod/api steady \((\d+)s of 600s\): 1 of 2 running", text)
    assert int(shown) > 1  # the last update of three, in place of the earlier ones
    assert "… waiting" not in text  # no plain line per poll
    assert text.endswith(SHOW_CURSOR + "\r\x1b[1A" + ERASE_LINE)  # the live line is erased, the cursor back


def test_a_failing_wait_closes_the_live_line() -> None:
    progress, out = _terminal()

    def probes() -> Iterator[bool]:
        yield False
        raise RuntimeError("ECS unreachable")

    with pytest.raises(RuntimeError, match="ECS unreachable"):
        _wait(progress, probes())
    assert out.getvalue().endswith(SHOW_CURSOR + "\r\x1b[1A" + ERASE_LINE)
    assert _wait(progress, iter([False, True])).ok and out.getvalue().count(SHOW_CURSOR) == 2


def test_off_a_terminal_each_update_is_a_plain_line() -> None:
    out = io.StringIO()
    progress = ProgressLine(stream=out)
    assert not progress.live
    assert _wait(progress, iter([False, False, True])).ok
    assert out.getvalue() == ("  … waiting for prod/api steady (0s of 600s): 1 of 2 running\n"
                              "  … waiting for prod/api steady (1s of 600s): 1 of 2 running\n")


def test_a_terminal_stream_gets_the_live_line_and_the_runtime_reports_through_one() -> None:
    assert ProgressLine(stream=_Tty()).live
    assert not ProgressLine(Console(file=io.StringIO())).live
    assert isinstance(Runtime().progress, ProgressLine)

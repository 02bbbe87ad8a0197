"""Progress on waits: one live line on a terminal, plain lines elsewhere (CI logs, the Action, files).

Entry points report through a `Callable[[str], None]` (the runtime's `progress`). A wait (a rollout, a
build, a steady state) opens `waiting(progress, what, deadline_s)`: with the runtime's `ProgressLine` on a
terminal that is one line rewritten in place (what is awaited, the time so far, the deadline, the last
state seen) and closed when the wait ends or fails; anywhere else each update is one plain line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

Update = Callable[[float, str], None]
FIRST_POLL_S = 1.0  # an ECS rollback, a Lambda update or a lifecycle preview is often done within seconds


def next_poll(waited_s: float, poll_s: float) -> float:
    """The wait before the next poll: a quarter of the time waited so far, at least FIRST_POLL_S, at most `poll_s`.

    A wait that ends within seconds is seen within about a second (as a 1 s poller sees it); a long one costs few
    polls and its end is seen at most a quarter of its time (and `poll_s`) late.
    """
    return min(max(FIRST_POLL_S, waited_s / 4), poll_s)


def wait_line(what: str, waited_s: float, deadline_s: float, state: str) -> str:
    """`waiting for X (12s of 300s): state`: the text of one update."""
    return f"waiting for {what} ({waited_s:.0f}s of {deadline_s:.0f}s): {state}"


class ProgressLine:
    """Progress on stderr: notes as `  … note` lines; waits as one live line when stderr is a terminal."""

    def __init__(self, console: Console | None = None, stream: TextIO | None = None) -> None:
        self._console = console
        self._stream = stream

    @property
    def live(self) -> bool:
        """True when waits are shown as one line rewritten in place."""
        if self._console is not None:
            return self._console.is_terminal
        stream = self._stream or sys.stderr
        return stream.isatty()

    def _rich(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self._stream or sys.stderr)
        return self._console

    def __call__(self, message: str) -> None:
        """A note: one line of its own."""
        if self._console is not None:
            from rich.markup import escape

            self._console.print(f"  … {escape(message)}", highlight=False)
        else:
            print(f"  … {message}", file=self._stream or sys.stderr)

    @contextmanager
    def waiting(self, what: str, deadline_s: float) -> Iterator[Update]:
        """A wait for `what`: yields `update(waited_s, state)`; the live line is closed however the wait ends."""
        if not self.live:
            yield lambda waited, state: self(wait_line(what, waited, deadline_s, state))
            return
        from rich.markup import escape

        with self._rich().status(escape(f"waiting for {what} (0s of {deadline_s:.0f}s)")) as status:
            yield lambda waited, state: status.update(escape(wait_line(what, waited, deadline_s, state)))


@contextmanager
def waiting(progress: Callable[[str], None], what: str, deadline_s: float) -> Iterator[Update]:
    """Report a wait through `progress`: the live line of a `ProgressLine`, else one line per update."""
    if isinstance(progress, ProgressLine):
        with progress.waiting(what, deadline_s) as update:
            yield update
    else:
        yield lambda waited, state: progress(wait_line(what, waited, deadline_s, state))

"""Release N threads together on one worker, for the conditional-write race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def race(worker: Callable[[int], Any], racers: int) -> list[Any]:
    """Run `worker(i)` on `racers` threads released together; their results (or exceptions) by index."""
    barrier = threading.Barrier(racers)
    results: list[Any] = [None] * racers

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = worker(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results

"""Thread-safe counters of remote calls, reported as `stats.api_calls`."""

from __future__ import annotations

import threading
from collections import Counter


class ApiStats:
    """Counts API calls (one per operation) and HTTP attempts (retries included) by `service:Operation`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.batch_sizes: dict[str, list[int]] = {}

    def reset(self) -> None:
        """Start counting afresh (a watch loop reports each sweep's own calls)."""
        with self._lock:
            self.calls.clear()
            self.attempts.clear()
            self.batch_sizes.clear()

    def call(self, name: str) -> None:
        """Record one API call."""
        with self._lock:
            self.calls[name] += 1

    def attempt(self, name: str) -> None:
        """Record one HTTP request (first try or retry)."""
        with self._lock:
            self.attempts[name] += 1

    def batch(self, name: str, size: int) -> None:
        """Record how many IDs one batched request carried."""
        with self._lock:
            self.batch_sizes.setdefault(name, []).append(size)

    @property
    def total_calls(self) -> int:
        """All API calls."""
        return sum(self.calls.values())

    @property
    def retries(self) -> int:
        """HTTP attempts beyond the first of each call."""
        return max(0, sum(self.attempts.values()) - self.total_calls)

    def to_json(self) -> dict[str, object]:
        """`{"ECR:BatchGetImage": 3, ...}` plus totals."""
        with self._lock:
            return {
                "by_api": dict(sorted(self.calls.items())),
                "total": sum(self.calls.values()),
                "retries": max(0, sum(self.attempts.values()) - sum(self.calls.values())),
            }

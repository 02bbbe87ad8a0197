"""ECS104: an essential container that starts and exits again and again."""

from __future__ import annotations

from collections.abc import Iterator

from guard.models import Cause, Severity, Signal, Unverified
from guard.reasons import diagnose_task
from guard.watcher import Snapshot, Watcher, as_datetime


class CrashLoop(Watcher):
    """Proves at least `crash_threshold` tasks of the service stopped with a non-zero essential exit in
    the lookback window.

    Cannot say why the program exits (read its logs); a container that exits 0 is not counted.
    """

    id = "ECS104"
    title = "Crash loop"
    severity = Severity.ERROR
    proves = "repeated EssentialContainerExited stops with a non-zero exit code"
    cannot_prove = "why the program exits"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One signal per service over the threshold."""
        for svc in snap.services:
            crashes = []
            for task in snap.recent_stopped(svc):
                d = diagnose_task(task, snap.task_definitions.get(str(task.get("taskDefinitionArn"))))
                if d is not None and d.cause is Cause.CRASH:
                    crashes.append((task, d))
            if len(crashes) < snap.settings.crash_threshold:
                continue
            first = min(as_datetime(t.get("stoppedAt") or t.get("createdAt")) for t, _ in crashes)
            task, d = crashes[0]
            yield self.signal(svc.resource, Cause.CRASH, d.key,
                              f"{len(crashes)} tasks exited within {snap.settings.lookback}: {d.explanation}",
                              since=first, exits=len(crashes), task_definition=str(task.get("taskDefinitionArn")))

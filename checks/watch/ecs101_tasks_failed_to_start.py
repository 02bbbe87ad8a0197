"""ECS101: tasks of a service stopped before they could run (pull, secrets, role, network)."""

from __future__ import annotations

from collections.abc import Iterator

from guard.models import Severity, Signal, Unverified
from guard.reasons import diagnose_task
from guard.watcher import Snapshot, Watcher, as_datetime


class TasksFailedToStart(Watcher):
    """Proves tasks stopped with TaskFailedToStart-class reasons in the lookback window, and parses why.

    Reads the STOPPED tasks ECS keeps (about an hour). Cannot see failures older than that, and a reason
    ECS words differently from the known patterns is reported with cause `unknown`.
    """

    id = "ECS101"
    title = "Tasks fail to start"
    severity = Severity.ERROR
    proves = "stopped tasks with CannotPullContainerError, ResourceInitializationError, CannotStartContainerError"
    cannot_prove = "failures older than ECS keeps stopped tasks (about an hour)"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One signal per service and cause, counting its failed tasks."""
        for svc in snap.services:
            groups: dict[tuple[str, str], list[dict[str, object]]] = {}
            diagnoses = {}
            for task in snap.recent_stopped(svc):
                d = diagnose_task(task, snap.task_definitions.get(str(task.get("taskDefinitionArn"))))
                if d is None or d.cause.value == "crash":
                    continue
                groups.setdefault((d.cause.value, d.key), []).append(dict(task))
                diagnoses[(d.cause.value, d.key)] = d
            for k, tasks in groups.items():
                d = diagnoses[k]
                first = min(as_datetime(t.get("stoppedAt") or t.get("createdAt")) for t in tasks)
                reason = str(tasks[0].get("stoppedReason", ""))
                yield self.signal(
                    svc.resource, d.cause, d.key, f"{len(tasks)} task(s) failed to start: {d.explanation} "
                    f"({reason[:200]})", since=first, failed_tasks=len(tasks), stopped_reason=reason,
                    tasks=[str(t.get("taskArn", "")).rsplit("/", 1)[-1] for t in tasks[:10]])

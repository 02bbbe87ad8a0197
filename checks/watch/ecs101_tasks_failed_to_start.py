"""ECS101: tasks of a service stopped before they could run, or ECS could not launch them at all."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from guard.models import Severity, Signal, Unverified
from guard.reasons import LAUNCH_FAILURE_GRACE_S, Diagnosis
from guard.watcher import ServiceView, Snapshot, Watcher, as_datetime


class TasksFailedToStart(Watcher):
    """Proves tasks stopped with TaskFailedToStart-class reasons in the lookback window, or that ECS launched none
    (a role it cannot assume, no capacity to place the task) for at least a minute while the PRIMARY deployment
    runs below its desired count; parses why.

    Reads the STOPPED tasks ECS keeps (about an hour) and the service events DescribeServices returns since the
    PRIMARY deployment started and the service last reached a steady state. Cannot see failures older than those,
    and a reason ECS words differently from the known patterns is reported with cause `unknown`.
    """

    id = "ECS101"
    title = "Tasks fail to start"
    severity = Severity.ERROR
    proves = ("stopped tasks with CannotPullContainerError, ResourceInitializationError, CannotStartContainerError; "
              "service events saying ECS could not launch or place a task while the PRIMARY deployment runs below "
              "desired")
    cannot_prove = "failures older than ECS keeps stopped tasks (about an hour) or than the service's 100 latest events"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One signal per service and cause, counting its failed tasks (or the launch failures ECS reported)."""
        for svc in snap.services:
            groups: dict[tuple[str, str], list[dict[str, object]]] = {}
            diagnoses = {}
            for task in snap.recent_stopped(svc):
                d = snap.diagnose(task)
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
            yield from self._not_launched(snap, svc, set(groups))

    def _not_launched(self, snap: Snapshot, svc: ServiceView, seen: set[tuple[str, str]]) -> Iterator[Signal]:
        """Launch failures of the PRIMARY deployment from the service's events, while it runs below its desired count
        (a rollout's older deployment may still run every task the service wants)."""
        dep = svc.primary
        if dep is None:
            return
        running, desired = int(dep.get("runningCount", 0)), int(dep.get("desiredCount", 0))
        if running >= desired:
            return
        found: dict[tuple[str, str], tuple[Diagnosis, list[datetime]]] = {}
        for when, d in snap.launch_failures(svc, str(dep.get("taskDefinition", ""))):
            if (d.cause.value, d.key) not in seen:
                found.setdefault((d.cause.value, d.key), (d, []))[1].append(when)
        for d, times in found.values():
            if (snap.now - min(times)).total_seconds() < LAUNCH_FAILURE_GRACE_S:
                continue  # ECS retries while IAM propagates a new role: not yet a failure
            yield self.signal(svc.resource, d.cause, d.key, f"ECS launched no task ({running}/{desired} running): "
                              f"{d.explanation} ({d.key})", since=min(times), launch_failures=len(times),
                              running=running, desired=desired, deployment=str(dep.get("id")))

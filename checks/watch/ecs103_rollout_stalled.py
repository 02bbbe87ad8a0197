"""ECS103: a rollout in progress past its deadline, or a service running below desired too long."""

from __future__ import annotations

from collections.abc import Iterator

from guard.models import Cause, Severity, Signal, Unverified
from guard.watcher import Snapshot, Watcher, as_datetime


class RolloutStalled(Watcher):
    """Proves the PRIMARY deployment has been IN_PROGRESS longer than `stall_after`, or that the service
    has run below its desired count for longer than `below_desired_grace` since its last change.

    When recent failed starts show why (stopped tasks, or service events saying ECS could not launch a task at
    all), the signal carries that cause, so it joins the same incident.
    Cannot tell a slow rollout (large service, long health-check grace) from a stuck one; tune the
    thresholds per environment.
    """

    id = "ECS103"
    title = "Rollout stalled"
    severity = Severity.WARNING
    proves = "a rollout IN_PROGRESS past its deadline, or running < desired past the grace period"
    cannot_prove = "whether a slow rollout would still finish"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """At most one signal per service."""
        for svc in snap.services:
            dep = svc.primary
            if dep is None:
                continue
            created = as_datetime(dep.get("createdAt"))
            updated = as_datetime(dep.get("updatedAt") or dep.get("createdAt"))
            running, desired = int(svc.raw.get("runningCount", 0)), int(svc.raw.get("desiredCount", 0))
            td = str(dep.get("taskDefinition", ""))
            found = snap.attribute(svc, td)
            cause, key = (found.cause, found.key) if found else (Cause.STALLED, f"{svc.resource}:{td}")
            if dep.get("rolloutState") == "IN_PROGRESS" and snap.now - created > snap.settings.stall_after:
                minutes = int((snap.now - created).total_seconds() // 60)
                yield self.signal(svc.resource, cause, key,
                                  f"deployment {dep.get('id')} in progress for {minutes} min "
                                  f"({running}/{desired} running)", since=created, running=running,
                                  desired=desired, deployment=str(dep.get("id")))
            elif running < desired and snap.now - updated > snap.settings.below_desired_grace:
                yield self.signal(svc.resource, cause, key,
                                  f"running {running} of {desired} desired tasks since {updated.isoformat()}",
                                  since=updated, running=running, desired=desired)

"""ECS102: a deployment whose rollout failed (circuit breaker tripped, rolloutState FAILED)."""

from __future__ import annotations

from collections.abc import Iterator

from guard.models import Cause, Severity, Signal, Unverified
from guard.reasons import event_messages
from guard.watcher import Snapshot, Watcher, as_datetime


class RolloutFailed(Watcher):
    """Proves a deployment of the service reached rolloutState FAILED; attributes it to its tasks' cause.

    When the circuit breaker rolled the service back, the service may be healthy again on the old
    revision: the signal is still raised (the deploy did not land). Cannot see deployments ECS no
    longer lists.
    """

    id = "ECS102"
    title = "Rollout failed"
    severity = Severity.ERROR
    proves = "a deployment of the service has rolloutState FAILED (circuit breaker)"
    cannot_prove = "deployments ECS no longer lists"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One signal per failed deployment, keyed on the cause its stopped tasks show when known."""
        for svc in snap.services:
            for dep in svc.deployments:
                if dep.get("rolloutState") != "FAILED":
                    continue
                td = str(dep.get("taskDefinition", ""))
                found = snap.attribute(svc, td)
                cause, key = (found.cause, found.key) if found else (Cause.ROLLOUT_FAILED, f"{svc.resource}:{td}")
                rolled_back = bool(event_messages(svc.raw.get("events", []), "rolling back"))
                yield self.signal(
                    svc.resource, cause, key, f"deployment {dep.get('id')} failed: "
                    f"{dep.get('rolloutStateReason', 'rolloutState FAILED')}"
                    + ("; ECS rolled back to the previous revision" if rolled_back else ""),
                    since=as_datetime(dep.get("updatedAt") or dep.get("createdAt")), deployment=str(dep.get("id")),
                    task_definition=str(dep.get("taskDefinition")), failed_tasks=int(dep.get("failedTasks", 0)),
                    rolled_back=rolled_back)

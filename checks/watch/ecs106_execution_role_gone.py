"""ECS106: a running service whose execution role no longer exists (the next task start will fail)."""

from __future__ import annotations

from collections.abc import Iterator

from guard.errors import GatewayError
from guard.gateways.refs import RefStatus
from guard.models import Cause, Severity, Signal, Unverified
from guard.watcher import Snapshot, Watcher


class ExecutionRoleGone(Watcher):
    """Proves the execution role of each service's active task definition still exists (IAM GetRole).

    Running tasks keep their credentials, so a role deleted when its owner left breaks nothing until tasks
    restart; then every start fails with ResourceInitializationError. Cannot check roles in another
    account, nor whether the role still has the permissions the task needs.
    """

    id = "ECS106"
    title = "Execution role gone under a running service"
    severity = Severity.ERROR
    proves = "the execution role named by the service's active task definition exists"
    cannot_prove = "roles in other accounts; that the role's policies still suffice"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One signal per service whose execution role is missing (latent while the service is steady)."""
        for svc in snap.services:
            td = snap.task_definitions.get(str((svc.primary or {}).get("taskDefinition"))) or {}
            role = str(td.get("executionRoleArn") or "")
            answer = snap.roles.get(role) if role else None
            if isinstance(answer, GatewayError):
                yield self.unverified(svc.resource, f"execution role {role}: {answer}")
            elif answer is RefStatus.MISSING:
                yield self.signal(svc.resource, Cause.EXECUTION_ROLE, role,
                                  f"execution role {role} does not exist; the next task start will fail with "
                                  "ResourceInitializationError", latent=svc.steady, role=role)

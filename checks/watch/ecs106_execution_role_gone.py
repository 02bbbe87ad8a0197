"""ECS106: a running service whose execution or task role no longer exists (the next task start will fail)."""

from __future__ import annotations

from collections.abc import Iterator

from guard.errors import GatewayError
from guard.gateways.refs import RefStatus
from guard.models import Cause, Severity, Signal, Unverified
from guard.watcher import Snapshot, Watcher

_FIELDS = (("executionRoleArn", "execution role"), ("taskRoleArn", "task role"))
_EFFECT = {
    "executionRoleArn": "the next task start will fail with ResourceInitializationError",
    "taskRoleArn": "ECS cannot assume it, so the next task start launches no task (service event \"unable to "
                   "assume the role\")",
}


class ExecutionRoleGone(Watcher):
    """Proves the execution and task roles of each service's active task definition still exist (IAM GetRole).

    Running tasks keep their credentials, so a role deleted when its owner left breaks nothing until tasks
    restart; then a missing execution role fails every start with ResourceInitializationError, and a missing
    task role makes ECS refuse to launch the task at all. Each distinct role is read once per sweep. Cannot
    check roles in another account, nor whether a role's trust policy and permissions still suffice.
    """

    id = "ECS106"
    title = "Execution or task role gone under a running service"
    severity = Severity.ERROR
    proves = "the execution role and the task role named by the service's active task definition exist"
    cannot_prove = "roles in other accounts; that a role's trust policy and permissions still suffice"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One signal per service and missing role (latent while the service is steady), naming its role field."""
        for svc in snap.services:
            td = snap.task_definitions.get(str((svc.primary or {}).get("taskDefinition"))) or {}
            fields: dict[str, list[str]] = {}
            for key, _ in _FIELDS:
                if td.get(key):
                    fields.setdefault(str(td[key]), []).append(key)
            for role, keys in fields.items():
                what = " and ".join(label for key, label in _FIELDS if key in keys)
                answer = snap.roles.get(role)
                if isinstance(answer, GatewayError):
                    yield self.unverified(svc.resource, f"{what} {role}: {answer}")
                elif answer is RefStatus.MISSING:
                    yield self.signal(svc.resource, Cause.EXECUTION_ROLE, role,
                                      f"{what} {role} does not exist; {_EFFECT[keys[0]]}",
                                      latent=svc.steady, role=role, role_fields=keys)

"""ECS108: a secret a running service injects, or the KMS key it is encrypted with, is scheduled for deletion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from guard.errors import GatewayError
from guard.gateways.refs import KeyState, RefStatus, SecretState, arn_parts, injected_secrets
from guard.models import Cause, Severity, Signal, Unverified
from guard.watcher import ServiceView, Snapshot, Watcher, as_datetime


def _until(when: datetime | None, now: datetime) -> str:
    """`on 2026-12-07 (in 6 days)` / `on ... (passed)`, or "" without a date."""
    if when is None:
        return ""
    at = as_datetime(when)
    days = (at - now).days
    return f" on {at.date().isoformat()} ({'in ' + str(days) + ' day(s)' if days >= 0 else 'date passed'})"


class DependencyScheduledForDeletion(Watcher):
    """Proves each Secrets Manager secret the service's active task definition injects (`secrets[].valueFrom`,
    `repositoryCredentials`) is not scheduled for deletion, and that its customer-managed KMS key is enabled.

    Scheduling is not a future hazard: Secrets Manager refuses GetSecretValue on a secret marked for deletion,
    and KMS refuses Decrypt with a key pending deletion or disabled, so the next task start fails now with
    ResourceInitializationError while running tasks keep the values they read. The deletion date is when
    RestoreSecret / CancelKeyDeletion stop being able to undo it, so it is in the message and evidence, but the
    severity is error from the start. Cannot check SSM parameters (they have no scheduled deletion), secrets or
    keys in another account, key policies or grants; the execution and task roles are ECS106's.
    """

    id = "ECS108"
    title = "Secret or its KMS key scheduled for deletion under a running service"
    severity = Severity.ERROR
    proves = ("no Secrets Manager secret the service's active task definition injects is scheduled for deletion "
              "or gone, and no customer-managed KMS key of those secrets is pending deletion, disabled or gone")
    cannot_prove = ("SSM parameters; secrets or keys in another account; key policies and grants (ECS106 checks "
                    "the execution and task roles)")

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One signal per service and secret (or KMS key) that new tasks can no longer read."""
        for svc in snap.services:
            td_arn = str((svc.primary or {}).get("taskDefinition", ""))
            td = snap.task_definitions.get(td_arn) if svc.primary else None
            seen: set[str] = set()
            for container, arn in injected_secrets(td or {}):
                if arn not in seen:
                    seen.add(arn)
                    yield from self._secret(snap, svc, container, arn)

    def _secret(self, snap: Snapshot, svc: ServiceView, container: str, arn: str) -> Iterator[Signal | Unverified]:
        answer = snap.secrets.get(arn)
        start = "the next task start will fail with ResourceInitializationError"
        if isinstance(answer, GatewayError):
            yield Unverified(self.id, svc.resource, f"secret {arn}: {answer}", answer.code)
        elif answer is RefStatus.MISSING:
            yield self.signal(svc.resource, Cause.SECRET, arn,
                              f"container {container}: secret {arn} no longer exists; {start}",
                              latent=svc.steady, secret=arn, container=container, state="deleted")
        elif isinstance(answer, SecretState) and answer.deleted_at is not None:
            yield self.signal(svc.resource, Cause.SECRET, arn,
                              f"container {container}: secret {arn} is scheduled for deletion"
                              f"{_until(answer.deleted_at, snap.now)}; new tasks cannot read it, so {start} "
                              "(RestoreSecret undoes it until then)",
                              latent=svc.steady, secret=arn, container=container, state="scheduled_for_deletion",
                              deletion_date=as_datetime(answer.deleted_at).isoformat())
        elif isinstance(answer, SecretState) and answer.kms_key and arn_parts(arn):
            yield from self._key(snap, svc, container, arn, (arn_parts(arn)[3] or None, answer.kms_key), start)

    def _key(self, snap: Snapshot, svc: ServiceView, container: str, secret: str, key: tuple[str | None, str],
             start: str) -> Iterator[Signal | Unverified]:
        answer = snap.keys.get(key)
        if isinstance(answer, GatewayError):
            yield Unverified(self.id, svc.resource, f"KMS key {key[1]} of secret {secret}: {answer}", answer.code)
        elif answer is RefStatus.MISSING:
            yield self.signal(svc.resource, Cause.SECRET, key[1],
                              f"container {container}: KMS key {key[1]} of secret {secret} no longer exists; "
                              f"the secret cannot be decrypted, so {start}",
                              latent=svc.steady, secret=secret, container=container, kms_key=key[1], state="deleted")
        elif isinstance(answer, KeyState) and answer.state in ("PendingDeletion", "Disabled"):
            what = f"is pending deletion{_until(answer.deletion_at, snap.now)}" if answer.state == "PendingDeletion" \
                else "is disabled"
            undo = "CancelKeyDeletion undoes it until then" if answer.state == "PendingDeletion" else "EnableKey"
            yield self.signal(svc.resource, Cause.SECRET, answer.arn,
                              f"container {container}: KMS key {answer.arn} of secret {secret} {what}; the secret "
                              f"cannot be decrypted, so {start} ({undo})",
                              latent=svc.steady, secret=secret, container=container, kms_key=answer.arn,
                              state=answer.state,
                              deletion_date=as_datetime(answer.deletion_at).isoformat() if answer.deletion_at else None)

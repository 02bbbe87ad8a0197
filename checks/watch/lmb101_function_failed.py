"""LMB101: a Lambda function whose State or LastUpdateStatus is Failed."""

from __future__ import annotations

from collections.abc import Iterator

from guard.models import Severity, Signal, Unverified
from guard.reasons import diagnose_lambda
from guard.watcher import Snapshot, Watcher


class FunctionFailed(Watcher):
    """Proves GetFunction reports State=Failed or LastUpdateStatus=Failed, with Lambda's reason code.

    Cannot see invocation errors (those are CloudWatch metrics, not state).
    """

    id = "LMB101"
    title = "Lambda function failed"
    severity = Severity.ERROR
    proves = "State or LastUpdateStatus is Failed"
    cannot_prove = "invocation errors and throttles"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One signal per failed function."""
        for fn in snap.functions:
            d = diagnose_lambda(fn.config, fn.image_uri)
            if d is not None:
                yield self.signal(fn.resource, d.cause, d.key, f"function {fn.name} failed: {d.explanation}",
                                  state=str(fn.config.get("State")),
                                  last_update_status=str(fn.config.get("LastUpdateStatus")), image=fn.image_uri)

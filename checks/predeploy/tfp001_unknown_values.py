"""TFP001: values Terraform will only know at apply time, so nothing can verify them before."""

from __future__ import annotations

from collections.abc import Iterator

from guard.check import Check, Result
from guard.context import CheckContext
from guard.models import DeployPlan, Severity


class UnknownAtPlan(Check):
    """Proves every image and role the plan hides behind `(known after apply)` is reported, not skipped.

    Cannot verify those values: they do not exist until apply. Pin images to values known at plan time
    (a variable or data source) to have them checked.
    """

    id = "TFP001"
    title = "Value unknown until apply"
    severity = Severity.WARNING
    proves = "images and roles computed at apply time are listed as unverifiable"
    cannot_prove = "anything about those values"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """One finding per target with unknown attributes."""
        for target in plan.targets:
            if target.unknown:
                yield self.finding(
                    target.name, f"{', '.join(target.unknown)} known only after apply: cannot be verified "
                    "before apply", unknown=list(target.unknown), source=target.source,
                    remediation="pass the image URI as a variable or read it with a data source")

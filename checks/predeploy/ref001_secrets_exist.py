"""REF001: the Secrets Manager secrets and SSM parameters a task injects exist."""

from __future__ import annotations

from collections.abc import Iterator

from guard.check import Check, Result
from guard.context import CheckContext
from guard.errors import GatewayError
from guard.gateways.refs import RefStatus, arn_parts
from guard.models import DeployPlan, Severity


class SecretsExist(Check):
    """Proves each `secrets[].valueFrom` names an existing secret or parameter (metadata only).

    Never reads a value. Cannot prove the execution role may read it, nor that a JSON key named in the
    reference exists inside the secret; a reference into another account is reported as not verified.
    """

    id = "REF001"
    title = "Referenced secrets and parameters exist"
    severity = Severity.ERROR
    proves = "every secret / SSM parameter injected into a container exists"
    cannot_prove = "that the execution role may read it, or that a JSON key inside the secret exists"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """Batch the lookups per kind, then report per container."""
        refs = {v for t in plan.targets for c in t.containers for _, v in c.secrets}
        secrets = sorted(r for r in refs if arn_parts(r)[2:3] == ["secretsmanager"])
        params = sorted(r for r in refs if r not in secrets)
        answers = {**ctx.refs.secrets(secrets), **ctx.refs.parameters(params)}
        for target in plan.targets:
            for c in target.containers:
                for name, ref in c.secrets:
                    answer = answers[ref]
                    kind = "secret" if ref in secrets else "SSM parameter"
                    if isinstance(answer, GatewayError):
                        yield self.unverified(target.name, f"container {c.name}: {kind} {ref}: {answer}",
                                              answer.code)
                    elif answer is RefStatus.MISSING:
                        yield self.finding(
                            target.name, f"container {c.name}: {kind} {ref} (for {name}) does not exist; tasks "
                            "will fail with ResourceInitializationError", container=c.name, variable=name,
                            reference=ref, remediation=f"create the {kind} or fix the reference")

"""CFG001: prod's configuration matches staging's except for declared differences."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

from guard.check import Check, Result
from guard.context import CheckContext
from guard.models import DeployPlan, Severity, Target


def facets(target: Target, replace: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """Flatten a target into `kind:name -> value` facts; `replace` maps staging words to prod ones."""

    def norm(value: str) -> str:
        for old, new in replace:
            value = value.replace(old, new)
        return value

    out: dict[str, str] = {}
    if target.architecture:
        out["arch:cpu"] = target.architecture.value
    for label, role in (("execution", target.execution_role), ("task", target.task_role)):
        if role:
            out[f"role:{label}"] = norm(role.rsplit("/", 1)[-1])
    for c in target.containers:
        out[f"container:{c.name}"] = "present"
        if c.image:
            out[f"image:{c.name}"] = norm(c.image.repository)
        for env in c.environment:
            out[f"env:{c.name}.{env}"] = "set"
        for name, ref in c.secrets:
            out[f"secret:{c.name}.{name}"] = norm(ref.split(":")[-1] if ref.startswith("arn:") else ref)
        for port in c.ports:
            out[f"port:{c.name}.{port}"] = "open"
        if c.health_check:
            out[f"healthcheck:{c.name}"] = norm(c.health_check)
    return out


class ConfigParity(Check):
    """Proves staging and prod differ only where config declares it (`[tool.guard.parity]`).

    Compares container names, image repositories, env var names (not values), secret references, ports,
    health checks, CPU architecture and role names, after applying the declared `replace` pairs (account
    IDs, environment names). Cannot prove values are right, only that their shape matches.
    """

    id = "CFG001"
    title = "Prod matches staging"
    severity = Severity.ERROR
    proves = "env var names, secret refs, ports, health checks, arch, roles and repositories match"
    cannot_prove = "that env var values are right; sizes and counts are not compared"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """One finding per undeclared difference."""
        parity = ctx.config.parity
        for staging, prod in ctx.parity:
            left, right = facets(staging, parity.replace), facets(prod, parity.replace)
            for key in sorted(set(left) | set(right)):
                a, b = left.get(key), right.get(key)
                if a == b or any(fnmatch.fnmatchcase(key, pat) for pat in parity.ignore):
                    continue
                kind, name = key.split(":", 1)
                if a is None:
                    what = f"{kind} {name} is only in prod"
                elif b is None:
                    what = f"{kind} {name} is missing in prod"
                else:
                    what = f"{kind} {name} differs: staging {a!r}, prod {b!r}"
                yield self.finding(
                    prod.name, f"{what} (vs staging {staging.name})", facet=key, staging=a, prod=b,
                    remediation=f"align prod with staging, or declare it: [tool.guard.parity] ignore = [\"{key}\"]")

"""Read port for what a task references besides images: roles, secrets, SSM parameters, log groups.

Values are never read: existence is checked with GetRole, DescribeSecret, DescribeParameters and
DescribeLogGroups, which return metadata only. Independent lookups run on a bounded thread pool.

Log groups are looked up one `logGroupNamePrefix` call each: DescribeLogGroups' `logGroupIdentifiers` (up to 50
ARNs) cannot take a name prefix, needs each group's account and region, and moto 5.2 ignores it (answering with
every group of the account), so the sandbox could not prove the batched form.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import TypeVar

from botocore.exceptions import ClientError

from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call, error_code

PARAMETERS_PER_CALL = 10
WORKERS = 16

K = TypeVar("K")
V = TypeVar("V")


class RefStatus(StrEnum):
    """Existence of one referenced resource."""

    EXISTS = "exists"
    MISSING = "missing"
    OTHER_ACCOUNT = "other_account"


RefLookup = RefStatus | GatewayError


def arn_parts(arn: str) -> list[str]:
    """Split an ARN into its six colon-separated parts (the resource keeps its colons)."""
    parts = arn.split(":", 5)
    return parts if len(parts) == 6 and parts[0] == "arn" else []


def pooled(fn: Callable[[K], V], keys: Iterable[K], workers: int) -> dict[K, V]:
    """`{key: fn(key)}` with the calls on at most `workers` threads; keys keep their order."""
    ordered = list(keys)
    if len(ordered) <= 1 or workers <= 1:
        return {k: fn(k) for k in ordered}
    with ThreadPoolExecutor(max_workers=min(workers, len(ordered))) as pool:
        return dict(zip(ordered, pool.map(fn, ordered), strict=True))


class Boto3Refs:
    """Existence lookups, one call per distinct role/secret/log group (concurrent), SSM parameters 10 per call."""

    def __init__(self, aws: AwsSession, workers: int = WORKERS) -> None:
        self.aws = aws
        self.workers = workers
        self._lock = threading.Lock()
        self._account: str | None = None

    def caller_account(self) -> str:
        """The account of the credentials in use (one STS call, cached)."""
        with self._lock:
            if self._account is None:
                self._account = str(call(self.aws.client("sts"), "GetCallerIdentity")["Account"])
            return self._account

    def roles(self, arns: Iterable[str]) -> dict[str, RefLookup]:
        """Whether each IAM role ARN exists in the caller's account (one GetRole per distinct role name)."""
        wanted = sorted(set(arns))
        account = ""
        if any(arn_parts(a) for a in wanted):
            try:
                account = self.caller_account()
            except GatewayError as exc:
                return dict.fromkeys(wanted, exc)
            except ClientError as exc:
                return dict.fromkeys(wanted, GatewayError("STS", "GetCallerIdentity", str(exc), error_code(exc)))
        names: dict[str, str] = {}
        out: dict[str, RefLookup] = {}
        for arn in wanted:
            parts = arn_parts(arn)
            if parts and parts[4] != account:
                out[arn] = RefStatus.OTHER_ACCOUNT
            else:
                names[arn] = arn.rsplit("/", 1)[-1]
        found = pooled(self._role, sorted(set(names.values())), self.workers)
        out.update({arn: found[name] for arn, name in names.items()})
        return dict(sorted(out.items()))

    def _role(self, name: str) -> RefLookup:
        try:
            call(self.aws.client("iam"), "GetRole", RoleName=name)
            return RefStatus.EXISTS
        except GatewayError as exc:
            return exc
        except ClientError as exc:
            return self._missing(exc, "NoSuchEntity", "IAM", "GetRole")

    def secrets(self, arns: Iterable[str]) -> dict[str, RefLookup]:
        """Whether each Secrets Manager secret exists (a JSON-key suffix on the ARN is ignored; one call per secret)."""
        ids: dict[str, tuple[str | None, str]] = {}
        for ref in sorted(set(arns)):
            parts = arn_parts(ref)
            ids[ref] = (parts[3] if parts else None, ":".join(ref.split(":")[:7]) if parts else ref)
        found = pooled(self._secret, sorted(set(ids.values()), key=lambda k: (k[0] or "", k[1])), self.workers)
        return {ref: found[key] for ref, key in ids.items()}

    def _secret(self, key: tuple[str | None, str]) -> RefLookup:
        region, secret_id = key
        try:
            call(self.aws.client("secretsmanager", region), "DescribeSecret", SecretId=secret_id)
            return RefStatus.EXISTS
        except GatewayError as exc:
            return exc
        except ClientError as exc:
            return self._missing(exc, "ResourceNotFoundException", "SecretsManager", "DescribeSecret")

    def parameters(self, refs: Iterable[str]) -> dict[str, RefLookup]:
        """Whether each SSM parameter (name or ARN) exists; DescribeParameters, 10 names per call."""
        by_region: dict[str | None, dict[str, str]] = {}
        for ref in sorted(set(refs)):
            parts = arn_parts(ref)
            region = parts[3] if parts else None
            name = parts[5].removeprefix("parameter").lstrip("/") if parts else ref.lstrip("/")
            by_region.setdefault(region, {})[ref] = name
        out: dict[str, RefLookup] = {}
        for region, names in by_region.items():
            client = self.aws.client("ssm", region)
            wanted = sorted(set(names.values()))
            seen: set[str] = set()
            try:
                for i in range(0, len(wanted), PARAMETERS_PER_CALL):
                    chunk = wanted[i : i + PARAMETERS_PER_CALL]
                    variants = sorted({v for n in chunk for v in (n, "/" + n)})
                    resp = call(client, "DescribeParameters", MaxResults=50, ParameterFilters=[
                        {"Key": "Name", "Option": "Equals", "Values": variants}])
                    seen.update(p["Name"] for p in resp.get("Parameters", []))
            except GatewayError as exc:
                out.update(dict.fromkeys(names, exc))
                continue
            except ClientError as exc:
                out.update(dict.fromkeys(names, GatewayError("SSM", "DescribeParameters", str(exc),
                                                             error_code(exc))))
                continue
            for ref, name in names.items():
                present = name in seen or "/" + name in seen
                out[ref] = RefStatus.EXISTS if present else RefStatus.MISSING
        return out

    def log_groups(self, names: Iterable[tuple[str | None, str]]) -> dict[tuple[str | None, str], RefLookup]:
        """Whether each (region, log group) exists; one DescribeLogGroups by prefix per group (concurrent)."""
        return pooled(self._log_group, sorted(set(names), key=lambda k: (k[0] or "", k[1])), self.workers)

    def _log_group(self, key: tuple[str | None, str]) -> RefLookup:
        region, name = key
        try:
            resp = call(self.aws.client("logs", region), "DescribeLogGroups", logGroupNamePrefix=name, limit=50)
        except GatewayError as exc:
            return exc
        except ClientError as exc:
            return GatewayError("Logs", "DescribeLogGroups", str(exc), error_code(exc))
        groups = {g["logGroupName"] for g in resp.get("logGroups", [])}
        return RefStatus.EXISTS if name in groups else RefStatus.MISSING

    @staticmethod
    def _missing(exc: ClientError, not_found: str, service: str, op: str) -> RefLookup:
        if error_code(exc) == not_found:
            return RefStatus.MISSING
        return GatewayError(service, op, str(exc), error_code(exc))

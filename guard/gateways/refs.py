"""Read port for what a task references besides images: roles, secrets, SSM parameters, log groups.

Values are never read: existence is checked with GetRole, DescribeSecret, DescribeParameters and
DescribeLogGroups, which return metadata only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from enum import StrEnum

from botocore.exceptions import ClientError

from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call, error_code

PARAMETERS_PER_CALL = 10


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


class Boto3Refs:
    """Existence lookups, one call per role/secret/log group, SSM parameters 10 per call per region."""

    def __init__(self, aws: AwsSession) -> None:
        self.aws = aws
        self._lock = threading.Lock()
        self._account: str | None = None

    def caller_account(self) -> str:
        """The account of the credentials in use (one STS call, cached)."""
        with self._lock:
            if self._account is None:
                self._account = str(call(self.aws.client("sts"), "GetCallerIdentity")["Account"])
            return self._account

    def roles(self, arns: Iterable[str]) -> dict[str, RefLookup]:
        """Whether each IAM role ARN exists in the caller's account."""
        out: dict[str, RefLookup] = {}
        for arn in sorted(set(arns)):
            parts = arn_parts(arn)
            try:
                if parts and parts[4] != self.caller_account():
                    out[arn] = RefStatus.OTHER_ACCOUNT
                    continue
                name = arn.rsplit("/", 1)[-1]
                call(self.aws.client("iam"), "GetRole", RoleName=name)
                out[arn] = RefStatus.EXISTS
            except GatewayError as exc:
                out[arn] = exc
            except ClientError as exc:
                out[arn] = self._missing(exc, "NoSuchEntity", "IAM", "GetRole")
        return out

    def secrets(self, arns: Iterable[str]) -> dict[str, RefLookup]:
        """Whether each Secrets Manager secret exists (a JSON-key suffix on the ARN is ignored)."""
        out: dict[str, RefLookup] = {}
        for ref in sorted(set(arns)):
            parts = arn_parts(ref)
            region = parts[3] if parts else None
            secret_id = ":".join(ref.split(":")[:7]) if parts else ref
            try:
                call(self.aws.client("secretsmanager", region), "DescribeSecret", SecretId=secret_id)
                out[ref] = RefStatus.EXISTS
            except GatewayError as exc:
                out[ref] = exc
            except ClientError as exc:
                out[ref] = self._missing(exc, "ResourceNotFoundException", "SecretsManager", "DescribeSecret")
        return out

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
        """Whether each (region, log group) exists; DescribeLogGroups by prefix, exact match."""
        out: dict[tuple[str | None, str], RefLookup] = {}
        for region, name in sorted(set(names), key=lambda k: (k[0] or "", k[1])):
            try:
                resp = call(self.aws.client("logs", region), "DescribeLogGroups", logGroupNamePrefix=name,
                            limit=50)
                groups = {g["logGroupName"] for g in resp.get("logGroups", [])}
                out[(region, name)] = RefStatus.EXISTS if name in groups else RefStatus.MISSING
            except GatewayError as exc:
                out[(region, name)] = exc
            except ClientError as exc:
                out[(region, name)] = GatewayError("Logs", "DescribeLogGroups", str(exc), error_code(exc))
        return out

    @staticmethod
    def _missing(exc: ClientError, not_found: str, service: str, op: str) -> RefLookup:
        if error_code(exc) == not_found:
            return RefStatus.MISSING
        return GatewayError(service, op, str(exc), error_code(exc))

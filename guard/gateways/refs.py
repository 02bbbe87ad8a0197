"""Read port for what a task references besides images: roles, secrets, SSM parameters, log groups.

Values are never read: existence is checked with GetRole, DescribeSecret, DescribeParameters and
DescribeLogGroups, which return metadata only. Independent lookups run on a bounded thread pool.

Log groups are looked up 50 names per DescribeLogGroups call (`logGroupIdentifiers`, per region; names are
accepted for the caller's own account); the sandbox fills the parameter, which moto 5.2 ignores. Secrets stay
one DescribeSecret each: ListSecrets could batch 10 name filters per call, but AWS documents that it may not
reflect the last five minutes, and a gate runs right after the apply that created the secret.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call, error_code

PARAMETERS_PER_CALL = 10
LOG_GROUPS_PER_CALL = 50
WORKERS = 16

K = TypeVar("K")
V = TypeVar("V")


class RefStatus(StrEnum):
    """Existence of one referenced resource."""

    EXISTS = "exists"
    MISSING = "missing"
    OTHER_ACCOUNT = "other_account"


RefLookup = RefStatus | GatewayError


@dataclass(frozen=True)
class SecretState:
    """DescribeSecret's answer for one secret: when it is deleted for good (if scheduled) and its KMS key."""

    arn: str
    deleted_at: datetime | None = None  # DeletedDate: scheduled for deletion, unreadable until restored
    kms_key: str | None = None  # KmsKeyId as given (key ID, key ARN or alias); None: aws/secretsmanager


@dataclass(frozen=True)
class KeyState:
    """DescribeKey's answer for one KMS key: its state and, when pending deletion, the deletion date."""

    arn: str
    state: str
    deletion_at: datetime | None = None


SecretLookup = SecretState | RefStatus | GatewayError
KeyLookup = KeyState | RefStatus | GatewayError


def arn_parts(arn: str) -> list[str]:
    """Split an ARN into its six colon-separated parts (the resource keeps its colons)."""
    parts = arn.split(":", 5)
    return parts if len(parts) == 6 and parts[0] == "arn" else []


def injected_secrets(task_definition: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(container name, secret ARN) for every Secrets Manager secret a task definition injects or pulls with.

    `secrets[].valueFrom` and `repositoryCredentials.credentialsParameter`; a JSON-key suffix is dropped;
    SSM parameters are left out.
    """
    out = []
    for c in task_definition.get("containerDefinitions", []):
        refs = [str(s.get("valueFrom", "")) for s in c.get("secrets") or ()]
        refs.append(str((c.get("repositoryCredentials") or {}).get("credentialsParameter", "")))
        for ref in refs:
            parts = arn_parts(ref)
            if parts and parts[2] == "secretsmanager":
                out.append((str(c.get("name", "")), ":".join(ref.split(":")[:7])))
    return out


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

    def secret_states(self, arns: Iterable[str]) -> dict[str, SecretLookup]:
        """DescribeSecret metadata (deletion date, KMS key) per secret ARN, one call per distinct secret."""
        ids = {ref: ":".join(ref.split(":")[:7]) for ref in sorted(set(arns)) if arn_parts(ref)}
        found = pooled(self._secret_state, sorted(set(ids.values())), self.workers)
        return {ref: found[secret] for ref, secret in ids.items()}

    def _secret_state(self, arn: str) -> SecretLookup:
        try:
            got = call(self.aws.client("secretsmanager", arn_parts(arn)[3] or None), "DescribeSecret", SecretId=arn)
        except GatewayError as exc:
            return exc
        except ClientError as exc:
            return self._missing(exc, "ResourceNotFoundException", "SecretsManager", "DescribeSecret")
        return SecretState(str(got.get("ARN") or arn), got.get("DeletedDate"), got.get("KmsKeyId") or None)

    def key_states(self, keys: Iterable[tuple[str | None, str]]) -> dict[tuple[str | None, str], KeyLookup]:
        """DescribeKey per (region, key ID / ARN / alias), one call per distinct key (concurrent)."""
        return pooled(self._key_state, sorted(set(keys), key=lambda k: (k[0] or "", k[1])), self.workers)

    def _key_state(self, key: tuple[str | None, str]) -> KeyLookup:
        region, key_id = key  # a key ARN names its own region; a key ID or alias is the secret's region's
        try:
            meta = call(self.aws.client("kms", (arn_parts(key_id) or [""] * 4)[3] or region), "DescribeKey",
                        KeyId=key_id)["KeyMetadata"]
        except GatewayError as exc:
            return exc
        except ClientError as exc:
            return self._missing(exc, "NotFoundException", "KMS", "DescribeKey")
        return KeyState(str(meta.get("Arn") or key_id), str(meta.get("KeyState", "")), meta.get("DeletionDate"))

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
        """Whether each (region, log group) exists; DescribeLogGroups, 50 names per call (batches concurrent)."""
        by_region: dict[str | None, list[str]] = {}
        for region, name in sorted(set(names), key=lambda k: (k[0] or "", k[1])):
            by_region.setdefault(region, []).append(name)
        batches = [(region, tuple(group[i : i + LOG_GROUPS_PER_CALL]))
                   for region, group in by_region.items() for i in range(0, len(group), LOG_GROUPS_PER_CALL)]
        found = pooled(self._log_group_batch, batches, self.workers)
        return {(region, name): answer for (region, _), answers in found.items() for name, answer in answers.items()}

    def _log_group_batch(self, batch: tuple[str | None, tuple[str, ...]]) -> dict[str, RefLookup]:
        region, names = batch
        client = self.aws.client("logs", region)
        seen: set[str] = set()
        token: dict[str, str] = {}
        try:
            while True:
                resp = call(client, "DescribeLogGroups", logGroupIdentifiers=list(names), **token)
                seen.update(g["logGroupName"] for g in resp.get("logGroups", []))
                if not resp.get("nextToken"):
                    break
                token = {"nextToken": resp["nextToken"]}
        except GatewayError as exc:
            return dict.fromkeys(names, exc)
        except ClientError as exc:
            return dict.fromkeys(names, GatewayError("Logs", "DescribeLogGroups", str(exc), error_code(exc)))
        return {name: RefStatus.EXISTS if name in seen else RefStatus.MISSING for name in names}

    @staticmethod
    def _missing(exc: ClientError, not_found: str, service: str, op: str) -> RefLookup:
        if error_code(exc) == not_found:
            return RefStatus.MISSING
        return GatewayError(service, op, str(exc), error_code(exc))

"""AWS plumbing: one counted, retrying client per (account, service, region), errors mapped once.

Clients come from botocore sessions directly: boto3 adds nothing a client uses and costs a cold process the
import of s3transfer and its resource layer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.session import Session

from guard.errors import AccessDenied, GatewayError, NoCredentials, Throttled, Unreachable
from guard.gateways.stats import ApiStats
from guard.models import InputError

_THROTTLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "SlowDown",
    "ProvisionedThroughputExceededException", "429",
})
# Signing names that differ from the IAM action prefix (CloudWatch signs as "monitoring").
_IAM_PREFIX = {"monitoring": "cloudwatch"}
_DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
    "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch",
    "InvalidSignatureException", "AuthFailure", "UnauthorizedException",
})


@dataclass(frozen=True)
class AwsSettings:
    """How AWS is reached; `endpoint_url` falls back to AWS_ENDPOINT_URL inside botocore itself."""

    region: str | None = None
    max_attempts: int = field(default_factory=lambda: _env_int("AWS_MAX_ATTEMPTS", 5))
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    account_roles: Mapping[str, str] = field(default_factory=dict)
    role_arn: str | None = None
    profile: str | None = None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else default


def map_error(exc: Exception, service: str, operation: str) -> GatewayError | None:
    """Translate a boto3 exception into a could-not-look error, or None for a business answer."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return NoCredentials(service, operation, "no AWS credentials found in the standard chain")
    if isinstance(exc, NoRegionError):
        return NoCredentials(service, operation, "no AWS region: set AWS_REGION", code="NoRegion")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError
                  | ConnectionClosedError):
        return Unreachable(service, operation, f"endpoint unreachable: {exc}")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code = str(err.get("Code", ""))
        msg = str(err.get("Message", "")) or str(exc)
        status = int(meta.get("HTTPStatusCode", 0) or 0)
        rid = str(meta.get("RequestId", ""))
        if code in _THROTTLE_CODES or status == 429:
            return Throttled(service, operation, f"throttled after retries ({code or status})", request_id=rid)
        if code in _DENIED_CODES or (status == 403 and code in ("403", "")) or "not authorized" in msg:
            return AccessDenied(service, operation, f"{msg} ({code or status})", request_id=rid)
        if status >= 500:
            return Unreachable(service, operation, f"server error {status} {code}: {msg}", request_id=rid)
        return None
    if isinstance(exc, BotoCoreError):
        return Unreachable(service, operation, str(exc))
    return None


def call(client: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
    """Call `operation` (PascalCase) on a boto3 client; could-not-look errors become GatewayError."""
    service = client.meta.service_model.service_id
    method = getattr(client, xform_name(operation))
    try:
        result: dict[str, Any] = method(**kwargs)
    except Exception as exc:
        mapped = map_error(exc, service, operation)
        if mapped is not None:
            raise mapped from exc
        raise
    return result


def error_code(exc: ClientError) -> str:
    """The AWS error code of a business ClientError."""
    return str(exc.response.get("Error", {}).get("Code", ""))


class AwsSession:
    """Counted clients; assumes `role_arn` (a watchdog shard) or a per-account role (another registry)."""

    def __init__(self, settings: AwsSettings | None = None, stats: ApiStats | None = None) -> None:
        self.settings = settings or AwsSettings()
        self.stats = stats or ApiStats()
        self._lock = threading.Lock()
        self._base = Session(profile=self.settings.profile)
        try:
            self._base.get_scoped_config()  # an unknown profile fails here, not on the first call
        except ProfileNotFound:
            raise InputError(f"AWS profile {self.settings.profile!r} is not in the shared config or "
                             "credentials file") from None
        self._sessions: dict[str, Session] = {}
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._config = Config(
            retries={"mode": "standard", "total_max_attempts": self.settings.max_attempts},
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            max_pool_connections=32,
        )

    @property
    def default_region(self) -> str:
        """Region from settings, AWS_REGION or the profile; `us-east-1` as the last resort."""
        return (self.settings.region or os.environ.get("AWS_REGION") or self._base.get_config_variable("region")
                or "us-east-1")

    def client(self, service: str, region: str | None = None, account: str | None = None) -> Any:
        """A thread-safe, counted client; `account` selects an assumed role when one is configured."""
        region = region or self.default_region
        role_account = account if account and account in self.settings.account_roles else ""
        key = (role_account, service, region)
        cached = self._clients.get(key)  # a dict read is atomic: threads holding a client never wait
        if cached is not None:
            return cached
        with self._lock:  # one creation at a time: a botocore session is not safe to share while creating
            cached = self._clients.get(key)
            if cached is None:
                session = self._session_for(role_account)
                cached = session.create_client(service, region_name=region, config=self._config)
                self._count(cached, attempts=True)
                self._clients[key] = cached
            return cached

    def _session_for(self, account: str) -> Session:
        role = self.settings.account_roles[account] if account else self.settings.role_arn
        if not role:
            return self._base
        session = self._sessions.get(role)
        if session is None:
            sts = self._base.create_client("sts", region_name=self.default_region, config=self._config)
            self._count(sts)
            creds = call(sts, "AssumeRole", RoleArn=role, RoleSessionName="deploy-guard")["Credentials"]
            session = Session()
            session.register_component("data_loader", self._base.get_component("data_loader"))  # models parsed once
            session.set_credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
            self._sessions[role] = session
        return session

    def _count(self, client: Any, *, attempts: bool = False) -> None:
        """Count the client's calls (and HTTP attempts) under IAM action names, e.g. `logs:DescribeLogGroups`."""
        name = client.meta.service_model.signing_name
        prefix = _IAM_PREFIX.get(name, name)

        def call(event_name: str, **kwargs: Any) -> None:
            self.stats.call(f"{prefix}:{event_name.rsplit('.', 1)[-1]}")

        def attempt(event_name: str, **kwargs: Any) -> None:
            self.stats.attempt(f"{prefix}:{event_name.rsplit('.', 1)[-1]}")

        client.meta.events.register("before-call", call)
        if attempts:
            client.meta.events.register("before-send", attempt)

"""Errors that mean "could not look", mapped once at the gateway from boto3/PyGithub exceptions."""

from __future__ import annotations


class GatewayError(Exception):
    """A remote call failed in a way that prevents verification (never a business answer).

    `code` is the stable kind (AccessDenied, Throttled, Unreachable, NoCredentials) that reports show as
    `error_code`; the service's own error code stays in the message.
    """

    kind = "error"

    def __init__(self, service: str, operation: str, message: str, code: str = "",
                 request_id: str = "") -> None:
        super().__init__(message)
        self.service = service
        self.operation = operation
        self.code = code or self.kind
        self.request_id = request_id

    def __str__(self) -> str:
        rid = f", request {self.request_id}" if self.request_id else ""
        return f"{self.service}:{self.operation}: {self.args[0]} ({self.code}{rid})"


class AccessDenied(GatewayError):
    """The credentials lack a permission."""

    kind = "AccessDenied"


class Throttled(GatewayError):
    """Still throttled after the retry budget."""

    kind = "Throttled"


class Unreachable(GatewayError):
    """The endpoint did not answer, or answered 5xx, after retries."""

    kind = "Unreachable"


class NoCredentials(GatewayError):
    """No credentials were found in the standard chain."""

    kind = "NoCredentials"

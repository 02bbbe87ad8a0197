"""Logging hygiene: library wire logs (which print whole request and response bodies) stay off."""

from __future__ import annotations

import logging

# botocore at DEBUG logs every response body (task definition environment values included); urllib3,
# PyGithub and the HTTP clients log headers. None of them may follow the root logger down to DEBUG.
_WIRE_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "github", "httpx", "httpcore", "httpx2", "httpcore2",
                 "anthropic")


def quiet_wire_loggers() -> None:
    """Pin the libraries' loggers at WARNING whatever the root level is (idempotent)."""
    for name in _WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
